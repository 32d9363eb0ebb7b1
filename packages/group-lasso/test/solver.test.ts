import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeHead, oneHotTargets, smoothLossAndGradient, trainGroupLassoHead, trainLinearHead } from '../src/index.js';
import { useWasmBackend } from './backend.js';
import { syntheticTensors, type SyntheticTensors } from './helpers.js';

const NUM_CLASSES = 3;
let set: SyntheticTensors;

beforeAll(async () => {
  await useWasmBackend();
  set = syntheticTensors({ numTrain: 200, numTest: 1, numFeatures: 60, numInformative: 8, numClasses: NUM_CLASSES, signal: 1.5, seed: 5 });
});
afterAll(() => set.dispose());

/** Per group: [||grad_f||, grad_f . W_f / ||W_f|| (NaN for zero groups)]. */
function groupKkt(weight: tf.Tensor2D, bias: tf.Tensor1D, l2: number) {
  const targets = oneHotTargets(set.data.train.labels, NUM_CLASSES);
  const gradient = smoothLossAndGradient({ features: set.train, targets, l2 }, { weight, bias });
  const g = gradient.gradWeight.arraySync();
  const w = weight.arraySync();
  const gb = gradient.gradBias.arraySync();
  tf.dispose([targets, gradient.gradWeight, gradient.gradBias]);
  const groups = g.map((row, f) => {
    const norm = Math.hypot(...w[f]);
    return { gradNorm: Math.hypot(...row), alongWeight: norm > 0 ? row.reduce((s, v, c) => s + (v * w[f][c]) / norm, 0) : NaN };
  });
  return { groups, biasGradNorm: Math.hypot(...gb) };
}

describe('FISTA solver', () => {
  it('decreases the objective monotonically', () => {
    for (const stepGrowth of [1, 1.2]) {
      const head = trainGroupLassoHead(set.train, set.data.train.labels, NUM_CLASSES, { lambdaRatio: 0.2, stepGrowth });
      const h = head.history;
      for (let k = 1; k < h.length; k++) expect(h[k]).toBeLessThanOrEqual(h[k - 1]);
      expect(h[h.length - 1]).toBeLessThan(h[0] - 0.05);
      expect(head.converged).toBe(true);
      disposeHead(head);
    }
  });

  it('reaches a point that satisfies the group-lasso optimality (KKT) conditions', () => {
    const head = trainGroupLassoHead(set.train, set.data.train.labels, NUM_CLASSES, { lambdaRatio: 0.2 });
    const { groups, biasGradNorm } = groupKkt(head.weight, head.bias, 0);
    const lambda = head.lambda;
    let worst = 0;
    groups.forEach((group, f) => {
      if (head.groupNorms[f] > 0) {
        // Nonzero group: grad_f = -lambda W_f / ||W_f||.
        worst = Math.max(worst, Math.abs(group.alongWeight + lambda), Math.abs(group.gradNorm - lambda));
      } else {
        worst = Math.max(worst, group.gradNorm - lambda);
      }
    });
    // Measured: worst violation 4.4e-4 lambda, bias gradient 2.9e-5 (15 iterations); float32 limits both.
    console.info(`KKT: worst violation / lambda = ${(worst / lambda).toExponential(2)}, bias gradient ${biasGradNorm.toExponential(2)}, ${head.iterations} iterations`);
    expect(worst / lambda).toBeLessThan(2e-3);
    expect(biasGradNorm).toBeLessThan(2e-4);
    expect(head.numNonzeroGroups).toBeGreaterThan(0);
    expect(head.numNonzeroGroups).toBeLessThan(60);
    disposeHead(head);
  });

  it('trains a plain L2-regularised head to a vanishing gradient', () => {
    const l2 = 1e-2;
    const gradientNorm = (head: { weight: tf.Tensor2D; bias: tf.Tensor1D }) => {
      const { groups, biasGradNorm } = groupKkt(head.weight, head.bias, l2);
      return Math.hypot(...groups.map((g) => g.gradNorm), biasGradNorm);
    };
    const start = trainLinearHead(set.train, set.data.train.labels, NUM_CLASSES, { l2, maxIterations: 0 });
    const head = trainLinearHead(set.train, set.data.train.labels, NUM_CLASSES, { l2 });
    const initial = gradientNorm(start);
    const final = gradientNorm(head);
    console.info(`plain head: gradient norm ${initial.toExponential(2)} -> ${final.toExponential(2)} in ${head.iterations} iterations`);
    // Measured 0.70 -> 4.2e-5 (35 iterations).
    expect(final).toBeLessThan(1e-3 * initial);
    const h = head.history;
    for (let k = 1; k < h.length; k++) expect(h[k]).toBeLessThanOrEqual(h[k - 1]);
    disposeHead(start);
    disposeHead(head);
  });

  it('is deterministic: two runs give bit-identical heads', () => {
    const a = trainGroupLassoHead(set.train, set.data.train.labels, NUM_CLASSES, { lambdaRatio: 0.3 });
    const b = trainGroupLassoHead(set.train, set.data.train.labels, NUM_CLASSES, { lambdaRatio: 0.3 });
    expect(Array.from(b.weight.dataSync())).toEqual(Array.from(a.weight.dataSync()));
    expect(Array.from(b.bias.dataSync())).toEqual(Array.from(a.bias.dataSync()));
    expect(b.history).toEqual(a.history);
    disposeHead(a);
    disposeHead(b);
  });

  it('agrees between the wasm and cpu backends', async () => {
    const onWasm = trainGroupLassoHead(set.train, set.data.train.labels, NUM_CLASSES, { lambdaRatio: 0.3 });
    const wasmNorms = onWasm.groupNorms;
    disposeHead(onWasm);
    const features = set.train.arraySync();
    await tf.setBackend('cpu');
    try {
      const cpuFeatures = tf.tensor2d(features);
      const onCpu = trainGroupLassoHead(cpuFeatures, set.data.train.labels, NUM_CLASSES, { lambdaRatio: 0.3 });
      for (let f = 0; f < wasmNorms.length; f++) expect(Math.abs(onCpu.groupNorms[f] - wasmNorms[f])).toBeLessThan(1e-3);
      disposeHead(onCpu);
      cpuFeatures.dispose();
    } finally {
      await useWasmBackend();
    }
  });

  it('rejects bad input', () => {
    const labels = set.data.train.labels;
    expect(() => trainGroupLassoHead(set.train, labels, NUM_CLASSES, {})).toThrow(/exactly one/);
    expect(() => trainGroupLassoHead(set.train, labels, NUM_CLASSES, { lambda: 1, lambdaRatio: 1 })).toThrow(/exactly one/);
    expect(() => trainGroupLassoHead(set.train, labels.slice(1), NUM_CLASSES, { lambda: 0.1 })).toThrow(/labels/);
    expect(() => trainLinearHead(set.train, Int32Array.from(labels, () => 7), NUM_CLASSES)).toThrow(/outside/);
  });
});
