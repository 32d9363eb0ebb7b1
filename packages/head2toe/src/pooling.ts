import * as tf from '@tensorflow/tfjs';

/** A token range [start, end) averaged into one output group. */
export type TokenRange = readonly [start: number, end: number];

/** Adaptive rule: g = min(L, max(1, floor(S / C))) token groups. */
export function tokenGroups(tokens: number, channels: number, targetSize: number): number {
  return Math.min(tokens, Math.max(1, Math.floor(targetSize / channels)));
}

/** Token range [start, end) averaged by output i of torch's adaptive_avg_pool1d (groups may overlap). */
export function adaptivePoolRange(tokens: number, groups: number, i: number): [number, number] {
  return [Math.floor((i * tokens) / groups), Math.ceil(((i + 1) * tokens) / groups)];
}

/**
 * Official rule (head2toe's flatten_and_concat): tokens per group, int(L / (S / C)); 0 means the
 * mean over all tokens, which the official code takes when C >= S (and, by its `pool_size > 0`
 * test, also when S / C > L).
 */
export function officialPoolSize(tokens: number, channels: number, targetSize: number): number {
  if (channels >= targetSize) return 0;
  // Same float64 arithmetic as Python's int(n_token / (target_size / channels)).
  return Math.trunc(tokens / (targetSize / channels));
}

/** Official rule: floor(L / pool size) groups of consecutive tokens (remainder dropped); 1 for the mean. */
export function officialTokenGroups(tokens: number, channels: number, targetSize: number): number {
  const poolSize = officialPoolSize(tokens, channels, targetSize);
  return poolSize === 0 ? 1 : Math.floor(tokens / poolSize);
}

/** The ranges of a 'valid' average pooling of this size and stride; pool size 0: one range over all tokens. */
export function officialPoolRanges(tokens: number, poolSize: number): TokenRange[] {
  if (poolSize === 0) return [[0, tokens]];
  return Array.from({ length: Math.floor(tokens / poolSize) }, (_, i) => [i * poolSize, (i + 1) * poolSize] as const);
}

/** The ranges of torch's adaptive_avg_pool1d to `groups` outputs. */
export function adaptivePoolRanges(tokens: number, groups: number): TokenRange[] {
  return Array.from({ length: groups }, (_, i) => adaptivePoolRange(tokens, groups, i));
}

/**
 * Row i holds 1 / |range i| on range i's tokens (zero elsewhere, e.g. on dropped remainder tokens):
 * pooled [g, C] = P [g, L] @ x [L, C]. `groups` (a count) means the adaptive ranges.
 */
export function poolingMatrixValues(tokens: number, groups: number | readonly TokenRange[]): Float32Array {
  const ranges = typeof groups === 'number' ? adaptivePoolRanges(tokens, groups) : groups;
  const values = new Float32Array(ranges.length * tokens);
  ranges.forEach(([start, end], i) => {
    if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start < end && end <= tokens)) {
      throw new Error(`poolingMatrix: token range [${start}, ${end}) is not inside [0, ${tokens})`);
    }
    for (let j = start; j < end; j++) values[i * tokens + j] = 1 / (end - start);
  });
  return values;
}

export function poolingMatrix(tokens: number, groups: number | readonly TokenRange[]): tf.Tensor2D {
  const count = typeof groups === 'number' ? groups : groups.length;
  return tf.tensor2d(poolingMatrixValues(tokens, groups), [count, tokens]);
}

/**
 * How to pool one tap: 'mean' over all tokens, 'none' (every token its own group), or a [g, L]
 * pooling matrix.
 */
export type TokenPooling = 'mean' | 'none' | tf.Tensor2D;

/** The cheapest TokenPooling for these ranges (the caller owns a returned matrix). */
export function tokenPoolingFor(tokens: number, ranges: readonly TokenRange[]): TokenPooling {
  if (ranges.length === 1 && ranges[0][0] === 0 && ranges[0][1] === tokens) return 'mean';
  if (ranges.length === tokens && ranges.every(([start, end], i) => start === i && end === i + 1)) return 'none';
  return poolingMatrix(tokens, ranges);
}

/**
 * Up to this many groups, pool with one broadcast batched matMul [1, g, L] x [B, L, C]; above it,
 * transpose the tap to [L, B * C] and use a single 2-D matMul. Measured on wasm for a ViT-B tap
 * [8, 197, 768]: g = 2 takes ~7 ms batched vs ~20 ms transposed (the transpose of the whole tap
 * dominates, the matMul itself is tiny); g = 10 takes ~40 ms batched vs ~20 ms transposed.
 */
export const BATCHED_POOLING_MAX_GROUPS = 4;

/**
 * Average pooling over tokens, flattened row-major per example: [B, L, C] -> [B, g * C].
 * No gather and no per-group slices (on wasm both copy or crawl). `pooling` is 'mean' (all tokens),
 * 'none' (or undefined: no pooling) or a [g, L] matrix from poolingMatrix.
 */
export function poolTokens(tap: tf.Tensor3D, pooling: TokenPooling | undefined): tf.Tensor2D {
  const [batch, tokens, channels] = tap.shape;
  return tf.tidy(() => {
    if (pooling === undefined || pooling === 'none') return tf.reshape(tap, [batch, tokens * channels]) as tf.Tensor2D;
    if (pooling === 'mean') return tf.mean(tap, 1) as tf.Tensor2D;
    const matrix = pooling;
    const groups = matrix.shape[0];
    if (matrix.shape[1] !== tokens) throw new Error(`poolTokens: pooling matrix is for ${matrix.shape[1]} tokens, the tap has ${tokens}`);
    if (groups <= BATCHED_POOLING_MAX_GROUPS) {
      const pooled = tf.matMul(tf.reshape(matrix, [1, groups, tokens]) as tf.Tensor3D, tap);
      return tf.reshape(pooled, [batch, groups * channels]) as tf.Tensor2D;
    }
    const tokensFirst = tf.reshape(tf.transpose(tap, [1, 0, 2]), [tokens, batch * channels]);
    const pooled = tf.reshape(tf.matMul(matrix, tokensFirst), [groups, batch, channels]);
    return tf.reshape(tf.transpose(pooled, [1, 0, 2]), [batch, groups * channels]) as tf.Tensor2D;
  });
}

/** Each row divided by its L2 norm floored at 1e-12 (torch's F.normalize): the adaptive rule. */
export function l2NormalizeRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.sum(tf.square(x), 1, true));
    return tf.div(x, tf.maximum(norm, 1e-12)) as tf.Tensor2D;
  });
}

/** Each row divided by its L2 norm, a zero row left zero (the official 'unit_vector', zero_aware_normalize). */
export function unitNormalizeRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.sum(tf.square(x), 1, true));
    // Dividing a zero row by 1 instead of 0 keeps it zero without a NaN to mask.
    return tf.div(x, tf.add(norm, tf.cast(tf.equal(norm, 0), 'float32'))) as tf.Tensor2D;
  });
}
