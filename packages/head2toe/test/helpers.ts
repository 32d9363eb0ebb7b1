import * as tf from '@tensorflow/tfjs';
import { initBackend, type VitConfig } from '@vqt/core';
import { expect } from 'vitest';

/** The tiny ViT of the fixtures: 32 px, patch 8 (17 tokens), dim 48, depth 3, 3 heads. */
export const TINY: VitConfig = { imageSize: 32, patchSize: 8, dim: 48, depth: 3, heads: 3, mlpRatio: 4, eps: 1e-6 };

/** wasm, one thread unless $VQT_THREADS says otherwise: threaded wasm slows down badly on a busy machine. */
export async function useWasm(): Promise<void> {
  await initBackend({ backend: 'wasm', threads: process.env.VQT_THREADS ? Number(process.env.VQT_THREADS) : 1 });
}

export function maxAbsDiff(a: tf.Tensor | Float32Array, b: tf.Tensor | Float32Array): number {
  const x = a instanceof tf.Tensor ? a.dataSync() : a;
  const y = b instanceof tf.Tensor ? b.dataSync() : b;
  expect(x.length).toBe(y.length);
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i] - y[i]));
  return max;
}

export function randomImages(batch: number, size: number, seed: number): tf.Tensor4D {
  return tf.randomNormal([batch, 3, size, size], 0, 1, 'float32', seed) as tf.Tensor4D;
}
