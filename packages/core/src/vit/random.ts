import * as tf from '@tensorflow/tfjs';
import { posEmbedRows, resolveConfig, type VitConfig } from './config.js';
import type { LinearParams, VitParams } from './params.js';
import { VisionTransformer } from './vit.js';

/**
 * A ViT with random weights at roughly a trained model's scale, for tests and benchmarks: every
 * variant of the config gets its parameters (registers, LayerScale, qk-norm, norm_pre, fc_norm).
 * Deterministic from the seed; a config without variants draws the same weights as before they existed.
 */
export function randomVit(config: VitConfig, seed = 0): VisionTransformer {
  const c = resolveConfig(config);
  const { dim, patchSize: p, depth } = c;
  const hidden = Math.round(c.mlpRatio * dim);
  const headDim = dim / c.heads;
  let next = seed * 1000 + 1;
  const normal = (shape: number[], std: number, mean = 0) => tf.randomNormal(shape, mean, std, 'float32', next++);
  const linearParams = (inp: number, out: number, std = 0.02): LinearParams => ({
    weight: normal([inp, out], std) as tf.Tensor2D,
    bias: normal([out], 0.02) as tf.Tensor1D,
  });
  const norm = (width = dim) => ({ weight: normal([width], 0.1, 1) as tf.Tensor1D, bias: normal([width], 0.05) as tf.Tensor1D });
  const params: VitParams = {
    patchEmbed: linearParams(3 * p * p, dim, 0.05),
    clsToken: normal([1, dim], 0.1) as tf.Tensor2D,
    posEmbed: normal([posEmbedRows(c), dim], 0.1) as tf.Tensor2D,
    blocks: Array.from({ length: depth }, () => ({
      norm1: norm(),
      q: linearParams(dim, dim, 0.1),
      k: linearParams(dim, dim, 0.1),
      v: linearParams(dim, dim),
      proj: linearParams(dim, dim),
      norm2: norm(),
      fc1: linearParams(dim, hidden),
      fc2: linearParams(hidden, dim),
    })),
  };
  // Variant parameters are drawn after the original ones, so those stay what they always were.
  const finalNorm = norm();
  if (c.fcNorm) params.fcNorm = finalNorm;
  else params.norm = finalNorm;
  if (c.registerTokens > 0) params.regTokens = normal([c.registerTokens, dim], 0.1) as tf.Tensor2D;
  if (c.preNorm) params.normPre = norm();
  for (const block of params.blocks) {
    if (c.layerScale) {
      block.ls1 = normal([dim], 0.1, 0.5) as tf.Tensor1D;
      block.ls2 = normal([dim], 0.1, 0.5) as tf.Tensor1D;
    }
    if (c.qkNorm) {
      block.qNorm = norm(headDim);
      block.kNorm = norm(headDim);
    }
  }
  return new VisionTransformer(config, params);
}
