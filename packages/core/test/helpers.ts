import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import type { VitConfig } from '../src/index.js';

export const TINY: VitConfig = { imageSize: 32, patchSize: 8, dim: 48, depth: 3, heads: 3, mlpRatio: 4, eps: 1e-6 };

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

export function images(batch: number, size: number, seed = 1): tf.Tensor4D {
  return tf.randomNormal([batch, 3, size, size], 0, 1, 'float32', seed) as tf.Tensor4D;
}
