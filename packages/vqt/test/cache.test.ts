import * as tf from '@tensorflow/tfjs';
import { epochOrder, initBackend, randomVit, type VisionTransformer } from '@vqt/core';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeatureCache, ImageArraySource, VqtModel, type VqtBatch, type VqtCachedBatch } from '../src/index.js';
import { chunks, hostImages, hostLabels, maxAbsDiff, TINY } from './helpers.js';

const N = 10;
const CLASSES = 4;
const CHUNK = 4;
let vit: VisionTransformer;
let images: Float32Array;
let labels: Int32Array;
let memory: FeatureCache;
let spilled: FeatureCache;
let spillRoot: string;
const rowBytes = () => vit.numTokens * TINY.dim * 4 * TINY.depth;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  vit = randomVit(TINY, 5);
  images = hostImages(N, TINY.imageSize, 21);
  labels = hostLabels(N, CLASSES);
  spillRoot = mkdtempSync(join(tmpdir(), 'vqt-cache-test-'));
  memory = await FeatureCache.build(vit, chunks(images, labels, TINY.imageSize, CHUNK));
  // Room for one chunk: the first chunk is held, the second moves everything to disk.
  spilled = await FeatureCache.build(vit, chunks(images, labels, TINY.imageSize, CHUNK), { budgetBytes: CHUNK * rowBytes(), dir: spillRoot });
});
afterAll(async () => {
  await memory.close();
  await spilled.close();
  vit.dispose();
  rmSync(spillRoot, { recursive: true, force: true });
});

const uncachedBatch = (indices: ArrayLike<number>): VqtBatch => {
  const floats = 3 * TINY.imageSize * TINY.imageSize;
  const data = new Float32Array(indices.length * floats);
  Array.from(indices).forEach((row, i) => data.set(images.subarray(row * floats, (row + 1) * floats), i * floats));
  return {
    images: tf.tensor4d(data, [indices.length, 3, TINY.imageSize, TINY.imageSize]),
    labels: Int32Array.from(indices, (row) => labels[row]),
  };
};

const crossEntropy = (logits: tf.Tensor2D, y: Int32Array) =>
  tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(tf.tensor1d(y, 'int32'), CLASSES), tf.logSoftmax(logits)), 1))) as tf.Scalar;

function gradients(model: VqtModel, batch: VqtBatch, training: boolean, seed: number) {
  const vars = model.trainableVariables();
  const { value, grads } = tf.variableGrads(() => crossEntropy(model.logits(batch, { training, seed }), batch.labels), vars);
  return { loss: value, grads: vars.map((v) => grads[v.name]) };
}

