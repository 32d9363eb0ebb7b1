import * as tf from '@tensorflow/tfjs';
import { initBackend, randomVit, type HookContext, type VisionTransformer } from '@vqt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultInitRange, featureDim, resolveVqtConfig, VqtHook, VqtModel } from '../src/index.js';
import { maxAbsDiff, TINY } from './helpers.js';

let vit: VisionTransformer;
let images: tf.Tensor4D;
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  vit = randomVit(TINY, 3);
  images = tf.randomNormal([3, 3, TINY.imageSize, TINY.imageSize], 0, 1, 'float32', 11) as tf.Tensor4D;
});
afterAll(() => {
  vit.dispose();
  images.dispose();
});

const shape = { depth: TINY.depth, dim: TINY.dim, patchSize: TINY.patchSize };
const context = (block: number, training: boolean, seed: number, batchSize = 4): HookContext => ({
  block,
  depth: TINY.depth,
  dim: TINY.dim,
  batchSize,
  training,
  seed,
  keep: (t) => t,
});

describe('config', () => {
  it('defaults: T 1, dropout 0.1, l2 features, VPT init range', () => {
    expect(resolveVqtConfig()).toMatchObject({ queries: 1, dropout: 0.1, featureNorm: 'l2', spillDtype: 'float32' });
    expect(defaultInitRange(16, 768)).toBeCloseTo(0.0625, 10);
    expect(featureDim(768, 12, 1, 'l2')).toBe(768 * 13);
    expect(featureDim(768, 12, 10, 'mean')).toBe(768 * 13);
  });

  it('rejects bad values with a message naming the field', () => {
    expect(() => resolveVqtConfig({ queries: 0 })).toThrow(/queries/);
    expect(() => resolveVqtConfig({ dropout: 1 })).toThrow(/dropout/);
    expect(() => resolveVqtConfig({ featureNorm: 'max' as never })).toThrow(/featureNorm/);
  });
});

describe('VqtHook', () => {
  it('initialises each block uniform in +-sqrt(6/(3p^2+D)), deterministic from the seed', () => {
    const a = new VqtHook(shape, { queries: 4, seed: 3 });
    const b = new VqtHook(shape, { queries: 4, seed: 3 });
    const c = new VqtHook(shape, { queries: 4, seed: 4 });
    const bound = defaultInitRange(TINY.patchSize, TINY.dim);
    for (let m = 0; m < TINY.depth; m++) {
      expect(a.queries[m].shape).toEqual([4, TINY.dim]);
      const values = a.queries[m].dataSync();
      expect(Math.max(...values.map(Math.abs))).toBeLessThanOrEqual(bound);
      expect(Math.max(...values.map(Math.abs))).toBeGreaterThan(0.8 * bound);
      expect(maxAbsDiff(a.queries[m], b.queries[m])).toBe(0);
      expect(maxAbsDiff(a.queries[m], c.queries[m])).toBeGreaterThan(0);
    }
    expect(maxAbsDiff(a.queries[0], a.queries[1])).toBeGreaterThan(0);
    [a, b, c].forEach((h) => h.dispose());
  });

  it('shares [T, D] over the batch at inference, [B, T, D] with seeded inverted dropout in training', () => {
    const hook = new VqtHook(shape, { queries: 5, dropout: 0.25 });
    tf.tidy(() => {
      expect(hook.sideQueries(context(1, false, 9)).shape).toEqual([5, TINY.dim]);
      const dropped = hook.sideQueries(context(1, true, 9));
      expect(dropped.shape).toEqual([4, 5, TINY.dim]);
      // Every entry is either dropped or scaled by 1 / (1 - rate).
      const ratio = tf.div(dropped, tf.expandDims(hook.queries[1], 0)).dataSync();
      const zeros = ratio.filter((r) => r === 0).length;
      expect(ratio.every((r) => r === 0 || Math.abs(r - 1 / 0.75) < 1e-5)).toBe(true);
      expect(zeros / ratio.length).toBeGreaterThan(0.15);
      expect(zeros / ratio.length).toBeLessThan(0.35);
      expect(maxAbsDiff(hook.sideQueries(context(1, true, 9)), dropped)).toBe(0);
      expect(maxAbsDiff(hook.sideQueries(context(1, true, 10)), dropped)).toBeGreaterThan(0);
      expect(maxAbsDiff(hook.sideQueries(context(2, true, 9)), tf.mul(dropped, 0))).toBeGreaterThan(0);
    });
    hook.dispose();
    const noDropout = new VqtHook(shape, { dropout: 0 });
    expect(tf.tidy(() => noDropout.sideQueries(context(0, true, 9)).shape)).toEqual([1, TINY.dim]);
    noDropout.dispose();
  });

  it('never changes the original tokens: block outputs and CLS identical with and without VQT', () => {
    const model = new VqtModel(vit, { numClasses: 3, queries: 2 });
    tf.tidy(() => {
      const plain = vit.forward(images, { returnBlocks: true });
      for (const training of [false, true]) {
        const withVqt = vit.forward(images, { hooks: [model.hook], returnBlocks: true, training, seed: 1 });
        for (let m = 0; m < TINY.depth; m++) expect(maxAbsDiff(withVqt.blocks![m], plain.blocks![m])).toBe(0);
        expect(maxAbsDiff(withVqt.cls, plain.cls)).toBe(0);
        const outputs = model.hook.takeOutputs();
        expect(outputs.map((o) => o.shape)).toEqual(Array(TINY.depth).fill([3, 2, TINY.dim]));
      }
    });
    model.dispose();
  });

  it('takeOutputs refuses to hand out a partial set', () => {
    const hook = new VqtHook(shape);
    expect(() => hook.takeOutputs()).toThrow(/all 3 blocks/);
    hook.dispose();
  });

  it('rejects a backbone of another shape with a clear message', () => {
    const hook = new VqtHook({ ...shape, dim: 64 });
    expect(() => tf.tidy(() => vit.forward(images, { hooks: [hook] }).cls)).toThrow(/dim 64.*dim 48/);
    hook.dispose();
  });
});
