import * as tf from '@tensorflow/tfjs';
import { FeatureDataSource, randomVit, type Hook, type VisionTransformer } from '@vqt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEAD2TOE_TAP_POINTS, Head2ToeExtractor, selectColumns, type ImageBatch } from '../src/index.js';
import { maxAbsDiff, randomImages, TINY, useWasm } from './helpers.js';

let vit: VisionTransformer;
let extractor: Head2ToeExtractor;
let images: tf.Tensor4D;
const COUNT = 10;
const labels = Int32Array.from({ length: COUNT }, (_, i) => i % 3);

beforeAll(async () => {
  await useWasm();
  vit = randomVit(TINY, 5);
  extractor = new Head2ToeExtractor(TINY, { targetSize: 96 });
  images = randomImages(COUNT, TINY.imageSize, 11);
});
afterAll(() => {
  tf.dispose([images]);
  extractor.dispose();
  vit.dispose();
});

/** Host batches of `size` images, as a VTAB split yields them. */
async function* hostBatches(size: number): AsyncIterable<ImageBatch> {
  const values = images.dataSync() as Float32Array;
  const perImage = 3 * TINY.imageSize * TINY.imageSize;
  for (let start = 0; start < COUNT; start += size) {
    const end = Math.min(COUNT, start + size);
    yield { images: values.slice(start * perImage, end * perImage), labels: labels.slice(start, end) };
  }
}

describe('Head2ToeExtractor', () => {
  it('gives the same features one batch at a time as for the whole set at once', async () => {
    const whole = extractor.extract(vit, images);
    expect(whole.shape).toEqual([COUNT, extractor.width]);
    for (const batchSize of [1, 3, 4]) {
      const streamed = await extractor.extractAll(vit, hostBatches(batchSize));
      expect(streamed.count).toBe(COUNT);
      expect(Array.from(streamed.labels)).toEqual(Array.from(labels));
      expect(maxAbsDiff(whole, streamed.features)).toBeLessThan(1e-5);
    }
    whole.dispose();
  });

  it('reads a DataSource in order and can keep only chosen columns', async () => {
    const all = await extractor.extractAll(vit, hostBatches(COUNT));
    // A DataSource whose batches carry image tensors (disposed by extractAll, as the trainer does).
    const values = images.dataSync() as Float32Array;
    const source = {
      size: COUNT,
      async *batches(batchSize: number) {
        const host = new FeatureDataSource(values, values.length / COUNT, labels);
        for await (const batch of host.batches(batchSize, { shuffle: false, seed: 0, epoch: 0 })) {
          const images4d = tf.reshape(batch.features, [batch.labels.length, 3, TINY.imageSize, TINY.imageSize]) as tf.Tensor4D;
          batch.features.dispose();
          yield { images: images4d, labels: batch.labels };
        }
      },
    };
    const columns = Int32Array.from([0, 5, 100, extractor.width - 1]);
    const before = tf.memory().numTensors;
    const picked = await extractor.extractAll(vit, source, { batchSize: 4, columns });
    expect(tf.memory().numTensors).toBe(before);
    expect(picked.width).toBe(4);
    expect(Array.from(picked.columns!)).toEqual(Array.from(columns));
    expect(maxAbsDiff(picked.features, selectColumns(all.features, all.width, columns))).toBeLessThan(1e-5);
  });

  it('every tap piece is unit length', () => {
    const features = extractor.extract(vit, tf.slice(images, [0, 0, 0, 0], [2, -1, -1, -1]) as tf.Tensor4D);
    const values = features.dataSync();
    for (const tap of extractor.featureLayout()) {
      for (let row = 0; row < 2; row++) {
        let sum = 0;
        for (let j = 0; j < tap.width; j++) sum += values[row * extractor.width + tap.offset + j] ** 2;
        expect(Math.sqrt(sum)).toBeCloseTo(1, 5);
      }
    }
    features.dispose();
  });

  it('leaves tf.memory().numTensors flat over repeated extraction', async () => {
    const run = () => extractor.extract(vit, images).dispose();
    run();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) run();
    expect(tf.memory().numTensors).toBe(before);
    await extractor.extractAll(vit, hostBatches(3));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('keeps only pooled pieces alive during the forward, not the raw taps', async () => {
    // A naive hook that keeps every raw tap until the end, for contrast.
    const rawHook: Hook = {
      name: 'raw',
      tapPoints: HEAD2TOE_TAP_POINTS,
      trainableVariables: () => [],
      tap: (_point, value, ctx) => void ctx.keep(value),
    };
    // Deep enough that raw taps kept across blocks would dominate the peak.
    const deep = { ...TINY, depth: 8 };
    const deepVit = randomVit(deep, 6);
    const deepExtractor = new Head2ToeExtractor(deep, { targetSize: 96 });
    const peak = async (fn: () => void) => (await tf.profile(fn)).peakBytes;
    const plain = await peak(() => tf.tidy(() => void deepVit.forward(images).cls.dataSync()));
    const pooled = await peak(() => deepExtractor.extract(deepVit, images).dispose());
    const raw = await peak(() => tf.tidy(() => void deepVit.forward(images, { hooks: [rawHook] }).cls.dataSync()));
    const featureBytes = COUNT * deepExtractor.width * 4;
    console.log(`peak bytes (depth 8, batch ${COUNT}): plain forward ${plain}, head2toe extract ${pooled}, keeping raw taps ${raw}`);
    expect(pooled - plain).toBeLessThanOrEqual(2 * featureBytes);
    expect(raw - plain).toBeGreaterThan(5 * (pooled - plain));
    deepExtractor.dispose();
    deepVit.dispose();
  });

  it('refuses a backbone of another shape', () => {
    const other = randomVit({ ...TINY, depth: 2 }, 1);
    expect(() => extractor.extract(other, images)).toThrow(/depth 3/);
    other.dispose();
  });
});
