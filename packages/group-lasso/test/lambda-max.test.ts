import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeHead, groupLassoLambdaMax, LAMBDA_MAX_SLACK, trainGroupLassoHead } from '../src/index.js';
import { useWasmBackend } from './backend.js';
import { syntheticTensors, type SyntheticTensors } from './helpers.js';

const NUM_CLASSES = 3;
let set: SyntheticTensors;

beforeAll(async () => {
  await useWasmBackend();
  set = syntheticTensors({ numTrain: 300, numTest: 1, numFeatures: 200, numInformative: 10, numClasses: NUM_CLASSES, signal: 1, seed: 11 });
});
afterAll(() => set.dispose());

/** max_f ||X[:,f]^T (priors - Y) / n|| in float64 on the host. */
function hostLambdaMax(features: Float32Array, labels: Int32Array, numFeatures: number, numClasses: number): number {
  const n = labels.length;
  const priors = new Float64Array(numClasses);
  for (const label of labels) priors[label] += 1 / n;
  let max = 0;
  for (let f = 0; f < numFeatures; f++) {
    let squared = 0;
    for (let c = 0; c < numClasses; c++) {
      let g = 0;
      for (let i = 0; i < n; i++) g += features[i * numFeatures + f] * (priors[c] - (labels[i] === c ? 1 : 0));
      squared += (g / n) ** 2;
    }
    max = Math.max(max, Math.sqrt(squared));
  }
  return max;
}

describe('lambdaMax and exact zeros', () => {
  it('lambdaMax is the largest group gradient at W = 0 (plus the float32 slack)', () => {
    const lambdaMax = groupLassoLambdaMax(set.train, set.data.train.labels, NUM_CLASSES);
    const expected = hostLambdaMax(set.data.train.features, set.data.train.labels, 200, NUM_CLASSES);
    expect(lambdaMax / (1 + LAMBDA_MAX_SLACK)).toBeCloseTo(expected, 5);
  });

  it('gives all groups exactly zero for lambda >= lambdaMax', () => {
    for (const ratio of [1, 1.5, 10]) {
      const head = trainGroupLassoHead(set.train, set.data.train.labels, NUM_CLASSES, { lambdaRatio: ratio });
      expect(head.numNonzeroGroups).toBe(0);
      expect(head.weight.dataSync().every((v) => v === 0)).toBe(true);
      // The bias stays at the log class priors, the optimum for W = 0.
      expect(head.converged).toBe(true);
      disposeHead(head);
    }
  });

  it('lets groups in just below lambdaMax, more the lower lambda goes', () => {
    const counts = [0.99, 0.9, 0.5].map((ratio) => {
      const head = trainGroupLassoHead(set.train, set.data.train.labels, NUM_CLASSES, { lambdaRatio: ratio });
      disposeHead(head);
      return head.numNonzeroGroups;
    });
    expect(counts[0]).toBeGreaterThan(0);
    expect(counts[1]).toBeGreaterThanOrEqual(counts[0]);
    expect(counts[2]).toBeGreaterThan(counts[1]);
  });

  it('is unchanged by the L2 term (its gradient vanishes at W = 0)', () => {
    const plain = trainGroupLassoHead(set.train, set.data.train.labels, NUM_CLASSES, { lambdaRatio: 1 });
    const withL2 = trainGroupLassoHead(set.train, set.data.train.labels, NUM_CLASSES, { lambdaRatio: 1, l2: 0.1 });
    expect(withL2.lambdaMax).toBe(plain.lambdaMax);
    expect(withL2.numNonzeroGroups).toBe(0);
    disposeHead(plain);
    disposeHead(withL2);
  });
});
