import type * as tf from '@tensorflow/tfjs';
import type { LayerNormParams } from '../ops/layer-norm.js';

/** A Linear layer stored input-major: weight [in, out]. */
export interface LinearParams {
  weight: tf.Tensor2D;
  bias: tf.Tensor1D;
}

export interface BlockParams {
  norm1: LayerNormParams;
  q: LinearParams;
  k: LinearParams;
  v: LinearParams;
  proj: LinearParams;
  norm2: LayerNormParams;
  fc1: LinearParams;
  fc2: LinearParams;
}

export interface VitParams {
  /** Patch embedding as a Linear over flattened (channel, row, column) patches: [3 p^2, D]. */
  patchEmbed: LinearParams;
  /** [1, D] */
  clsToken: tf.Tensor2D;
  /** [1 + N, D] for the grid the model runs at. */
  posEmbed: tf.Tensor2D;
  blocks: BlockParams[];
  norm: LayerNormParams;
  /** The checkpoint's classifier, if it had one: weight [D, classes]. */
  head?: LinearParams;
}
