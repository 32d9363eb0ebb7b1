import * as tf from '@tensorflow/tfjs';
import { epochOrder, expectFloat32, readNpy, type ImageSplit, type VitConfig } from '@vqt/core';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const TINY: VitConfig = { imageSize: 32, patchSize: 8, dim: 48, depth: 3, heads: 3, mlpRatio: 4, eps: 1e-6 };

const HERE = dirname(fileURLToPath(import.meta.url));
export const FIXTURE_DIR = join(HERE, 'fixtures', 'adaptformer_tiny');
/** The shared tiny checkpoint the fixtures were computed on (core's tiny_f32). */
export const TINY_CHECKPOINT = join(HERE, '..', '..', 'core', 'test', 'fixtures', 'tiny_f32', 'model.safetensors');

export function fixtureTensor(name: string): tf.Tensor {
  const file = join(FIXTURE_DIR, name);
  const array = expectFloat32(readNpy(file), file, name);
  return tf.tensor(array.data, array.shape);
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

export function images(batch: number, size: number, seed = 1): tf.Tensor4D {
  return tf.randomNormal([batch, 3, size, size], 0, 1, 'float32', seed) as tf.Tensor4D;
}

/** Images in memory as an ImageSplit; labels follow the images' mean brightness so a tiny fit can learn something. */
export function memorySplit(count: number, numClasses: number, size: number, seed = 1): ImageSplit & { labels: Int32Array } {
  const floats = 3 * size * size;
  const data = tf.tidy(() => tf.randomNormal([count, 3, size, size], 0, 1, 'float32', seed).dataSync() as Float32Array);
  const labels = Int32Array.from({ length: count }, (_, i) => i % numClasses);
  for (let i = 0; i < count; i++) {
    for (let j = 0; j < floats; j++) data[i * floats + j] += labels[i];
  }
  return {
    id: `memory:${seed}`,
    size: count,
    numClasses,
    imageSize: size,
    labels,
    async *batches(batchSize, options = {}) {
      const order = epochOrder(count, { shuffle: options.shuffle ?? false, seed: options.seed ?? 0, epoch: 0 });
      for (let start = 0; start < count; start += batchSize) {
        const rows = order.subarray(start, Math.min(count, start + batchSize));
        const out = new Float32Array(rows.length * floats);
        rows.forEach((row, i) => out.set(data.subarray(row * floats, (row + 1) * floats), i * floats));
        yield { images: out, labels: Int32Array.from(rows, (row) => labels[row]) };
      }
    },
  };
}
