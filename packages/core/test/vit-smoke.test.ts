import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, randomVit } from '../src/index.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

describe('smoke', () => {
  it('runs', () => {
    const vit = randomVit({ imageSize: 32, patchSize: 8, dim: 48, depth: 2, heads: 3, mlpRatio: 4, eps: 1e-6 });
    const x = tf.randomNormal([2, 3, 32, 32]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const { cls, blocks } = vit.forward(x, { returnBlocks: true });
    expect(cls.shape).toEqual([2, 48]);
    expect(blocks!.length).toBe(2);
    tf.dispose([cls, ...blocks!]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
