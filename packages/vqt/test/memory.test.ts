import * as tf from '@tensorflow/tfjs';
import { evaluateModel, initBackend, peakNewBufferBytes, randomVit, trainModel, type VisionTransformer } from '@vqt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeatureCache, ImageArraySource, VqtModel, type VqtBatch } from '../src/index.js';
import { chunks, hostImages, hostLabels, TINY } from './helpers.js';

const BATCH = 8;
const CLASSES = 5;
let vit: VisionTransformer;
let images: Float32Array;
let labels: Int32Array;
let cache: FeatureCache;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  vit = randomVit(TINY, 7);
  images = hostImages(2 * BATCH, TINY.imageSize, 31);
  labels = hostLabels(2 * BATCH, CLASSES);
  cache = await FeatureCache.build(vit, chunks(images, labels, TINY.imageSize, BATCH));
});
afterAll(async () => {
  await cache.close();
  vit.dispose();
});

const loss = (logits: tf.Tensor2D, y: Int32Array) =>
  tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(tf.tensor1d(y, 'int32'), CLASSES), tf.logSoftmax(logits)), 1))) as tf.Scalar;

/** Bytes one gradient step allocates at its peak, beyond what existed before it (each buffer once). */
function stepPeakBytes(model: VqtModel, batch: VqtBatch): Promise<number> {
  return peakNewBufferBytes(() => {
    const { value, grads } = tf.variableGrads(() => loss(model.logits(batch, { training: true, seed: 1 }), batch.labels), model.trainableVariables());
    tf.dispose([value, ...Object.values(grads)]);
  });
}

async function firstBatch<B>(source: { batches(n: number, o: { shuffle: boolean; seed: number; epoch: number }): AsyncIterable<B> }): Promise<B> {
  for await (const b of source.batches(BATCH, { shuffle: false, seed: 0, epoch: 0 })) return b;
  throw new Error('empty source');
}

describe('memory', () => {
  it('off-tape backbone: a training step peaks well below the taped one; the cached step below both', async () => {
    const imageBatch = await firstBatch(new ImageArraySource(images, labels, TINY.imageSize));
    const cachedBatch = await firstBatch(cache);
    const options = { numClasses: CLASSES, queries: 2, headInitStd: 0.01 };
    const offTape = new VqtModel(vit, options);
    const onTape = new VqtModel(vit, { ...options, tapeBackbone: true });
    const peaks = {
      offTape: await stepPeakBytes(offTape, imageBatch),
      onTape: await stepPeakBytes(onTape, imageBatch),
      cached: await stepPeakBytes(offTape, cachedBatch),
    };
    console.log('vqt step peak bytes (tiny ViT, batch 8, T 2)', peaks, 'off/on', (peaks.offTape / peaks.onTape).toFixed(3), 'cached/off', (peaks.cached / peaks.offTape).toFixed(3));
    expect(peaks.offTape / peaks.onTape).toBeLessThan(0.7);
    expect(peaks.cached).toBeLessThan(peaks.offTape);
    tf.dispose([imageBatch, cachedBatch] as unknown as tf.TensorContainer);
    offTape.dispose();
    onTape.dispose();
  });

  it('many training steps and inference passes keep tf.memory().numTensors flat', async () => {
    const model = new VqtModel(vit, { numClasses: CLASSES, queries: 2 });
    const optimizer = tf.train.adam(0.01);
    const imageSource = new ImageArraySource(images, labels, TINY.imageSize);
    const epoch = async (source: { batches: (n: number, o: { shuffle: boolean; seed: number; epoch: number }) => AsyncIterable<VqtBatch> }, e: number) => {
      let step = 0;
      for await (const batch of source.batches(BATCH, { shuffle: true, seed: 4, epoch: e })) {
        optimizer.minimize(() => loss(model.logits(batch, { training: true, seed: e * 100 + step++ }), batch.labels), false, model.trainableVariables());
        tf.tidy(() => model.logits(batch, { training: false, seed: 0 }).dataSync());
        tf.dispose(batch as unknown as tf.TensorContainer);
      }
    };
    await epoch(cache, 0);
    await epoch(imageSource, 0);
    const before = tf.memory().numTensors;
    for (let e = 1; e <= 3; e++) {
      await epoch(cache, e);
      await epoch(imageSource, e);
    }
    expect(tf.memory().numTensors).toBe(before);
    optimizer.dispose();
    model.dispose();
  });

  it("trains with core's trainModel from the cache without leaking, and the loss falls", async () => {
    const model = new VqtModel(vit, { numClasses: CLASSES, queries: 1 });
    const before = tf.memory().numTensors;
    const { history } = await trainModel(model, cache, {
      epochs: 6,
      batchSize: BATCH,
      lr: 0.05,
      weightDecay: 1e-4,
      optimizer: 'adam',
      warmupEpochs: 1,
      seed: 0,
      progress: 'none',
    });
    const evaluation = await evaluateModel(model, cache, 5);
    expect(evaluation.count).toBe(cache.size);
    expect(tf.memory().numTensors).toBe(before);
    expect(history.length).toBe(6);
    expect(history[5].loss).toBeLessThan(history[0].loss);
    model.dispose();
  });
});
