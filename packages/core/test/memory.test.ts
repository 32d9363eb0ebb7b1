import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { gelu, initBackend, peakNewBufferBytes, profileStep } from '../src/index.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

describe('memory on wasm', () => {
  it('tf.clone shares its input buffer (tfjs saves every taped input through it)', () => {
    const a = tf.tensor1d([1, 2, 3]);
    const buffers = tf.memory().numDataBuffers;
    const b = tf.clone(a);
    expect(tf.memory().numDataBuffers).toBe(buffers);
    a.dispose();
    expect(Array.from(b.dataSync())).toEqual([1, 2, 3]);
    b.dispose();
  });

  it('peakNewBufferBytes counts each buffer once and only those made inside', async () => {
    const before = tf.ones([1000]);
    const peak = await peakNewBufferBytes(() => {
      tf.tidy(() => {
        const x = tf.add(before, before); // 4000 bytes
        const views = [tf.reshape(x, [10, 100]), tf.reshape(x, [100, 10])]; // no new buffers
        tf.mul(views[0], views[0]); // 4000 bytes
      });
      tf.tidy(() => tf.add(before, before)); // the first two were freed: the peak stays 8000
    });
    expect(peak).toBe(8000);
    before.dispose();
  });

  it('gelu keeps a handful of activation-sized buffers alive, forward and backward', async () => {
    const x = tf.randomNormal([256, 512], 0, 1, 'float32', 3);
    const activation = x.size * 4;
    const forward = await peakNewBufferBytes(() => tf.tidy(() => void gelu(x)));
    expect(forward).toBeLessThanOrEqual(6 * activation);
    const backward = await peakNewBufferBytes(() => tf.tidy(() => void tf.grad((input: tf.Tensor) => tf.sum(gelu(input)))(x)));
    expect(backward).toBeLessThanOrEqual(10 * activation);
    x.dispose();
  });

  it('profileStep reports tf.profile\'s peak bytes without its kernel log', async () => {
    const weights = tf.ones([64, 64]);
    const step = () =>
      tf.tidy(() => {
        const x = tf.matMul(weights, weights);
        tf.sum(tf.mul(tf.reshape(x, [4096]), 2));
      });
    const profiled = await tf.profile(() => step());
    const ours = await profileStep(step);
    expect(ours.startBytes).toBe(tf.memory().numBytes);
    expect(ours.peakBytes).toBe(profiled.peakBytes);
    // The product and the doubled values (the reshape is a view), plus a scalar or two.
    expect(ours.newBufferBytes).toBeGreaterThanOrEqual(2 * 64 * 64 * 4);
    expect(ours.newBufferBytes).toBeLessThanOrEqual(2 * 64 * 64 * 4 + 8);
    weights.dispose();
  });

  it('profileStep copes with a step of more kernels than tf.profile can take', async () => {
    // tf.profile spreads its per-kernel log into Math.max: a long step overflows the call stack.
    const x = tf.ones([4]);
    const longStep = () => {
      for (let i = 0; i < 200_000; i++) tf.tidy(() => void tf.add(x, x));
    };
    await expect(tf.profile(longStep)).rejects.toThrow(/call stack/);
    const profile = await profileStep(longStep);
    expect(profile.newBufferBytes).toBe(16);
    x.dispose();
  }, 60_000);
});
