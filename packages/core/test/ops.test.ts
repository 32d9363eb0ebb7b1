import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { attendToFrozen, gelu, initBackend, layerNorm, linear, peakNewBufferBytes } from '../src/index.js';
import { multiHeadAttention } from '../src/ops/multi-head-attention.js';
import { customOp } from '../src/ops/custom-op.js';
import { maxAbsDiff } from './helpers.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const reference = (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => tf.add(tf.matMul(x, w), b);

describe('linear', () => {
  for (const rows of [2, 64]) {
    it(`custom gradients match autodiff of matMul + bias (${rows} rows: ${rows < 10 ? 'transposed-activation' : 'transposed-weight'} form)`, () => {
      const x = tf.randomNormal([rows, 24], 0, 1, 'float32', 1) as tf.Tensor2D;
      const frozen = tf.randomNormal([24, 40], 0, 1, 'float32', 2) as tf.Tensor2D;
      const w = tf.variable(tf.randomNormal([24, 40], 0, 1, 'float32', 3)) as tf.Variable<tf.Rank.R2>;
      const b = tf.variable(tf.randomNormal([40], 0, 1, 'float32', 4)) as tf.Variable<tf.Rank.R1>;
      const dy = tf.randomNormal([rows, 40], 0, 1, 'float32', 5);
      const loss = (f: typeof linear) => (input: tf.Tensor) => tf.sum(tf.mul(f(input as tf.Tensor2D, frozen, b), dy));
      const [gx] = tf.grads(loss(linear))([x]);
      const [gxRef] = tf.grads(loss(reference as typeof linear))([x]);
      expect(maxAbsDiff(gx, gxRef)).toBeLessThan(1e-4);
      const trainable = tf.variableGrads(() => tf.sum(tf.mul(linear(x, w, b), dy)) as tf.Scalar, [w, b]);
      const expected = tf.variableGrads(() => tf.sum(tf.mul(reference(x, w, b), dy)) as tf.Scalar, [w, b]);
      expect(maxAbsDiff(trainable.grads[w.name], expected.grads[w.name])).toBeLessThan(1e-4);
      expect(maxAbsDiff(trainable.grads[b.name], expected.grads[b.name])).toBeLessThan(1e-4);
      tf.dispose([x, frozen, w, b, dy, gx, gxRef, trainable.value, expected.value, ...Object.values(trainable.grads), ...Object.values(expected.grads)]);
    });
  }
});

describe('gelu', () => {
  it('is the exact erf GELU to 1e-6 and its gradient is Phi(x) + x phi(x)', async () => {
    const values = Float32Array.from({ length: 2001 }, (_, i) => -10 + i * 0.01);
    const x = tf.tensor1d(values);
    const got = gelu(x).dataSync();
    const grad = tf.grad((t: tf.Tensor) => tf.sum(gelu(t)))(x).dataSync();
    // An independent float64 erf: Simpson's rule on its integral (the implementation uses A&S 7.1.26).
    const erf = (z: number) => {
      const steps = 2000;
      const h = z / steps;
      let sum = 0;
      for (let i = 0; i <= steps; i++) sum += (i === 0 || i === steps ? 1 : i % 2 ? 4 : 2) * Math.exp(-((i * h) ** 2));
      return ((2 / Math.sqrt(Math.PI)) * h * sum) / 3;
    };
    let worst = 0;
    let worstGrad = 0;
    values.forEach((v, i) => {
      const cdf = 0.5 * (1 + erf(v / Math.SQRT2));
      worst = Math.max(worst, Math.abs(got[i] - v * cdf));
      const dgelu = cdf + (v * Math.exp(-(v * v) / 2)) / Math.sqrt(2 * Math.PI);
      worstGrad = Math.max(worstGrad, Math.abs(grad[i] - dgelu));
    });
    expect(worst).toBeLessThan(1e-6);
    expect(worstGrad).toBeLessThan(1e-6);
    x.dispose();
  });
});

describe('layerNorm', () => {
  it('normalises over the last axis with a biased variance, like torch', () => {
    tf.tidy(() => {
      const x = tf.tensor2d([[1, 2, 3, 4], [2, 2, 2, 10]]);
      const out = layerNorm(x, { weight: tf.ones([4]) as tf.Tensor1D, bias: tf.zeros([4]) as tf.Tensor1D });
      const row = [1, 2, 3, 4];
      const mean = 2.5;
      const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / 4;
      expect(out.dataSync()[0]).toBeCloseTo((1 - mean) / Math.sqrt(variance + 1e-6), 5);
    });
  });

  // The same LayerNorm composed of tfjs ops, differentiated by tfjs.
  const composed = (x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-6))), weight), bias);
  };
  for (const shape of [[5, 8], [2, 3, 8]]) {
    it(`value and gradients (input, weight, bias) match autodiff of the composed ops, input [${shape.join(', ')}]`, () => {
      const x = tf.randomNormal(shape, 1, 2, 'float32', 1);
      const weight = tf.randomNormal([8], 1, 0.5, 'float32', 2);
      const bias = tf.randomNormal([8], 0, 1, 'float32', 3);
      const dy = tf.randomNormal(shape, 0, 1, 'float32', 4);
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const ours = (a: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => layerNorm(a, { weight: w as tf.Tensor1D, bias: b as tf.Tensor1D });
        expect(maxAbsDiff(ours(x, weight, bias), composed(x, weight, bias))).toBeLessThan(1e-5);
        const loss = (f: typeof composed) => (a: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, w, b), dy));
        const got = tf.grads(loss(ours))([x, weight, bias]);
        const want = tf.grads(loss(composed))([x, weight, bias]);
        got.forEach((g, i) => expect(maxAbsDiff(g, want[i])).toBeLessThan(1e-4));
      });
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, weight, bias, dy]);
    });
  }
});

