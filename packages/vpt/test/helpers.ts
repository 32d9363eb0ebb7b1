import * as tf from '@tensorflow/tfjs';
import { arrayImageSplit, expectFloat32, readNpy, type HostTensor, type ImageSplit, type VitConfig } from '@vqt/core';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const TINY: VitConfig = { imageSize: 32, patchSize: 8, dim: 48, depth: 3, heads: 3, mlpRatio: 4, eps: 1e-6 };

export const FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'vpt_tiny');

export interface FixtureConfig {
  checkpoint: string;
  checkpointSha256: string;
  heads: number;
  depth: number;
  dim: number;
  batch: number;
  numPrompts: number;
  numClasses: number;
  labels: number[];
  lastBlocks: number;
}

export function fixtureConfig(): FixtureConfig & { checkpointPath: string } {
  const config = JSON.parse(readFileSync(join(FIXTURE_DIR, 'config.json'), 'utf8')) as FixtureConfig;
  return { ...config, checkpointPath: resolve(FIXTURE_DIR, config.checkpoint) };
}

export function fixtureArray(name: string): HostTensor {
  const file = join(FIXTURE_DIR, name);
  return expectFloat32(readNpy(file), file, name);
}

export function maxAbsDiff(actual: tf.Tensor, expected: tf.Tensor | HostTensor): number {
  expect(actual.shape).toEqual(expected.shape);
  return tf.tidy(() => {
    const e = expected instanceof tf.Tensor ? expected : tf.tensor(expected.data, expected.shape);
    return tf.max(tf.abs(tf.sub(actual, e))).dataSync()[0];
  });
}

/** Random normalised-looking images [n, 3, S, S] on the host, deterministic from the seed. */
export function hostImages(n: number, size: number, seed = 1): Float32Array {
  return tf.tidy(() => tf.randomNormal([n, 3, size, size], 0, 1, 'float32', seed).dataSync() as Float32Array);
}

/**
 * A tiny in-memory ImageSplit whose label is learnable from the pixels: the sign of the mean of
 * image channel 0 (images are shifted by +-0.5 to make the two classes separable).
 */
export function memorySplit(n: number, size: number, seed = 1): ImageSplit {
  const images = hostImages(n, size, seed);
  const floats = 3 * size * size;
  const plane = size * size;
  const labels = Int32Array.from({ length: n }, (_, i) => i % 2);
  for (let i = 0; i < n; i++) for (let j = 0; j < plane; j++) images[i * floats + j] += labels[i] ? 0.5 : -0.5;
  return arrayImageSplit(images, labels, size, { numClasses: 2, id: `memory:${seed}` });
}

/** Mean cross-entropy of logits [B, C] against integer labels (as torch's F.cross_entropy). */
export function crossEntropy(logits: tf.Tensor2D, labels: readonly number[]): tf.Scalar {
  return tf.tidy(() => {
    const picked = tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(tf.tensor1d(labels as number[], 'int32'), logits.shape[1])), 1);
    return tf.neg(tf.mean(picked)) as tf.Scalar;
  });
}

/** Ops recorded on the gradient tape so far (tfjs engine internals; only inside a gradient scope). */
export function tapeLength(): number {
  const tape = (tf.engine() as unknown as { state: { activeTape: unknown[] | null } }).state.activeTape;
  if (!tape) throw new Error('tapeLength: no gradient scope is recording');
  return tape.length;
}
