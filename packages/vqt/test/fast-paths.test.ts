import * as tf from '@tensorflow/tfjs';
import { epochOrder, initBackend, randomVit, setFrozenForwardKernel, setSideQueryKernel, trainModel, type DataSource, type VisionTransformer } from '@vqt/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FeatureCache, VqtModel, type VqtCachedBatch } from '../src/index.js';
import { chunks, hostImages, hostLabels, TINY } from './helpers.js';

// The side-query fast paths (per-head products, the batched image-by-image attention) against the
// first formulation (rows masked to one head, the per-image softmax kernel): a trained adapter must
// come out the same. Synthetic cached LN1 rows stand in for a cache: replaySideQueries accepts any
// token count, so a long context reaches attendToFrozen's image-by-image kernel (>= 2^17 values per
// image on wasm) at TINY's width without a large backbone.

const N = 12;
const CLASSES = 3;
let vit: VisionTransformer;

/** An in-memory DataSource of cached batches with fixed random LN1 rows [N, tokens, D] per block. */
function syntheticCache(tokens: number, seed: number): DataSource<VqtCachedBatch> {
  const host = (shape: number[], s: number) => {
    const t = tf.randomNormal(shape, 0, 1, 'float32', s);
    const values = t.dataSync().slice() as Float32Array;
    t.dispose();
    return values;
  };
  const ln1 = Array.from({ length: TINY.depth }, (_, m) => host([N, tokens, TINY.dim], seed + m));
  const cls = host([N, TINY.dim], seed + 99);
  const labels = hostLabels(N, CLASSES);
  const rows = (data: Float32Array, width: number, indices: Int32Array) => {
    const out = new Float32Array(indices.length * width);
    indices.forEach((row, i) => out.set(data.subarray(row * width, (row + 1) * width), i * width));
    return out;
  };
  return {
    size: N,
    async *batches(batchSize, order) {
      const indices = epochOrder(N, order);
      for (let start = 0; start < N; start += batchSize) {
        const picked = indices.subarray(start, Math.min(N, start + batchSize));
        yield {
          ln1: ln1.map((data) => tf.tensor3d(rows(data, tokens * TINY.dim, picked), [picked.length, tokens, TINY.dim])),
          cls: tf.tensor2d(rows(cls, TINY.dim, picked), [picked.length, TINY.dim]),
          labels: Int32Array.from(picked, (row) => labels[row]),
        };
      }
    },
  };
}

async function trainedAdapter(kernel: 'perHead' | 'masked', tokens: number, dropout: number): Promise<Float32Array[]> {
  setSideQueryKernel(kernel);
  const model = new VqtModel(vit, { numClasses: CLASSES, queries: 2, dropout, headInitStd: 0.05, headSeed: 3 });
  const before = tf.memory().numTensors;
  await trainModel(model, syntheticCache(tokens, 7), { epochs: 2, batchSize: 5, lr: 0.05, weightDecay: 1e-4, optimizer: 'adam', warmupEpochs: 0, seed: 4, progress: 'none' });
  expect(tf.memory().numTensors).toBe(before);
  const values = model.trainableVariables().map((v) => v.dataSync().slice() as Float32Array);
  model.dispose();
  return values;
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  vit = randomVit(TINY, 5);
});
afterEach(() => {
  setSideQueryKernel(undefined);
  setFrozenForwardKernel(undefined);
});
afterAll(() => vit.dispose());

describe('side-query fast paths train the same adapter as the masked formulation', () => {
  // 2731 x 48 >= 2^17: attendToFrozen runs image by image; 17 tokens: its batched kernel.
  for (const tokens of [17, 2731]) {
    for (const dropout of [0.1, 0]) {
      it(`${tokens} tokens, dropout ${dropout} (${dropout > 0 ? 'queries differ per image' : 'queries shared'})`, async () => {
        const fast = await trainedAdapter('perHead', tokens, dropout);
        const reference = await trainedAdapter('masked', tokens, dropout);
        const initial = new VqtModel(vit, { numClasses: CLASSES, queries: 2, dropout, headInitStd: 0.05, headSeed: 3 });
        const start = initial.trainableVariables().map((v) => v.dataSync().slice() as Float32Array);
        initial.dispose();
        let worst = 0;
        let moved = 0;
        fast.forEach((values, i) => {
          values.forEach((x, j) => {
            worst = Math.max(worst, Math.abs(x - reference[i][j]));
            moved = Math.max(moved, Math.abs(x - start[i][j]));
          });
        });
        console.log(`fast vs masked side queries, ${tokens} tokens, dropout ${dropout}: max parameter diff ${worst.toExponential(2)} (moved ${moved.toFixed(3)})`);
        expect(moved).toBeGreaterThan(1e-3); // training really changed the adapter
        expect(worst).toBeLessThan(1e-5);
      });
    }
  }
});

describe('the frozen forward with q/k/v projected first builds the same cache and adapter', () => {
  it('cache, then a trained adapter, against per-head weights per image', async () => {
    const images = hostImages(N, TINY.imageSize, 31);
    const labels = hostLabels(N, CLASSES);
    const adapter = async (kernel: 'projectFirst' | 'perHeadWeights') => {
      setFrozenForwardKernel(kernel);
      const cache = await FeatureCache.build(vit, chunks(images, labels, TINY.imageSize, 5));
      setFrozenForwardKernel(undefined);
      const model = new VqtModel(vit, { numClasses: CLASSES, queries: 2, headInitStd: 0.05, headSeed: 3 });
      await trainModel(model, cache, { epochs: 2, batchSize: 5, lr: 0.05, weightDecay: 1e-4, optimizer: 'adam', warmupEpochs: 0, seed: 4, progress: 'none' });
      const values = model.trainableVariables().map((v) => v.dataSync().slice() as Float32Array);
      const first = await cache.batch([0, 1]);
      const ln1 = first.ln1.map((t) => t.dataSync().slice() as Float32Array);
      tf.dispose(first as unknown as tf.TensorContainer);
      model.dispose();
      await cache.close();
      return { values, ln1 };
    };
    const fast = await adapter('projectFirst');
    const reference = await adapter('perHeadWeights');
    const worst = (a: Float32Array[], b: Float32Array[]) => Math.max(...a.map((x, i) => Math.max(...x.map((v, j) => Math.abs(v - b[i][j])))));
    console.log(`frozen forward projectFirst vs perHeadWeights: cached LN1 ${worst(fast.ln1, reference.ln1).toExponential(2)}, adapter ${worst(fast.values, reference.values).toExponential(2)}`);
    expect(worst(fast.ln1, reference.ln1)).toBeLessThan(1e-5);
    expect(worst(fast.values, reference.values)).toBeLessThan(1e-5);
  });
});
