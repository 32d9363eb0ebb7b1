import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { gatherColumns, keepCount, rankFeatures, selectFeatures } from '../src/index.js';
import { useWasmBackend } from './backend.js';

beforeAll(useWasmBackend);

describe('ranking and selection', () => {
  it('ranks by descending norm, zeros by the tie-break, then by index', () => {
    const norms = Float32Array.from([0, 2, 0, 5, 0, 1]);
    expect(Array.from(rankFeatures(norms))).toEqual([3, 1, 5, 0, 2, 4]);
    const gradients = Float32Array.from([0.1, 9, 0.3, 9, 0.2, 9]);
    expect(Array.from(rankFeatures(norms, gradients))).toEqual([3, 1, 5, 2, 4, 0]);
  });

  it('keeps the top fraction as ascending indices, at least one', () => {
    const norms = Float32Array.from([0.5, 3, 0, 2, 1]);
    expect(Array.from(selectFeatures(norms, 0.4))).toEqual([1, 3]);
    expect(Array.from(selectFeatures(norms, 0.01))).toEqual([1]);
    expect(Array.from(selectFeatures(norms, 1))).toEqual([0, 1, 2, 3, 4]);
    expect(keepCount(500, 20 / 500)).toBe(20);
    expect(() => selectFeatures(norms, 0)).toThrow();
    expect(() => selectFeatures(norms, 1.5)).toThrow();
  });

  it('gathers columns in the given order', () => {
    const features = tf.tensor2d([
      [0, 1, 2, 3],
      [10, 11, 12, 13],
    ]);
    const picked = gatherColumns(features, Int32Array.from([3, 1]));
    expect(picked.shape).toEqual([2, 2]);
    expect(Array.from(picked.dataSync())).toEqual([3, 1, 13, 11]);
    expect(() => gatherColumns(features, Int32Array.from([4]))).toThrow();
    tf.dispose([features, picked]);
  });
});
