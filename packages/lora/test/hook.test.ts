import * as tf from '@tensorflow/tfjs';
import type { HostTensor, LinearName, VisionTransformer } from '@vqt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linearShapes, LORA_TARGETS, LoraHook, loraTensorNames, type LoraHookOptions } from '../src/index.js';
import { clsTape, expectDropoutInTrainingOnly, expectGradientsMatchFiniteDifferences, expectTrainingKeepsTensorsFlat, hookTestModel, maxAbsDiff, TINY } from './helpers.js';

let vit: VisionTransformer;
let x: tf.Tensor4D;
const R = 3;
const options = (blocks: number[], targets: readonly LinearName[] = ['q', 'v'], dropout = 0): LoraHookOptions => ({
  rank: R, alpha: 6, targets, dropout, blocks, shapes: linearShapes(vit),
});

/** Random deltas (nonzero B), as an adapter file would hold them. */
function randomTensors(blocks: number[], targets: readonly LinearName[], seed: number): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  let s = seed;
  const normal = (shape: number[], std: number): HostTensor => ({ shape, data: tf.tidy(() => tf.randomNormal(shape, 0, std, 'float32', s++).dataSync() as Float32Array) });
  const shapes = linearShapes(vit);
  for (const m of blocks) {
    for (const t of targets) {
      const [inputs, outputs] = shapes[t];
      const n = loraTensorNames(m, t);
      out.set(n.a, normal([R, inputs], 0.2)).set(n.b, normal([outputs, R], 0.1));
    }
  }
  return out;
}

beforeAll(async () => void ({ vit, x } = await hookTestModel()));
afterAll(() => {
  vit.dispose();
  x.dispose();
});

describe('LoraHook', () => {
  it('initialises like PEFT: A U(+-1/sqrt(in)), B zero, so it starts as the identity', () => {
    const hook = LoraHook.initialised(options([0, 1, 2], LORA_TARGETS), 11);
    for (const pairs of hook.modules.values()) {
      for (const [t, pair] of pairs) {
        const inputs = linearShapes(vit)[t][0];
        const a = pair.a.dataSync();
        expect(pair.a.shape).toEqual([inputs, R]);
        expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(inputs));
        expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(0.8 / Math.sqrt(inputs));
        expect(tf.tidy(() => tf.max(tf.abs(pair.b)).dataSync()[0])).toBe(0);
      }
    }
    tf.tidy(() => {
      expect(maxAbsDiff(vit.forward(x, { hooks: [hook] }).cls, vit.forward(x).cls)).toBeLessThan(1e-6);
    });
    hook.dispose();
  });

  it('adapts only the chosen blocks and Linears', () => {
    const hook = LoraHook.fromTensors(options([1], ['fc2']), randomTensors([1], ['fc2'], 20));
    const ctx = { block: 1, depth: 3, dim: TINY.dim, batchSize: 1, training: false, seed: 0, keep: <T,>(t: T) => t };
    tf.tidy(() => {
      expect(hook.linearDelta('q', tf.ones([2, TINY.dim]), ctx)).toBeUndefined();
      expect(hook.linearDelta('fc2', tf.ones([2, TINY.dim * 4]), { ...ctx, block: 0 })).toBeUndefined();
      expect(hook.linearDelta('fc2', tf.ones([2, TINY.dim * 4]), ctx)!.shape).toEqual([2, TINY.dim]);
      const adapted = vit.forward(x, { hooks: [hook], returnBlocks: true }).blocks!;
      const plain = vit.forward(x, { returnBlocks: true }).blocks!;
      expect(maxAbsDiff(adapted[0], plain[0])).toBe(0);
      expect(maxAbsDiff(adapted[1], plain[1])).toBeGreaterThan(1e-3);
    });
    hook.dispose();
  });

  it('gradients of every lora_A and lora_B match central finite differences', () => {
    const hook = LoraHook.fromTensors(options([0, 2], LORA_TARGETS), randomTensors([0, 2], LORA_TARGETS, 30));
    // Each variable of block 0 (its gradient crosses blocks 1 and 2), then all variables together.
    const block0 = [...hook.modules.get(0)!.values()].flatMap((p) => [p.a, p.b]);
    expectGradientsMatchFiniteDifferences(vit, x, hook, block0, 500);
    hook.dispose();
  });

  it('keeps blocks before the first adapted one off the gradient tape (lastBlocks)', () => {
    const recorded = (blocks: number[]) => {
      const hook = LoraHook.initialised(options(blocks), 1);
      const { mlpHidden } = clsTape(vit, x, hook);
      hook.dispose();
      return mlpHidden;
    };
    const perBlock = recorded([2]);
    expect(perBlock).toBeGreaterThan(0);
    expect(recorded([1, 2])).toBe(2 * perBlock);
    expect(recorded([0, 1, 2])).toBe(3 * perBlock);
  });

  it('drops the deltas\' input in training only, seeded by the step seed, block and target', () => {
    const hook = LoraHook.fromTensors(options([0, 1, 2], ['q', 'fc1'], 0.5), randomTensors([0, 1, 2], ['q', 'fc1'], 40));
    expectDropoutInTrainingOnly(vit, x, hook);
    hook.dispose();
  });

  for (const targets of [['q', 'v'], LORA_TARGETS] as const) {
    it(`merge() folds the deltas on ${targets.join(',')} into a hook-free backbone with the same outputs (<= 1e-5)`, () => {
      const blocks = [0, 2];
      const hook = LoraHook.fromTensors(options(blocks, targets), randomTensors(blocks, targets, 60));
      const before = tf.memory().numTensors;
      const merged = hook.merge(vit);
      tf.tidy(() => {
        const viaHook = vit.forward(x, { hooks: [hook], returnBlocks: true });
        const viaMerge = merged.forward(x, { returnBlocks: true });
        expect(maxAbsDiff(viaMerge.cls, viaHook.cls)).toBeLessThanOrEqual(1e-5);
        viaMerge.blocks!.forEach((b, m) => expect(maxAbsDiff(b, viaHook.blocks![m])).toBeLessThanOrEqual(1e-5));
        expect(maxAbsDiff(viaMerge.cls, vit.forward(x).cls)).toBeGreaterThan(1e-3);
      });
      // Only adapted weights are new; the merged model's other tensors share the backbone's data.
      expect(maxAbsDiff(merged.params.blocks[1].q.weight, vit.params.blocks[1].q.weight)).toBe(0);
      expect(maxAbsDiff(merged.params.blocks[0].q.weight, vit.params.blocks[0].q.weight)).toBeGreaterThan(0);
      merged.dispose();
      expect(tf.memory().numTensors).toBe(before);
      // The backbone survives the merged copy's disposal.
      tf.tidy(() => {
        expect(vit.forward(x).cls.shape).toEqual([2, TINY.dim]);
      });
      hook.dispose();
    });
  }

  it('training steps keep tf.memory().numTensors flat', async () => {
    const hook = LoraHook.initialised(options([1, 2], LORA_TARGETS, 0.1), 5);
    await expectTrainingKeepsTensorsFlat(vit, hook);
    hook.dispose();
  });
});
