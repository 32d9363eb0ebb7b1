import * as tf from '@tensorflow/tfjs';
import { HookedClassifier, initBackend, randomVit, trainModel, imageSplitSource, type HostTensor, type VisionTransformer } from '@vqt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdaptFormerHook, adapterTensorNames, type AdaptFormerHookOptions } from '../src/index.js';
import { images, maxAbsDiff, memorySplit, TINY } from './helpers.js';

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

/** Records which tensor shapes the gradient tape holds for one loss. */
function tapeShapes(fn: () => tf.Scalar, vars: tf.Variable[]): string[] {
  let shapes: string[] = [];
  const { grads, value } = tf.variableGrads(() => {
    const loss = fn();
    const tape = (tf.engine() as unknown as { state: { activeTape: { outputs: tf.Tensor[] }[] } }).state.activeTape;
    shapes = tape.flatMap((node) => node.outputs.map((o) => o.shape.join('x')));
    return loss;
  }, vars);
  tf.dispose([value, ...Object.values(grads)]);
  return shapes;
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  vit = randomVit(TINY, 3);
  x = images(2, TINY.imageSize, 7);
});
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
    const vars = hook.trainableVariables();
    const weights = tf.randomNormal([2, TINY.dim], 0, 1, 'float32', 31);
    const loss = () => tf.sum(tf.mul(vit.forward(x, { hooks: [hook] }).cls, weights)) as tf.Scalar;
    const { grads, value } = tf.variableGrads(loss, vars);
    // Directional derivatives along random directions, one variable at a time and all together.
    const eps = 1e-2;
    const check = (subset: tf.Variable[], seed: number) => {
      // Random directions of unit total norm, so eps bounds the step whatever the variable count.
      const raw = subset.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', seed + i));
      const norm = Math.sqrt(tf.tidy(() => raw.reduce((n, d) => n + tf.sum(tf.square(d)).dataSync()[0], 0)));
      const directions = raw.map((d) => tf.div(d, norm));
      tf.dispose(raw);
      const originals = subset.map((v) => tf.clone(v));
      const at = (sign: number) => {
        subset.forEach((v, i) => v.assign(tf.tidy(() => tf.add(originals[i], tf.mul(directions[i], sign * eps)))));
        return tf.tidy(() => loss().dataSync()[0]);
      };
      const numeric = (at(1) - at(-1)) / (2 * eps);
      subset.forEach((v, i) => v.assign(originals[i]));
      const analytic = tf.tidy(() => subset.reduce((sum, v, i) => sum + tf.sum(tf.mul(grads[v.name], directions[i])).dataSync()[0], 0));
      tf.dispose([...directions, ...originals]);
      expect(Math.abs(analytic)).toBeGreaterThan(1e-2);
      expect(Math.abs(numeric - analytic)).toBeLessThan(1e-2 * Math.abs(analytic) + 1e-3);
    };
    vars.forEach((v, i) => check([v], 100 + 10 * i));
    check(vars, 300);
    tf.dispose([weights, value, ...Object.values(grads)]);
    hook.dispose();
  });

  it('keeps blocks before the first adapted one off the gradient tape (lastBlocks)', () => {
    const recorded = (blocks: number[]) => {
      const hook = AdaptFormerHook.initialised(options(blocks), 1);
      const shapes = tapeShapes(() => tf.sum(vit.forward(x, { hooks: [hook] }).cls) as tf.Scalar, hook.trainableVariables());
      hook.dispose();
      return shapes;
    };
    const g = TINY.imageSize / TINY.patchSize;
    const hidden = `${2 * (g * g + 1)}x${TINY.dim * TINY.mlpRatio}`; // a block's MLP hidden layer
    const count = (shapes: string[]) => shapes.filter((s) => s === hidden).length;
    const last1 = recorded([2]);
    const last2 = recorded([1, 2]);
    const all = recorded([0, 1, 2]);
    const perBlock = count(last1);
    expect(perBlock).toBeGreaterThan(0);
    expect(count(last2)).toBe(2 * perBlock);
    expect(count(all)).toBe(3 * perBlock);
    expect(last1.length).toBeLessThan(last2.length);
    expect(last2.length).toBeLessThan(all.length);
  });

  it('drops adapter activations in training only, seeded by the step seed and block', () => {
    const hook = AdaptFormerHook.fromTensors(options([0, 1, 2], 0.5), randomTensors([0, 1, 2], 40));
    tf.tidy(() => {
      const run = (training: boolean, seed: number) => vit.forward(x, { hooks: [hook], training, seed }).cls;
      expect(maxAbsDiff(run(false, 1), run(false, 2))).toBe(0);
      expect(maxAbsDiff(run(true, 1), run(true, 1))).toBe(0);
      expect(maxAbsDiff(run(true, 1), run(true, 2))).toBeGreaterThan(1e-4);
      expect(maxAbsDiff(run(true, 1), run(false, 1))).toBeGreaterThan(1e-4);
      // The frozen view a stacked method reads through: no variables, no dropout even in training.
      const frozen = hook.frozen();
      expect(frozen.trainableVariables()).toEqual([]);
      expect(maxAbsDiff(vit.forward(x, { hooks: [frozen], training: true, seed: 1 }).cls, run(false, 1))).toBe(0);
    });
    hook.dispose();
  });

  it('training steps keep tf.memory().numTensors flat', async () => {
    const hook = AdaptFormerHook.initialised(options([1, 2], 0.1), 5);
    const classifier = new HookedClassifier(vit, [hook], 3);
    const counts: number[] = [];
    await trainModel(classifier, imageSplitSource(memorySplit(6, 3, TINY.imageSize)), {
      epochs: 4, batchSize: 2, lr: 0.01, weightDecay: 1e-4, optimizer: 'adam', warmupEpochs: 0, seed: 3, progress: 'none',
      onEpochEnd: () => void counts.push(tf.memory().numTensors),
    });
    expect(counts.length).toBe(4);
    // Epoch 1 creates the optimiser's slots; after that nothing accumulates.
    expect(new Set(counts.slice(1)).size).toBe(1);
    classifier.dispose();
    hook.dispose();
  });
});
