import * as tf from '@tensorflow/tfjs';
import { validateFeatures } from './problem.js';

/**
 * Feature indices by descending group norm. Ties (notably the exact zeros) are broken by `tieBreak`
 * descending when given (e.g. groupGradientNorms: the zero group closest to entering first), then by index.
 */
export function rankFeatures(groupNorms: ArrayLike<number>, tieBreak?: ArrayLike<number>): Int32Array {
  if (tieBreak && tieBreak.length !== groupNorms.length) throw new Error('tieBreak must have one entry per group');
  const order = Array.from({ length: groupNorms.length }, (_, i) => i);
  order.sort((a, b) => groupNorms[b] - groupNorms[a] || (tieBreak ? tieBreak[b] - tieBreak[a] : 0) || a - b);
  return Int32Array.from(order);
}

/** How many of `numFeatures` a keep fraction keeps: rounded, at least 1, at most all. */
export function keepCount(numFeatures: number, keepFraction: number): number {
  if (!(keepFraction > 0 && keepFraction <= 1)) throw new Error(`keepFraction must be in (0, 1], got ${keepFraction}`);
  return Math.min(numFeatures, Math.max(1, Math.round(keepFraction * numFeatures)));
}

/** The top keepFraction of features by group norm, as ascending indices (column order is preserved). */
export function selectFeatures(groupNorms: ArrayLike<number>, keepFraction: number, tieBreak?: ArrayLike<number>): Int32Array {
  if (groupNorms.length === 0) throw new Error('groupNorms is empty');
  const kept = rankFeatures(groupNorms, tieBreak).slice(0, keepCount(groupNorms.length, keepFraction));
  return kept.sort();
}

/**
 * features[:, indices] as a new tensor. Done on host arrays: tf.gather is slow on wasm and this is a
 * one-off copy of a precomputed matrix that needs no gradient.
 */
export function gatherColumns(features: tf.Tensor2D, indices: Int32Array): tf.Tensor2D {
  validateFeatures(features);
  const [n, numFeatures] = features.shape;
  for (const index of indices) {
    if (!Number.isInteger(index) || index < 0 || index >= numFeatures) throw new Error(`column ${index} is outside [0, ${numFeatures})`);
  }
  const source = features.dataSync();
  const k = indices.length;
  const out = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    const rowStart = i * numFeatures;
    for (let j = 0; j < k; j++) out[i * k + j] = source[rowStart + indices[j]];
  }
  return tf.tensor2d(out, [n, k]);
}
