import * as tf from '@tensorflow/tfjs';
import { softmaxBackward } from './attend-frozen.js';
import { customOp } from './custom-op.js';
import { splitLeading } from './per-head.js';

/**
 * softmax(Q_h K_h^T / sqrt(d)) V_h for every image and head, from projections q, k, v [B L, H d]
 * (made by three large 2-D products), heads side by side in the result [B L, H d].
 *
 * Every product is a 2-D matMul without transpose flags, one per image and head: on wasm a batched
 * matMul runs at ~1.4 GFLOP/s and the flags cost ~10x (ENGINE.md). Heads are split through the host
 * (one read; tf.slice copies its whole input per piece), the layouts each product reads (K^T, P^T,
 * dS^T) come from one transpose over all images and heads, and the softmax and its backward run once
 * over the batch. The gradient, written beside the forward, reaches q, k and v; autodiff of the same
 * ops would run per head with the flags.
 */
export function multiHeadAttention(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, batch: number, heads: number): tf.Tensor2D {
  const [rows, dim] = q.shape;
  const length = rows / batch;
  const d = dim / heads;
  if (!Number.isInteger(length) || !Number.isInteger(d) || k.shape[0] !== rows || v.shape[0] !== rows || k.shape[1] !== dim || v.shape[1] !== dim) {
    throw new Error(`multiHeadAttention: q [${q.shape.join(', ')}], k [${k.shape.join(', ')}], v [${v.shape.join(', ')}] do not fit ${batch} images x ${heads} heads`);
  }
  const scale = 1 / Math.sqrt(d);
  const pieces = byHead(batch, length, heads, d);
  const op = customOp(([qIn, kIn, vIn], save) => {
    const weights = tf.tidy(() => {
      const queries = pieces(tf.mul(qIn, scale), 'rows'); // [L, d] per (b, h)
      const keysT = pieces(kIn, 'columns'); // [d, L]
      return tf.softmax(tf.stack(queries.map((query, i) => tf.matMul(query, keysT[i])))) as tf.Tensor3D; // [B H, L, L]
    });
    const value = tf.tidy(() => {
      const values = pieces(vIn, 'rows');
      const perHead = splitLeading(weights);
      return merge(perHead.map((w, i) => tf.matMul(w, values[i])), batch, length, heads, d);
    });
    save([qIn, kIn, vIn, weights]);
    weights.dispose();
    return {
      value,
      gradFunc: (dy, saved) => {
        const [qs, ks, vs, w] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor3D];
        // Tidied piece by piece: several [B H, L, L] temporaries alive at once were most of the backward's peak.
        const dOut = pieces(dy, 'rows'); // [L, d]
        const dValues = tf.tidy(() => merge(splitLeading(tf.transpose(w, [0, 2, 1]) as tf.Tensor3D).map((wT, i) => tf.matMul(wT, dOut[i])), batch, length, heads, d)); // P^T dO
        const dScores = tf.tidy(() => {
          const valuesT = pieces(vs, 'columns'); // [d, L]
          const dWeights = tf.stack(dOut.map((g, i) => tf.matMul(g, valuesT[i]))); // dO V^T [B H, L, L]
          return tf.mul(softmaxBackward(w, dWeights as tf.Tensor3D), scale) as tf.Tensor3D;
        });
        tf.dispose(dOut);
        const dQueries = tf.tidy(() => {
          const keys = pieces(ks, 'rows');
          return merge(splitLeading(dScores).map((g, i) => tf.matMul(g, keys[i])), batch, length, heads, d); // dS K
        });
        const dKeys = tf.tidy(() => {
          const queries = pieces(qs, 'rows');
          return merge(splitLeading(tf.transpose(dScores, [0, 2, 1]) as tf.Tensor3D).map((gT, i) => tf.matMul(gT, queries[i])), batch, length, heads, d); // dS^T Q
        });
        dScores.dispose();
        return [dQueries, dKeys, dValues];
      },
    };
  });
  return op(q, k, v) as tf.Tensor2D;
}

/** [B L, H d] -> B H pieces, image-major: [L, d] ('rows') or transposed, [d, L] ('columns'). */
function byHead(batch: number, length: number, heads: number, d: number) {
  return (t: tf.Tensor, layout: 'rows' | 'columns'): tf.Tensor2D[] =>
    tf.tidy(() => {
      const perm = layout === 'rows' ? [0, 2, 1, 3] : [0, 2, 3, 1];
      const shape: [number, number] = layout === 'rows' ? [length, d] : [d, length];
      return splitLeading(tf.reshape(tf.transpose(tf.reshape(t, [batch, length, heads, d]), perm), [batch * heads, ...shape]) as tf.Tensor3D);
    });
}

/** B H pieces [L, d], image-major -> [B L, H d]. */
function merge(perHead: tf.Tensor2D[], batch: number, length: number, heads: number, d: number): tf.Tensor2D {
  return tf.reshape(tf.transpose(tf.reshape(tf.stack(perHead), [batch, heads, length, d]), [0, 2, 1, 3]), [batch * length, heads * d]) as tf.Tensor2D;
}
