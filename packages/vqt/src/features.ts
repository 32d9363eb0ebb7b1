import * as tf from '@tensorflow/tfjs';
import type { FeatureNorm } from './config.js';

/** Width of the head input: D (1 + M T), or D (1 + M) when each block's queries are averaged. */
export function featureDim(dim: number, depth: number, queries: number, norm: FeatureNorm): number {
  return dim * (1 + depth * (norm === 'mean' ? 1 : queries));
}

/** Rows scaled to unit L2 norm, as torch's F.normalize (norm clamped at 1e-12). */
export function l2NormalizeRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x), 1, true)), 1e-12)) as tf.Tensor2D);
}

/**
 * The head input (METHOD.md): the final CLS [B, D] followed by each block's query outputs
 * Z'_m [B, T, D], flattened row-major ('l2', 'none') or averaged over the queries ('mean');
 * with 'l2' and 'mean' every piece is L2-normalised on its own.
 */
export function assembleFeatures(cls: tf.Tensor2D, queryOutputs: readonly tf.Tensor3D[], norm: FeatureNorm): tf.Tensor2D {
  return tf.tidy(() => {
    const [batch, dim] = cls.shape;
    const pieces: tf.Tensor2D[] = [
      cls,
      ...queryOutputs.map((z) => (norm === 'mean' ? (tf.mean(z, 1) as tf.Tensor2D) : (tf.reshape(z, [batch, z.shape[1] * dim]) as tf.Tensor2D))),
    ];
    const normalised = norm === 'none' ? pieces : pieces.map(l2NormalizeRows);
    return tf.concat(normalised, 1);
  });
}
