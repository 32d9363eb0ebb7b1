import * as tf from '@tensorflow/tfjs';
import { initBackend, linear, randomVit, type Hook, type VisionTransformer } from '@vqt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeatureCache, ImageArraySource, VqtModel, type VqtBatch } from '../src/index.js';
import { chunks, hostImages, hostLabels, maxAbsDiff, TINY } from './helpers.js';

// VQT stacked on another method's frozen hook: an AdaptFormer-style adapter beside each MLP.
let vit: VisionTransformer;
let images: Float32Array;
let labels: Int32Array;
let adapterWeights: tf.Tensor2D[];
let adapter: Hook;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  vit = randomVit(TINY, 3);
  images = hostImages(8, TINY.imageSize, 5);
  labels = hostLabels(8, 4);
  adapterWeights = Array.from({ length: 2 * TINY.depth }, (_, i) => tf.randomNormal(i % 2 ? [4, TINY.dim] : [TINY.dim, 4], 0, 0.3, 'float32', 40 + i) as tf.Tensor2D);
  adapter = {
    name: 'adaptformer',
    trainableVariables: () => [],
    mlpParallel: (x1, ctx) => linear(tf.relu(linear(x1, adapterWeights[2 * ctx.block])), adapterWeights[2 * ctx.block + 1]),
  };
});
afterAll(() => {
  tf.dispose(adapterWeights);
  vit.dispose();
});

async function first(source: { batches(n: number, o: { shuffle: boolean; seed: number; epoch: number }): AsyncIterable<VqtBatch> }): Promise<VqtBatch> {
  for await (const b of source.batches(8, { shuffle: false, seed: 0, epoch: 0 })) return b;
  throw new Error('empty');
}

describe('VQT on a frozen base hook', () => {
  it('reads the adapted tokens, from images and from a cache built with the same hook', async () => {
    const options = { numClasses: 4, queries: 2, headInitStd: 0.05, seed: 1 };
    const plain = new VqtModel(vit, options);
    const stacked = new VqtModel(vit, { ...options, baseHooks: [adapter] });
    const imageBatch = await first(new ImageArraySource(images, labels, TINY.imageSize));
    const cache = await stacked.buildCache(chunks(images, labels, TINY.imageSize, 4));
    const cachedBatch = await first(cache);
    const step = { training: false, seed: 0 };
    tf.tidy(() => {
      const fromImages = stacked.features(imageBatch, step);
      expect(maxAbsDiff(fromImages, stacked.features(cachedBatch, step))).toBeLessThan(1e-5);
      expect(maxAbsDiff(fromImages, plain.features(imageBatch, step))).toBeGreaterThan(1e-3);
    });
    tf.dispose([imageBatch, cachedBatch] as unknown as tf.TensorContainer);
    await cache.close();
    plain.dispose();
    stacked.dispose();
  });

  it('refuses a base hook with trainable variables', () => {
    const w = tf.variable(tf.zeros<tf.Rank.R2>([TINY.dim, TINY.dim]));
    const trainable: Hook = { name: 'lora', trainableVariables: () => [w], linearDelta: (_, x) => linear(x, w) };
    expect(() => new VqtModel(vit, { numClasses: 4, baseHooks: [trainable] })).toThrow(/base hook "lora" has trainable variables/);
    w.dispose();
  });

  it('caches each block at its own length when a base hook adds tokens (prompts), and reads them as from images', async () => {
    // Prompts appended before every block and kept: block m sees 1 + N + 2 (m + 1) tokens.
    const prompt = tf.randomNormal([1, 2, TINY.dim], 0, 0.5, 'float32', 8);
    const vpt: Hook = {
      name: 'vpt',
      trainableVariables: () => [],
      beforeBlock: (x) => tf.concat([x, tf.tile(prompt, [x.shape[0], 1, 1])], 1) as tf.Tensor3D,
    };
    const model = new VqtModel(vit, { numClasses: 4, queries: 1, headInitStd: 0.05, seed: 2, baseHooks: [vpt] });
    const cache = await model.buildCache(chunks(images, labels, TINY.imageSize, 4));
    const tokens = vit.numTokens;
    expect(cache.blockTokens).toEqual([tokens + 2, tokens + 4, tokens + 6]);
    const cachedBatch = await first(cache);
    const imageBatch = await first(new ImageArraySource(images, labels, TINY.imageSize));
    tf.tidy(() => {
      expect(maxAbsDiff(model.features(imageBatch), model.features(cachedBatch))).toBeLessThan(1e-5);
    });
    tf.dispose([imageBatch, cachedBatch, prompt] as unknown as tf.TensorContainer);
    await cache.close();
    model.dispose();
  });
});
