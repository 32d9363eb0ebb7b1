import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { groupNorms, groupSoftThreshold } from '../src/index.js';
import { useWasmBackend } from './backend.js';

beforeAll(useWasmBackend);

describe('groupSoftThreshold', () => {
  it('matches a hand-computed example, with exact zeros at and below the threshold', () => {
    const weight = tf.tensor2d([
      [3, 4], //    norm 5    -> factor 1 - 1/5 = 0.8
      [1.5, -2], // norm 2.5  -> factor 1 - 1/2.5 = 0.6
      [0.6, 0.8], // norm 1   -> exactly on the threshold: zero
      [0.3, 0.4], // norm 0.5 -> zero
      [0, 0], //    stays zero (no 0/0)
    ]);
    const shrunk = groupSoftThreshold(weight, 1);
    const values = Array.from(shrunk.dataSync());
    const expected = [2.4, 3.2, 0.9, -1.2, 0, 0, 0, 0, 0, 0];
    values.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
    for (let i = 4; i < 10; i++) expect(values[i]).toBe(0);
    tf.dispose([weight, shrunk]);
  });

  it('is the identity at threshold 0 and rejects negative thresholds', () => {
    const weight = tf.tensor2d([[1, -2], [0, 0]]);
    const same = groupSoftThreshold(weight, 0);
    expect(Array.from(same.dataSync())).toEqual([1, -2, 0, 0]);
    expect(() => groupSoftThreshold(weight, -1)).toThrow();
    tf.dispose([weight, same]);
  });

  it('computes one L2 norm per row', () => {
    const weight = tf.tensor2d([[3, 4, 0], [0, 0, 0], [1, 2, 2]]);
    const norms = groupNorms(weight);
    expect(Array.from(norms.dataSync())).toEqual([5, 0, 3]);
    tf.dispose([weight, norms]);
  });
});
