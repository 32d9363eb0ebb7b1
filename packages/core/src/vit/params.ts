import type * as tf from '@tensorflow/tfjs';
import type { LayerNormParams } from '../ops/layer-norm.js';

/** A Linear layer stored input-major: weight [in, out]. */
export interface LinearParams {
  weight: tf.Tensor2D;
  bias: tf.Tensor1D;
}

/** timm's Attention: q, k and v (timm's fused attn.qkv, split), proj, and the optional qk-norm. */
export interface AttentionParams {
  q: LinearParams;
  k: LinearParams;
  v: LinearParams;
  proj: LinearParams;
  /** LayerNorm over each head's queries / keys, weight [d] shared by the heads (config.qkNorm). */
  qNorm?: LayerNormParams;
  kNorm?: LayerNormParams;
}

/** timm's Mlp: fc1 -> activation -> fc2. */
export interface MlpParams {
  fc1: LinearParams;
  fc2: LinearParams;
}

/**
 * One block, flat so that `params.q` etc. keep working; `attentionParams` / `mlpParams` in
 * block.ts view it as timm's block.attn / block.mlp.
 */
export interface BlockParams extends AttentionParams, MlpParams {
  norm1: LayerNormParams;
  norm2: LayerNormParams;
  /** LayerScale gains [D] on the attention and MLP branches (config.layerScale). */
  ls1?: tf.Tensor1D;
  ls2?: tf.Tensor1D;
}

export interface VitParams {
  /** Patch embedding as a Linear over flattened (channel, row, column) patches: [3 p^2, D]; no bias with pre-norm (CLIP). */
  patchEmbed: { weight: tf.Tensor2D; bias?: tf.Tensor1D };
  /** [1, D] */
  clsToken: tf.Tensor2D;
  /** [R, D] register tokens (config.registerTokens > 0). */
  regTokens?: tf.Tensor2D;
  /** [rows, D] for the grid the model runs at: rows = patches (+ CLS and registers unless config.noEmbedClass). */
  posEmbed: tf.Tensor2D;
  /** LayerNorm before block 0 (config.preNorm). */
  normPre?: LayerNormParams;
  blocks: BlockParams[];
  /** Final LayerNorm over the tokens; absent when config.fcNorm (then fcNorm is applied after pooling). */
  norm?: LayerNormParams;
  /** Final LayerNorm after pooling (config.fcNorm). */
  fcNorm?: LayerNormParams;
  /** The checkpoint's classifier, if it had one: weight [D, classes]. */
  head?: LinearParams;
}