describe('attendToFrozen', () => {
  const context = () => tf.randomNormal([3, 7, 8], 0, 1, 'float32', 11) as tf.Tensor3D;
  const plain = (q: tf.Tensor, c: tf.Tensor3D) => {
    const perImage = q.rank === 3 ? q : tf.tile(tf.expandDims(q, 0), [c.shape[0], 1, 1]);
    return tf.matMul(tf.softmax(tf.matMul(perImage as tf.Tensor3D, c, false, true)), c);
  };
  for (const shape of [[5, 8], [3, 5, 8]] as const) for (const imageByImage of [true, false]) {
    it(`matches softmax(Q C^T) C and its autodiff gradient (queries ${JSON.stringify(shape)}, ${imageByImage ? 'image by image' : 'batched'})`, () => {
      const c = context();
      const q = tf.randomNormal([...shape], 0, 1, 'float32', 12) as tf.Tensor2D | tf.Tensor3D;
      const dy = tf.randomNormal([3, 5, 8], 0, 1, 'float32', 13);
      const before = tf.memory().numTensors;
      tf.tidy(() => void attendToFrozen(q, c, { imageByImage }));
      expect(tf.memory().numTensors).toBe(before);
      expect(maxAbsDiff(attendToFrozen(q, c, { imageByImage }), plain(q, c))).toBeLessThan(1e-5);
      const [g] = tf.grads((x: tf.Tensor) => tf.sum(tf.mul(attendToFrozen(x as tf.Tensor3D, c, { imageByImage }), dy)))([q]);
      const [gRef] = tf.grads((x: tf.Tensor) => tf.sum(tf.mul(plain(x, c), dy)))([q]);
      expect(g.shape).toEqual([...shape]);
      expect(maxAbsDiff(g, gRef)).toBeLessThan(1e-5);
      tf.dispose([c, q, dy, g, gRef]);
    });
  }
});

describe('multiHeadAttention', () => {
  // The textbook [B, H, L, d] formulation, differentiated by tfjs.
  const reference = (q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, batch: number, heads: number) => {
    const [rows, dim] = q.shape;
    const length = rows / batch;
    const d = dim / heads;
    const split = (t: tf.Tensor2D) => tf.transpose(tf.reshape(t, [batch, length, heads, d]), [0, 2, 1, 3]) as tf.Tensor4D;
    const weights = tf.softmax(tf.mul(tf.matMul(split(q), split(k), false, true), 1 / Math.sqrt(d)));
    return tf.reshape(tf.transpose(tf.matMul(weights, split(v)), [0, 2, 1, 3]), [rows, dim]);
  };
  for (const [batch, heads] of [[1, 1], [3, 2]]) {
    it(`matches autodiff of the batched formulation, value and gradients (${batch} images, ${heads} heads)`, () => {
      const rows = batch * 5;
      const [q, k, v] = [1, 2, 3].map((seed) => tf.randomNormal([rows, 8], 0, 1, 'float32', seed) as tf.Tensor2D);
      const dy = tf.randomNormal([rows, 8], 0, 1, 'float32', 4);
      const before = tf.memory().numTensors;
      const loss = (f: typeof reference) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor2D, b as tf.Tensor2D, c as tf.Tensor2D, batch, heads), dy));
      tf.tidy(() => {
        expect(maxAbsDiff(multiHeadAttention(q, k, v, batch, heads), reference(q, k, v, batch, heads))).toBeLessThan(1e-5);
        const got = tf.grads(loss(multiHeadAttention))([q, k, v]);
        const want = tf.grads(loss(reference))([q, k, v]);
        got.forEach((g, i) => expect(maxAbsDiff(g, want[i])).toBeLessThan(1e-5));
      });
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([q, k, v, dy]);
    });
  }

  it('refuses shapes that do not fit the images and heads', () => {
    const q = tf.zeros([6, 8]) as tf.Tensor2D;
    expect(() => multiHeadAttention(q, q, q, 4, 2)).toThrow(/q \[6, 8\], k \[6, 8\], v \[6, 8\] do not fit 4 images x 2 heads/);
    q.dispose();
  });
});

describe('customOp', () => {
  // y = x * 2 as a custom op whose gradient makes a temporary the size of dy.
  const double = customOp(([x]) => ({ value: tf.mul(x, 2), gradFunc: (dy) => tf.mul(tf.add(dy, tf.zerosLike(dy)), 2) }));

  it("frees each gradient's temporaries and each intermediate dy once used, so a chain's backward holds O(1) of them", async () => {
    const x = tf.randomNormal([64, 256]) as tf.Tensor2D;
    const backwardPeak = async (depth: number) =>
      peakNewBufferBytes(() => {
        const [g] = tf.grads((input: tf.Tensor) => {
          let y = input;
          for (let i = 0; i < depth; i++) y = double(y);
          return tf.sum(y);
        })([x]);
        g.dispose();
      });
    const shallow = await backwardPeak(4);
    const deep = await backwardPeak(24);
    // The forward keeps every op's output alive until the backward ends (tfjs); the backward adds a
    // fixed few dy-sized buffers at a time, not one or two per op as it did.
    const perOp = 64 * 256 * 4;
    expect(deep - shallow).toBeLessThanOrEqual(20 * perOp + perOp);
    x.dispose();
  });

  it('leaves alone a dy the caller gives tf.grads', () => {
    const x = tf.ones([3]);
    const dy = tf.tensor1d([1, 2, 3]);
    const [g] = tf.grads((input: tf.Tensor) => double(input))([x], dy);
    expect(dy.isDisposed).toBe(false);
    expect(Array.from(g.dataSync())).toEqual([2, 4, 6]);
    tf.dispose([x, dy, g]);
  });
});
