import * as tf from '@tensorflow/tfjs';
import { numTokens, type VitConfig } from './config.js';
import type { LinearParams, VitParams } from './params.js';
import { VisionTransformer } from './vit.js';

/**
 * A ViT with random weights at roughly a trained model's scale, for tests and benchmarks.
 * Deterministic from the seed.
 */
export function randomVit(config: VitConfig, seed = 0): VisionTransformer {
  const { dim, patchSize: p, depth } = config;
  const hidden = Math.round(config.mlpRatio * dim);
  let next = seed * 1000 + 1;
  const normal = (shape: number[], std: number, mean = 0) => tf.randomNormal(shape, mean, std, 'float32', next++);
  const linearParams = (inp: number, out: number, std = 0.02): LinearParams => ({
    weight: normal([inp, out], std) as tf.Tensor2D,
    bias: normal([out], 0.02) as tf.Tensor1D,
  });
  const norm = () => ({ weight: normal([dim], 0.1, 1) as tf.Tensor1D, bias: normal([dim], 0.05) as tf.Tensor1D });
  const params: VitParams = {
    patchEmbed: linearParams(3 * p * p, dim, 0.05),
    clsToken: normal([1, dim], 0.1) as tf.Tensor2D,
    posEmbed: normal([numTokens(config), dim], 0.1) as tf.Tensor2D,
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
    norm: norm(),
  };
  return new VisionTransformer(config, params);
}
