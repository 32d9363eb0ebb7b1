import * as tf from '@tensorflow/tfjs';
import { HookedClassifier, initBackend, peakNewBufferBytes, randomVit, type VisionTransformer } from '@vqt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VptHook, defaultInitRange, promptLayout, type VptConfig } from '../src/index.js';
import { crossEntropy, maxAbsDiff, tapeLength, TINY } from './helpers.js';

let vit: VisionTransformer;
let images: tf.Tensor4D;
const deep4: typeof TINY = { ...TINY, depth: 4 };
const shape = { depth: deep4.depth, dim: deep4.dim, patchSize: deep4.patchSize };
const labels = [0, 1, 2, 1];

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  vit = randomVit(deep4, 3);
  images = tf.randomNormal([4, 3, 32, 32], 0, 1, 'float32', 9) as tf.Tensor4D;
});
afterAll(() => {
  images.dispose();
  vit.dispose();
});

/** Tape nodes and peak new buffer bytes of one loss-and-gradient step. */
async function stepCost(config: Partial<VptConfig>): Promise<{ tape: number; bytes: number; gradientNorms: number[] }> {
  const hook = new VptHook(shape, { prompts: 3, dropout: 0.1, ...config, seed: 1 });
  const classifier = new HookedClassifier(vit, [hook], 3);
  tf.tidy(() => classifier.head.weight.assign(tf.randomNormal([deep4.dim, 3], 0, 0.3, 'float32', 2)));
  let tape = -1;
  let gradientNorms: number[] = [];
  const bytes = await peakNewBufferBytes(() => {
    const { value, grads } = tf.variableGrads(() => {
      const loss = crossEntropy(classifier.logits({ images, labels: Int32Array.from(labels) }, { training: true, seed: 4 }), labels);
      tape = tapeLength();
      return loss;
    }, hook.prompts);
    gradientNorms = hook.prompts.map((P) => tf.tidy(() => tf.norm(grads[P.name]).dataSync()[0]));
    tf.dispose([value, ...Object.values(grads)]);
  });
  classifier.dispose();
  hook.dispose();
  return { tape, bytes, gradientNorms };
}