describe('FeatureCache', () => {
  it('holds LN1 per block and the final CLS, in memory under the budget and on disk past it', () => {
    expect(memory.size).toBe(N);
    expect(memory.spilled).toBe(false);
    expect(memory.bytes).toEqual({ memory: N * rowBytes(), disk: 0 });
    expect(spilled.spilled).toBe(true);
    expect(spilled.bytes).toEqual({ memory: 0, disk: N * rowBytes() });
    const files = readdirSync(spilled.directory!);
    expect(files.sort()).toEqual(['ln1-block-000.f32', 'ln1-block-001.f32', 'ln1-block-002.f32']);
    for (const file of files) expect(statSync(join(spilled.directory!, file)).size).toBe(N * vit.numTokens * TINY.dim * 4);
  });

  it('caches exactly what the backbone computes', async () => {
    const indices = [7, 0, 3];
    const batch = await memory.batch(indices);
    const seen: tf.Tensor3D[] = [];
    tf.tidy(() => {
      const { cls } = vit.forward((uncachedBatch(indices) as { images: tf.Tensor4D }).images, {
        hooks: [{ name: 'ln1', tapPoints: ['ln1'], trainableVariables: () => [], tap: (_p, v, ctx) => (seen[ctx.block] = ctx.keep(v as tf.Tensor3D)) }],
      });
      for (let m = 0; m < TINY.depth; m++) expect(maxAbsDiff(batch.ln1[m], seen[m])).toBeLessThan(1e-5);
      expect(maxAbsDiff(batch.cls, cls)).toBeLessThan(1e-5);
    });
    expect(Array.from(batch.labels)).toEqual(indices.map((i) => labels[i]));
    tf.dispose(batch as unknown as tf.TensorContainer);
  });

  it('memory-resident and spilled caches give identical batches in the same seeded order', async () => {
    const order = { shuffle: true, seed: 3, epoch: 2 };
    const fromMemory: VqtCachedBatch[] = [];
    const fromDisk: VqtCachedBatch[] = [];
    for await (const b of memory.batches(4, order)) fromMemory.push(b);
    for await (const b of spilled.batches(4, order)) fromDisk.push(b);
    expect(fromMemory.map((b) => b.labels.length)).toEqual([4, 4, 2]);
    const expectedLabels = Array.from(epochOrder(N, order), (i) => labels[i]);
    expect(fromMemory.flatMap((b) => Array.from(b.labels))).toEqual(expectedLabels);
    fromMemory.forEach((a, i) => {
      const b = fromDisk[i];
      expect(Array.from(b.labels)).toEqual(Array.from(a.labels));
      for (let m = 0; m < TINY.depth; m++) expect(maxAbsDiff(a.ln1[m], b.ln1[m])).toBe(0);
      expect(maxAbsDiff(a.cls, b.cls)).toBe(0);
    });
    // The same order as an image source with the same (seed, epoch): caching does not change the data order.
    const source = new ImageArraySource(images, labels, TINY.imageSize);
    const imageLabels: number[] = [];
    for await (const b of source.batches(4, order)) {
      imageLabels.push(...b.labels);
      b.images.dispose();
    }
    expect(imageLabels).toEqual(expectedLabels);
    tf.dispose([...fromMemory, ...fromDisk] as unknown as tf.TensorContainer);
  });

  it('float16 spill files are half the size and within float16 rounding', async () => {
    const half = await FeatureCache.build(vit, chunks(images, labels, TINY.imageSize, CHUNK), { budgetBytes: 0, dir: spillRoot, spillDtype: 'float16' });
    expect(half.spilled).toBe(true);
    expect(half.bytes.disk).toBe(N * rowBytes() / 2);
    expect(readdirSync(half.directory!).every((f) => f.endsWith('.f16'))).toBe(true);
    const indices = [9, 2, 5, 5];
    const a = await memory.batch(indices);
    const b = await half.batch(indices);
    for (let m = 0; m < TINY.depth; m++) {
      const relative = tf.tidy(() => tf.max(tf.div(tf.abs(tf.sub(a.ln1[m], b.ln1[m])), tf.add(tf.abs(a.ln1[m]), 1e-3))).dataSync()[0]);
      expect(relative).toBeLessThan(1e-3);
    }
    expect(maxAbsDiff(a.cls, b.cls)).toBe(0);
    tf.dispose([a, b] as unknown as tf.TensorContainer);
    const dir = half.directory!;
    await half.close();
    expect(existsSync(dir)).toBe(false);
  });

  it('a known-too-large cache goes to disk from the start; files removed on close unless kept', async () => {
    const cache = await FeatureCache.build(vit, chunks(images, labels, TINY.imageSize, CHUNK), {
      budgetBytes: 2 * rowBytes(),
      expectedImages: N,
      dir: spillRoot,
      keepFiles: true,
    });
    expect(cache.spilled).toBe(true);
    const dir = cache.directory!;
    await cache.close();
    expect(readdirSync(dir).length).toBe(TINY.depth);
    expect(readdirSync(dir).some((f) => f.endsWith('.tmp'))).toBe(false);
  });

  it('model.buildCache uses the config spillDtype; collectFeatures gives the head inputs in data order', async () => {
    const model = new VqtModel(vit, { numClasses: CLASSES, queries: 2, spillDtype: 'float16' });
    const cache = await model.buildCache(chunks(images, labels, TINY.imageSize, CHUNK), { budgetBytes: 0, dir: spillRoot });
    expect(readdirSync(cache.directory!).every((f) => f.endsWith('.f16'))).toBe(true);
    await cache.close();
    const { features, labels: seen, dim } = await model.collectFeatures(memory, 3);
    expect(dim).toBe(TINY.dim * (1 + TINY.depth * 2));
    expect(Array.from(seen)).toEqual(Array.from(labels));
    tf.tidy(() => {
      const direct = model.features(uncachedBatch([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
      expect(maxAbsDiff(tf.tensor2d(features, [N, dim]), direct)).toBeLessThan(1e-5);
    });
    model.dispose();
  });

  it('rejects a chunk whose images do not match the backbone', async () => {
    const bad = [{ images: new Float32Array(10), labels: new Int32Array(2) }];
    await expect(FeatureCache.build(vit, bad)).rejects.toThrow(/expected \[2, 3, 32, 32\]/);
  });
});

describe('cached and uncached training paths agree', () => {
  const indices = Array.from(epochOrder(N, { shuffle: true, seed: 1, epoch: 0 }).subarray(0, 6));

  for (const [label, dropout, training] of [
    ['dropout on (same seed)', 0.1, true],
    ['dropout off', 0, true],
    ['inference', 0.1, false],
  ] as const) {
    it(`query outputs and gradients of queries and head, ${label}`, async () => {
      const model = new VqtModel(vit, { numClasses: CLASSES, queries: 3, dropout, headInitStd: 0.1, headSeed: 2 });
      const seed = 12345;
      const uncached = uncachedBatch(indices);
      const cached = [await memory.batch(indices), await spilled.batch(indices)];

      tf.tidy(() => {
        const reference = model.queryOutputs(uncached, { training, seed }).outputs;
        for (const batch of cached) {
          const outputs = model.queryOutputs(batch, { training, seed }).outputs;
          for (let m = 0; m < TINY.depth; m++) expect(maxAbsDiff(outputs[m], reference[m])).toBeLessThan(1e-5);
        }
      });

      const reference = gradients(model, uncached, training, seed);
      for (const g of reference.grads) expect(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0])).toBeGreaterThan(1e-6);
      for (const batch of cached) {
        const { loss, grads } = gradients(model, batch, training, seed);
        if (!('ln1' in batch)) throw new Error('expected a cached batch');
        expect(Math.abs(loss.dataSync()[0] - reference.loss.dataSync()[0])).toBeLessThan(1e-5);
        const worst = Math.max(...grads.map((g, i) => maxAbsDiff(g, reference.grads[i])));
        console.log(`vqt cached vs uncached (${label}${batch.ln1 === cached[1].ln1 ? ', spilled' : ', memory'}): max grad diff ${worst}`);
        expect(worst).toBeLessThan(1e-5);
        tf.dispose([loss, ...grads]);
      }
      if (dropout > 0 && training) {
        // The mask really acts: another seed gives other gradients.
        const other = gradients(model, uncached, training, seed + 1);
        expect(maxAbsDiff(other.grads[0], reference.grads[0])).toBeGreaterThan(1e-7);
        tf.dispose([other.loss, ...other.grads]);
      }
      tf.dispose([reference.loss, ...reference.grads, uncached, ...cached] as unknown as tf.TensorContainer);
      model.dispose();
    });
  }
});
