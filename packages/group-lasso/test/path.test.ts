import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeHead, geometricLambdas, groupLassoPath, trainGroupLassoHead } from '../src/index.js';
import { useWasmBackend } from './backend.js';
import { syntheticTensors, type SyntheticTensors } from './helpers.js';

const NUM_CLASSES = 4;
let set: SyntheticTensors;

beforeAll(async () => {
  await useWasmBackend();
  set = syntheticTensors({ numTrain: 300, numTest: 1, numFeatures: 150, numInformative: 10, numClasses: NUM_CLASSES, signal: 1, seed: 21 });
});
afterAll(() => set.dispose());

describe('lambda path', () => {
  it('builds a geometric grid from lambdaMax down', () => {
    const grid = geometricLambdas(2, 3, 0.25);
    expect(grid[0]).toBe(2);
    expect(grid[1]).toBeCloseTo(1, 12);
    expect(grid[2]).toBeCloseTo(0.5, 12);
  });

  it('starts all-zero and lets more groups in as lambda falls; warm starts match cold solves', () => {
    const path = groupLassoPath(set.train, set.data.train.labels, NUM_CLASSES, { numLambdas: 6, minRatio: 0.05 });
    expect(path.points.map((p) => p.lambda)[0]).toBe(path.lambdaMax);
    expect(path.points[0].numNonzeroGroups).toBe(0);
    const counts = path.points.map((p) => p.numNonzeroGroups);
    for (let k = 1; k < counts.length; k++) expect(counts[k]).toBeGreaterThanOrEqual(counts[k - 1]);
    expect(counts[counts.length - 1]).toBeGreaterThan(10);

    const last = path.points[path.points.length - 1];
    const cold = trainGroupLassoHead(set.train, set.data.train.labels, NUM_CLASSES, { lambda: last.lambda });
    expect(Math.abs(cold.history[cold.history.length - 1] - last.objective)).toBeLessThan(1e-5);
    disposeHead(cold);
  });
});
