import * as tf from '@tensorflow/tfjs';
import { expectFloat32, readNpy, type VitConfig } from '@vqt/core';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const TINY: VitConfig = { imageSize: 32, patchSize: 8, dim: 48, depth: 3, heads: 3, mlpRatio: 4, eps: 1e-6 };

export const FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'vqt_tiny');

export interface FixtureConfig {
  checkpoint: string;
  checkpointSha256: string;
  heads: number;
  numQueries: number;
  depth: number;
  dim: number;
  batch: number;
}

export function fixtureConfig(): FixtureConfig & { checkpointPath: string } {
  const config = JSON.parse(readFileSync(join(FIXTURE_DIR, 'config.json'), 'utf8')) as FixtureConfig;
  return { ...config, checkpointPath: resolve(FIXTURE_DIR, config.checkpoint) };
}

export function fixtureArray(name: string): { shape: number[]; data: Float32Array } {
  const file = join(FIXTURE_DIR, name);
  return expectFloat32(readNpy(file), file, name);
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** Random normalised-looking images [n, 3, S, S] on the host, deterministic from the seed. */
export function hostImages(n: number, size: number, seed = 1): Float32Array {
  return tf.tidy(() => tf.randomNormal([n, 3, size, size], 0, 1, 'float32', seed).dataSync() as Float32Array);
}

export function hostLabels(n: number, classes: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % classes);
}

/** Splits host images into chunks, as a dataset reader would deliver them. */
export function* chunks(images: Float32Array, labels: Int32Array, size: number, chunk: number): Generator<{ images: Float32Array; labels: Int32Array }> {
  const floats = 3 * size * size;
  for (let start = 0; start < labels.length; start += chunk) {
    const end = Math.min(labels.length, start + chunk);
    yield { images: images.slice(start * floats, end * floats), labels: labels.slice(start, end) };
  }
}
