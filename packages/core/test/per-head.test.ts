import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/index.js';
import { perHeadKeyQueries, perHeadValues, type FrozenHeadWeights } from '../src/ops/per-head.js';
import { splitColumnsOnTape, splitColumnsThroughHost, splitColumnsTransposedThroughHost } from '../src/vit/derived.js';
import { maxAbsDiff } from './helpers.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const H = 3;
const d = 4;
const D = H * d;

function frozen(seed: number) {
  const w = tf.randomNormal([D, D], 0, 1, 'float32', seed) as tf.Tensor2D;
  return {
    w,
    keys: (): FrozenHeadWeights => ({ source: w, forward: splitColumnsTransposedThroughHost(w, H), backward: (s) => splitColumnsThroughHost(s, H) }),
    values: (): FrozenHeadWeights => ({ source: w, forward: splitColumnsThroughHost(w, H), backward: (s) => splitColumnsTransposedThroughHost(s, H) }),
  };
}

describe('per-head products against frozen weights', () => {
  it('splitColumnsTransposedThroughHost gives the transposes of the column slices', () => {
    const { w } = frozen(1);
    const transposed = splitColumnsTransposedThroughHost(w, H);
    const columns = splitColumnsOnTape(w, H);
    columns.forEach((c, h) => expect(maxAbsDiff(transposed[h], tf.transpose(c))).toBe(0));
    tf.dispose([w, ...transposed, ...columns]);
  });

  for (const perImage of [false, true]) {
    it(`key queries and values match autodiff of slice + matMul (${perImage ? 'per-image' : 'shared'} queries)`, () => {
      const batch = 2;
      const count = 2;
      const k = frozen(2);
      const v = frozen(3);
      const q = tf.randomNormal([perImage ? batch * count : count, D], 0, 1, 'float32', 4) as tf.Tensor2D;
      const mixed = tf.randomNormal([batch, H * count, D], 0, 1, 'float32', 5) as tf.Tensor3D;
      const dyKeys = tf.randomNormal(perImage ? [batch, H * count, D] : [H * count, D], 0, 1, 'float32', 6);
      const dyValues = tf.randomNormal([batch * count, D], 0, 1, 'float32', 7);

      // Row (b, h, t): q[b, t, head h] Wk_h^T; row (b, t): concat_h mixed[b, h, t] Wv_h.
      const keyReference = (x: tf.Tensor2D) => {
        const perHead = splitColumnsOnTape(x, H).map((piece, h) => tf.matMul(piece, tf.transpose(tf.slice(k.w, [0, h * d], [D, d])))); // [rows, D]
        const stacked = tf.stack(perHead); // [H, rows, D]
        return perImage ? tf.reshape(tf.transpose(tf.reshape(stacked, [H, batch, count, D]), [1, 0, 2, 3]), [batch, H * count, D]) : tf.reshape(stacked, [H * count, D]);
      };
      const valueReference = (x: tf.Tensor3D) => {
        const byHead = tf.transpose(tf.reshape(x, [batch, H, count, D]), [1, 0, 2, 3]);
        const perHead = Array.from({ length: H }, (_, h) => tf.matMul(tf.reshape(tf.slice(byHead, [h, 0, 0, 0], [1, batch, count, D]), [batch * count, D]), tf.slice(v.w, [0, h * d], [D, d])));
        return tf.concat(perHead, 1);
      };
      const check = <T extends tf.Tensor>(input: T, ours: (x: T) => tf.Tensor, reference: (x: T) => tf.Tensor, dy: tf.Tensor) => {
        expect(maxAbsDiff(ours(input), reference(input))).toBeLessThan(1e-5);
        const [got] = tf.grads((x: tf.Tensor) => tf.sum(tf.mul(ours(x as T), dy)))([input]);
        const [want] = tf.grads((x: tf.Tensor) => tf.sum(tf.mul(reference(x as T), dy)))([input]);
        expect(maxAbsDiff(got, want)).toBeLessThan(1e-4);
      };
      tf.tidy(() => {
        const keys = k.keys();
        const values = v.values();
        check(q, (x) => perHeadKeyQueries(x, keys, batch, count, perImage), keyReference, dyKeys);
        check(mixed, (x) => perHeadValues(x, values, count), valueReference, dyValues);
      });
      tf.dispose([k.w, v.w, q, mixed, dyKeys, dyValues]);
    });
  }

  it('keeps no per-head weights from the forward pass to the backward pass', () => {
    const k = frozen(8);
    const v = frozen(9);
    const q = tf.randomNormal([2, D], 0, 1, 'float32', 10) as tf.Tensor2D;
    const mixed = tf.randomNormal([2, H * 2, D], 0, 1, 'float32', 11) as tf.Tensor3D;
    const held: number[] = [];
    // Buffers that stay alive after the forward (its per-head weights disposed) until the backward
    // runs: the output's only. (numBytes would count the saved clone of the frozen weight, which
    // shares the weight's buffer.)
    const heldByForward = (forward: () => tf.Tensor) => () => {
      const before = tf.memory().numDataBuffers;
      const y = forward();
      held.push(tf.memory().numDataBuffers - before);
      return tf.sum(y) as tf.Scalar;
    };
    const grads = [
      tf.grads(heldByForward(() => tf.tidy(() => { const w = k.keys(); const y = perHeadKeyQueries(q, w, 1, 2, false); tf.dispose(w.forward as tf.Tensor2D[]); return y; })))([q]),
      tf.grads(heldByForward(() => tf.tidy(() => { const w = v.values(); const y = perHeadValues(mixed, w, 2); tf.dispose(w.forward as tf.Tensor2D[]); return y; })))([mixed]),
    ];
    expect(held).toEqual([1, 1]);
    tf.dispose([k.w, v.w, q, mixed, ...grads.flat()]);
  });
});
