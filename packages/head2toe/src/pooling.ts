import * as tf from '@tensorflow/tfjs';

/** Token groups for a tap of `channels` values per token: g = min(L, max(1, floor(S / C))). */
export function tokenGroups(tokens: number, channels: number, targetSize: number): number {
  return Math.min(tokens, Math.max(1, Math.floor(targetSize / channels)));
}

/** Token range [start, end) averaged by output i of torch's adaptive_avg_pool1d (groups may overlap). */
export function adaptivePoolRange(tokens: number, groups: number, i: number): [number, number] {
  return [Math.floor((i * tokens) / groups), Math.ceil(((i + 1) * tokens) / groups)];
}

/** Row i holds 1 / |group i| on group i's tokens: pooled [g, C] = P [g, L] @ x [L, C]. */
export function poolingMatrixValues(tokens: number, groups: number): Float32Array {
  const values = new Float32Array(groups * tokens);
  for (let i = 0; i < groups; i++) {
    const [start, end] = adaptivePoolRange(tokens, groups, i);
    for (let j = start; j < end; j++) values[i * tokens + j] = 1 / (end - start);
  }
  return values;
}

export function poolingMatrix(tokens: number, groups: number): tf.Tensor2D {
  return tf.tensor2d(poolingMatrixValues(tokens, groups), [groups, tokens]);
}

/**
 * Up to this many groups, pool with one broadcast batched matMul [1, g, L] x [B, L, C]; above it,
 * transpose the tap to [L, B * C] and use a single 2-D matMul. Measured on wasm for a ViT-B tap
 * [8, 197, 768]: g = 2 takes ~7 ms batched vs ~20 ms transposed (the transpose of the whole tap
 * dominates, the matMul itself is tiny); g = 10 takes ~40 ms batched vs ~20 ms transposed.
 */
export const BATCHED_POOLING_MAX_GROUPS = 4;

/**
 * Adaptive average pooling over tokens, flattened row-major per example: [B, L, C] -> [B, g * C].
 * No gather and no per-group slices (on wasm both copy or crawl); g = 1 is a plain mean over tokens.
 * `matrix` is [g, L] from poolingMatrix, or undefined when g = L (no pooling).
 */
export function poolTokens(tap: tf.Tensor3D, matrix: tf.Tensor2D | undefined): tf.Tensor2D {
  const [batch, tokens, channels] = tap.shape;
  return tf.tidy(() => {
    if (!matrix) return tf.reshape(tap, [batch, tokens * channels]) as tf.Tensor2D;
    const groups = matrix.shape[0];
    if (matrix.shape[1] !== tokens) throw new Error(`poolTokens: pooling matrix is for ${matrix.shape[1]} tokens, the tap has ${tokens}`);
    if (groups === 1) return tf.mean(tap, 1) as tf.Tensor2D;
    if (groups <= BATCHED_POOLING_MAX_GROUPS) {
      const pooled = tf.matMul(tf.reshape(matrix, [1, groups, tokens]) as tf.Tensor3D, tap);
      return tf.reshape(pooled, [batch, groups * channels]) as tf.Tensor2D;
    }
    const tokensFirst = tf.reshape(tf.transpose(tap, [1, 0, 2]), [tokens, batch * channels]);
    const pooled = tf.reshape(tf.matMul(matrix, tokensFirst), [groups, batch, channels]);
    return tf.reshape(tf.transpose(pooled, [1, 0, 2]), [batch, groups * channels]) as tf.Tensor2D;
  });
}

/** Each row divided by its L2 norm (floored at 1e-12, as torch's F.normalize). */
export function l2NormalizeRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.sum(tf.square(x), 1, true));
    return tf.div(x, tf.maximum(norm, 1e-12)) as tf.Tensor2D;
  });
}
