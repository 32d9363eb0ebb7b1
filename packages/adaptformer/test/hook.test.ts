import * as tf from '@tensorflow/tfjs';
import type { HostTensor, VisionTransformer } from '@vqt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdaptFormerHook, adapterTensorNames, type AdaptFormerHookOptions } from '../src/index.js';
import { clsTape, expectDropoutInTrainingOnly, expectGradientsMatchFiniteDifferences, expectTrainingKeepsTensorsFlat, hookTestModel, maxAbsDiff, TINY } from './helpers.js';

let vit: VisionTransformer;
let x: tf.Tensor4D;
const R = 6;
const options = (blocks: number[], dropout = 0): AdaptFormerHookOptions => ({ dim: TINY.dim, bottleneck: R, scale: 0.1, dropout, blocks });

/** Random adapters (nonzero up), as an adapter file would hold them. */
function randomTensors(blocks: number[], seed: number): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  let s = seed;
  const normal = (shape: number[], std: number): HostTensor => ({ shape, data: tf.tidy(() => tf.randomNormal(shape, 0, std, 'float32', s++).dataSync() as Float32Array) });
  for (const m of blocks) {
    const n = adapterTensorNames(m);
    out.set(n.downWeight, normal([R, TINY.dim], 0.3)).set(n.downBias, normal([R], 0.1)).set(n.upWeight, normal([TINY.dim, R], 0.5)).set(n.upBias, normal([TINY.dim], 0.1));
  }
  return out;
}

beforeAll(async () => void ({ vit, x } = await hookTestModel()));
afterAll(() => {
  vit.dispose();
  x.dispose();
});

describe('AdaptFormerHook', () => {
  it('initialises like the reference: down U(+-1/sqrt D), up and biases zero, so it starts as the identity', () => {
    const hook = AdaptFormerHook.initialised(options([0, 1, 2]), 11);
    const bound = 1 / Math.sqrt(TINY.dim);
    for (const a of hook.modules.values()) {
      const down = a.down.dataSync();
      expect(a.down.shape).toEqual([TINY.dim, R]);
      expect(Math.max(...down.map(Math.abs))).toBeLessThanOrEqual(bound);
      expect(Math.max(...down.map(Math.abs))).toBeGreaterThan(0.9 * bound);
      for (const zero of [a.up, a.downBias, a.upBias]) expect(tf.tidy(() => tf.max(tf.abs(zero)).dataSync()[0])).toBe(0);
    }
    // Same seed, same weights; another seed, others.
    const again = AdaptFormerHook.initialised(options([0, 1, 2]), 11);
    const other = AdaptFormerHook.initialised(options([0, 1, 2]), 12);
    expect(maxAbsDiff(again.modules.get(1)!.down, hook.modules.get(1)!.down)).toBe(0);
    expect(maxAbsDiff(other.modules.get(1)!.down, hook.modules.get(1)!.down)).toBeGreaterThan(0);
    tf.tidy(() => {
      expect(maxAbsDiff(vit.forward(x, { hooks: [hook] }).cls, vit.forward(x).cls)).toBe(0);
    });
    [hook, again, other].forEach((h) => h.dispose());
  });

  it('adapts only the chosen blocks', () => {
    const hook = AdaptFormerHook.fromTensors(options([1]), randomTensors([1], 20));
    tf.tidy(() => {
      const adapted = vit.forward(x, { hooks: [hook], returnBlocks: true }).blocks!;
      const plain = vit.forward(x, { returnBlocks: true }).blocks!;
      expect(maxAbsDiff(adapted[0], plain[0])).toBe(0);
      expect(maxAbsDiff(adapted[1], plain[1])).toBeGreaterThan(1e-3);
    });
    expect(hook.firstAdaptedBlock()).toBe(1);
    hook.dispose();
  });

  it('gradients of every adapter tensor match central finite differences', () => {
    const hook = AdaptFormerHook.fromTensors(options([0, 2]), randomTensors([0, 2], 30));
    // Directional derivatives along random directions, one variable at a time and all together.
    expectGradientsMatchFiniteDifferences(vit, x, hook, hook.trainableVariables(), 300);
    hook.dispose();
  });

  it('keeps blocks before the first adapted one off the gradient tape (lastBlocks)', () => {
    const recorded = (blocks: number[]) => {
      const hook = AdaptFormerHook.initialised(options(blocks), 1);
      const tape = clsTape(vit, x, hook);
      hook.dispose();
      return tape;
    };
    const last1 = recorded([2]);
    const last2 = recorded([1, 2]);
    const all = recorded([0, 1, 2]);
    const perBlock = last1.mlpHidden;
    expect(perBlock).toBeGreaterThan(0);
    expect(last2.mlpHidden).toBe(2 * perBlock);
    expect(all.mlpHidden).toBe(3 * perBlock);
    expect(last1.shapes.length).toBeLessThan(last2.shapes.length);
    expect(last2.shapes.length).toBeLessThan(all.shapes.length);
  });

  it('drops adapter activations in training only, seeded by the step seed and block', () => {
    const hook = AdaptFormerHook.fromTensors(options([0, 1, 2], 0.5), randomTensors([0, 1, 2], 40));
    expectDropoutInTrainingOnly(vit, x, hook);
    hook.dispose();
  });

  it('training steps keep tf.memory().numTensors flat', async () => {
    const hook = AdaptFormerHook.initialised(options([1, 2], 0.1), 5);
    await expectTrainingKeepsTensorsFlat(vit, hook);
    hook.dispose();
  });
});
