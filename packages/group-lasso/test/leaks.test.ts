import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyHead,
  disposeHead,
  estimateLipschitz,
  gatherColumns,
  groupLassoLambdaMax,
  groupLassoPath,
  groupLassoSelect,
  groupNorms,
  groupSoftThreshold,
  headAccuracy,
  trainGroupLassoHead,
  trainLinearHead,
} from '../src/index.js';
import { useWasmBackend } from './backend.js';
import { syntheticTensors, type SyntheticTensors } from './helpers.js';

const NUM_CLASSES = 3;
let set: SyntheticTensors;

beforeAll(async () => {
  await useWasmBackend();
  set = syntheticTensors({ numTrain: 120, numTest: 1, numFeatures: 40, numInformative: 5, numClasses: NUM_CLASSES, signal: 1, seed: 3 });
});
afterAll(() => set.dispose());

/** Runs `call`, then checks that exactly `returned(result)` new tensors exist, disposes them and checks the count is back. */
function expectNoLeak<T>(call: () => T, returned: (result: T) => tf.Tensor[]): void {
  const before = tf.memory().numTensors;
  const result = call();
  const owned = returned(result);
  expect(tf.memory().numTensors).toBe(before + owned.length);
  tf.dispose(owned);
  expect(tf.memory().numTensors).toBe(before);
}

describe('tensor hygiene', () => {
  const labels = () => set.data.train.labels;
  const head = (h: { weight: tf.Tensor; bias: tf.Tensor }) => [h.weight, h.bias];

  it('trainGroupLassoHead, including the all-zero and warm-start cases', () => {
    for (const lambdaRatio of [0.3, 1.2]) {
      expectNoLeak(() => trainGroupLassoHead(set.train, labels(), NUM_CLASSES, { lambdaRatio, l2: 1e-3 }), head);
    }
    const warm = trainGroupLassoHead(set.train, labels(), NUM_CLASSES, { lambdaRatio: 0.5 });
    expectNoLeak(() => trainGroupLassoHead(set.train, labels(), NUM_CLASSES, { lambdaRatio: 0.3, warmStart: warm }), head);
    disposeHead(warm);
  });

  it('trainLinearHead, groupLassoSelect, groupLassoPath, groupLassoLambdaMax', () => {
    expectNoLeak(() => trainLinearHead(set.train, labels(), NUM_CLASSES, { l2: 1e-2 }), head);
    expectNoLeak(() => groupLassoSelect(set.train, labels(), NUM_CLASSES, { keepFraction: 0.25, lambdaRatio: 0.3 }), (s) => head(s.head));
    expectNoLeak(() => groupLassoPath(set.train, labels(), NUM_CLASSES, { numLambdas: 4 }), () => []);
    expectNoLeak(() => groupLassoLambdaMax(set.train, labels(), NUM_CLASSES), () => []);
    expectNoLeak(() => estimateLipschitz(set.train, 0), () => []);
  });

  it('helpers and operators', () => {
    const trained = trainLinearHead(set.train, labels(), NUM_CLASSES);
    expectNoLeak(() => applyHead(set.train, trained), (t) => [t]);
    expectNoLeak(() => headAccuracy(set.train, labels(), trained), () => []);
    expectNoLeak(() => groupNorms(trained.weight), (t) => [t]);
    expectNoLeak(() => groupSoftThreshold(trained.weight, 0.1), (t) => [t]);
    expectNoLeak(() => gatherColumns(set.train, Int32Array.from([0, 5, 7])), (t) => [t]);
    disposeHead(trained);
  });

  it('errors thrown mid-call leave nothing behind', () => {
    const before = tf.memory().numTensors;
    expect(() => trainGroupLassoHead(set.train, labels(), NUM_CLASSES, {})).toThrow();
    const badStart = { weight: tf.zeros([3, 3]) as tf.Tensor2D, bias: tf.zeros([3]) as tf.Tensor1D };
    expect(() => trainGroupLassoHead(set.train, labels(), NUM_CLASSES, { lambda: 0.1, warmStart: badStart })).toThrow(/warmStart/);
    disposeHead(badStart);
    const stopAtThree = (iteration: number) => {
      if (iteration === 3) throw new Error('stop');
    };
    expect(() => trainGroupLassoHead(set.train, labels(), NUM_CLASSES, { lambdaRatio: 0.2, onIteration: stopAtThree })).toThrow('stop');
    expect(tf.memory().numTensors).toBe(before);
  });
});