describe('VptHook', () => {
  it('lays out prompts for deep, shallow and the last k blocks', () => {
    expect(promptLayout({ deep: true }, 12)).toEqual({ firstBlock: 0, promptSets: 12 });
    expect(promptLayout({ deep: true, lastBlocks: 4 }, 12)).toEqual({ firstBlock: 8, promptSets: 4 });
    expect(promptLayout({ deep: false }, 12)).toEqual({ firstBlock: 0, promptSets: 1 });
    expect(promptLayout({ deep: false, lastBlocks: 2 }, 12)).toEqual({ firstBlock: 10, promptSets: 1 });
    expect(() => promptLayout({ deep: true, lastBlocks: 13 }, 12)).toThrow(/lastBlocks must be an integer in 1\.\.12/);
    expect(defaultInitRange(16, 768)).toBeCloseTo(0.0625, 12);
  });

  it('initialises uniform in +-sqrt(6/(3p^2+D)), seeded', () => {
    const a = new VptHook(shape, { prompts: 50, seed: 7 });
    const b = new VptHook(shape, { prompts: 50, seed: 7 });
    const c = new VptHook(shape, { prompts: 50, seed: 8 });
    const bound = defaultInitRange(deep4.patchSize, deep4.dim);
    const values = a.stackedPrompts();
    const data = values.dataSync();
    expect(values.shape).toEqual([4, 50, deep4.dim]);
    expect(Math.max(...Array.from(data, Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...Array.from(data, Math.abs))).toBeGreaterThan(0.95 * bound);
    // Uniform: variance bound^2 / 3.
    const variance = Array.from(data).reduce((s, v) => s + v * v, 0) / data.length;
    expect(variance).toBeCloseTo((bound * bound) / 3, 3);
    expect(maxAbsDiff(values, b.stackedPrompts())).toBe(0);
    expect(maxAbsDiff(values, c.stackedPrompts())).toBeGreaterThan(0.01);
    tf.dispose(values);
    for (const hook of [a, b, c]) hook.dispose();
  });

  it('inserts [CLS, P, patches] and leaves [CLS, patches] after each deep block', () => {
    const hook = new VptHook(shape, { prompts: 2, lastBlocks: 2, seed: 1 });
    const ctx = (block: number) => ({ block, depth: 4, dim: deep4.dim, batchSize: 1, training: false, seed: 0, keep: <T>(t: T) => t });
    tf.tidy(() => {
      const tokens = tf.randomNormal([1, 17, deep4.dim]) as tf.Tensor3D;
      expect(hook.beforeBlock(tokens, ctx(1))).toBe(tokens); // block 1 is before the last 2
      const extended = hook.beforeBlock(tokens, ctx(2));
      expect(extended.shape).toEqual([1, 19, deep4.dim]);
      expect(maxAbsDiff(tf.slice(extended, [0, 0, 0], [1, 1, -1]), tf.slice(tokens, [0, 0, 0], [1, 1, -1]))).toBe(0);
      expect(maxAbsDiff(tf.slice(extended, [0, 1, 0], [1, 2, -1]), tf.expandDims(hook.prompts[0], 0))).toBe(0);
      expect(maxAbsDiff(tf.slice(extended, [0, 3, 0], [1, -1, -1]), tf.slice(tokens, [0, 1, 0], [1, -1, -1]))).toBe(0);
      expect(maxAbsDiff(hook.afterBlock(extended, ctx(2)), tokens)).toBe(0);
    });
    hook.dispose();
  });

  it('prompt dropout: per image, inverted scaling, seeded by step and block; off at inference', () => {
    const hook = new VptHook(shape, { prompts: 64, dropout: 0.25, seed: 1 });
    const ctx = (block: number, seed: number, training = true) => ({ block, depth: 4, dim: deep4.dim, batchSize: 2, training, seed, keep: <T>(t: T) => t });
    tf.tidy(() => {
      const tokens = tf.zeros([2, 17, deep4.dim]) as tf.Tensor3D;
      const prompts = (block: number, seed: number, training = true) => tf.slice(hook.beforeBlock(tokens, ctx(block, seed, training)), [0, 1, 0], [2, 64, -1]);
      const P = tf.expandDims(hook.prompts[0], 0);
      const ratio = tf.div(prompts(0, 5), P); // mask values: 0 or 1 / (1 - rate)
      const values = Array.from(ratio.dataSync());
      const kept = values.filter((v) => Math.abs(v - 1 / 0.75) < 1e-4).length;
      const dropped = values.filter((v) => Math.abs(v) < 1e-6).length;
      expect(kept + dropped).toBe(values.length);
      expect(dropped / values.length).toBeGreaterThan(0.2);
      expect(dropped / values.length).toBeLessThan(0.3);
      const [first, second] = tf.split(ratio, 2, 0);
      expect(maxAbsDiff(first, second)).toBeGreaterThan(0); // independent masks per image
      expect(maxAbsDiff(prompts(0, 5), prompts(0, 5))).toBe(0);
      expect(maxAbsDiff(prompts(0, 5), prompts(0, 6))).toBeGreaterThan(0);
      expect(maxAbsDiff(tf.div(prompts(1, 5), tf.expandDims(hook.prompts[1], 0)), ratio)).toBeGreaterThan(0);
      expect(maxAbsDiff(prompts(0, 5, false), tf.tile(P, [2, 1, 1]))).toBe(0);
    });
    hook.dispose();
  });

  it('refuses a backbone of another shape and prompts of the wrong shape, naming the tensor', () => {
    const hook = new VptHook(shape, { prompts: 2, seed: 1 });
    const ctx = { block: 0, depth: 12, dim: deep4.dim, batchSize: 1, training: false, seed: 0, keep: <T>(t: T) => t };
    const tokens = tf.zeros([1, 17, deep4.dim]) as tf.Tensor3D;
    expect(() => hook.beforeBlock(tokens, ctx)).toThrow(/made for depth 4, dim 48; the backbone has depth 12, dim 48/);
    expect(() => hook.setPrompts({ shape: [3, 2, deep4.dim], data: new Float32Array(3 * 2 * deep4.dim) }, 'a.safetensors: vpt.prompts')).toThrow(
      /a\.safetensors: vpt\.prompts must be \[4, 2, 48\] \(4 prompted blocks, 2 prompts, dim 48\), got \[3, 2, 48\]/,
    );
    expect(() => hook.setPrompts({ shape: [4, 2, deep4.dim], data: new Float32Array(4 * 2 * deep4.dim).fill(NaN) })).toThrow(/vpt\.prompts holds NaN/);
    tokens.dispose();
    hook.dispose();
  });

  it('lastBlocks keeps the earlier blocks off the tape: tape and step memory grow by one block per prompted block', async () => {
    const costs = [];
    for (const lastBlocks of [1, 2, 3, 4]) costs.push(await stepCost({ deep: true, lastBlocks }));
    const shallowLast1 = await stepCost({ deep: false, lastBlocks: 1 });
    const perBlock = costs[1].tape - costs[0].tape;
    console.log(
      'tape nodes for lastBlocks 1..4:',
      costs.map((c) => c.tape),
      'step peak new bytes:',
      costs.map((c) => c.bytes),
    );
    expect(perBlock).toBeGreaterThan(30);
    // Each extra prompted block adds exactly one block's ops; the rest (head, final norm, the last block) is shared.
    expect(costs[2].tape - costs[1].tape).toBe(perBlock);
    expect(costs[3].tape - costs[2].tape).toBe(perBlock);
    // One prompted block, the final norm and the head: any earlier block on the tape would add another perBlock.
    expect(costs[0].tape).toBeLessThan(1.5 * perBlock);
    expect(shallowLast1.tape).toBe(costs[0].tape);
    expect(costs[0].bytes).toBeLessThan(costs[3].bytes);
    // Every prompt set gets a gradient.
    for (const c of costs) for (const n of c.gradientNorms) expect(n).toBeGreaterThan(0);
  });

  it('keeps tf.memory flat over training steps', () => {
    const hook = new VptHook(shape, { prompts: 2, dropout: 0.1, seed: 1 });
    const classifier = new HookedClassifier(vit, [hook], 3);
    const optimizer = tf.train.momentum(0.01, 0.9);
    const counts: number[] = [];
    for (let step = 0; step < 4; step++) {
      const loss = optimizer.minimize(
        () => crossEntropy(classifier.logits({ images, labels: Int32Array.from(labels) }, { training: true, seed: step }), labels),
        true,
        classifier.trainableVariables(),
      );
      loss?.dispose();
      counts.push(tf.memory().numTensors);
    }
    // The first step creates the momentum accumulators; then nothing grows.
    expect(new Set(counts.slice(1)).size).toBe(1);
    optimizer.dispose();
    classifier.dispose();
    hook.dispose();
  });
});
