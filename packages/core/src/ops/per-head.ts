import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom-op.js';

/**
 * The per-head products of side queries against frozen weights, each as one op whose gradient is
 * written beside it. Heads are split and gathered on the host: on wasm tf.split/tf.slice copy their
 * whole input per piece (ENGINE.md), while a host read is one copy. Weights are frozen (closed over):
 * no gradient flows to them.
 */

/**
 * Frozen per-head weights in the orientation each pass multiplies by, so neither needs a transpose.
 * The backward pass's are derived again from `source` when it runs rather than kept from the
 * forward: kept, they were 54 of the 190 MiB of a cached VQT step (ViT-B/16, batch 32), every
 * block's alive at once for a few host copies per block.
 */
export interface FrozenHeadWeights {
  /** The frozen weight the slices come from; saved (a buffer-sharing clone) for the backward pass. */
  source: tf.Tensor2D;
  /** What the forward multiplies by, per head. The caller owns (and disposes) them. */
  forward: readonly tf.Tensor2D[];
  /** Their transposes, per head, derived from source in the backward pass and disposed there. */
  backward: (source: tf.Tensor2D) => tf.Tensor2D[];
}

/**
 * Row (h, t) of image b: q[b, t, head h] Wk_h^T, for queries q [rows, H d] (rows = B T, or T when
 * shared by every image) and heads.forward[h] = Wk_h^T [d, D].
 * Returns [H T, D] (shared) or [B, H T, D] (per image), rows head-major within an image.
 */
export function perHeadKeyQueries(q: tf.Tensor2D, heads: FrozenHeadWeights, batch: number, count: number, perImage: boolean): tf.Tensor {
  const H = heads.forward.length;
  const [rows, width] = q.shape;
  const d = width / H;
  const dim = heads.forward[0].shape[1];
  const images = perImage ? batch : 1;
  if (rows !== images * count || d !== heads.forward[0].shape[0]) {
    throw new Error(`perHeadKeyQueries: queries [${q.shape.join(', ')}] do not fit ${H} heads of [${heads.forward[0].shape.join(', ')}] for ${images} x ${count} rows`);
  }
  const op = customOp(([input], save) => {
    save([heads.source]);
    const pieces = splitColumns(input as tf.Tensor2D, H);
    const products = pieces.map((piece, h) => tf.matMul(piece, heads.forward[h])); // [rows, D]
    const stacked = tf.stack(products); // [H, rows, D]
    const value = perImage ? headMajorPerImage(stacked, H, images, count, dim) : tf.reshape(stacked, [H * count, dim]);
    tf.dispose([...pieces, ...products, stacked]);
    return {
      value,
      gradFunc: (dy, saved) =>
        tf.tidy(() => {
          const byHead = perImage ? tf.transpose(tf.reshape(dy, [images, H, count, dim]), [1, 0, 2, 3]) : dy;
          const dyHeads = splitLeading(tf.reshape(byHead, [H, rows, dim]) as tf.Tensor3D);
          const weights = heads.backward(saved[0] as tf.Tensor2D);
          return tf.concat(dyHeads.map((g, h) => tf.matMul(g, weights[h])), 1); // [rows, H d]
        }),
    };
  });
  return op(q);
}

/**
 * The inverse layout step: mixed [B, H T, D] (rows head-major within an image) times each head's
 * Wv_h [D, d] -> [B T, H d], the heads side by side as the attention context. heads.forward[h] = Wv_h.
 */
export function perHeadValues(mixed: tf.Tensor3D, heads: FrozenHeadWeights, count: number): tf.Tensor2D {
  const H = heads.forward.length;
  const [batch, rowsPerImage, dim] = mixed.shape;
  if (rowsPerImage !== H * count || heads.forward[0].shape[0] !== dim) {
    throw new Error(`perHeadValues: mixed [${mixed.shape.join(', ')}] does not fit ${H} heads x ${count} queries of Wv [${heads.forward[0].shape.join(', ')}]`);
  }
  const rows = batch * count;
  const op = customOp(([input], save) => {
    save([heads.source]);
    const byHead = tf.transpose(tf.reshape(input, [batch, H, count, dim]), [1, 0, 2, 3]) as tf.Tensor4D;
    const pieces = splitLeading(tf.reshape(byHead, [H, rows, dim]) as tf.Tensor3D);
    const products = pieces.map((piece, h) => tf.matMul(piece, heads.forward[h])); // [B T, d]
    const value = H > 1 ? tf.concat(products, 1) : products[0].clone();
    tf.dispose([byHead, ...pieces, ...products]);
    return {
      value,
      gradFunc: (dy, saved) =>
        tf.tidy(() => {
          const dyHeads = splitColumns(dy as tf.Tensor2D, H);
          const weights = heads.backward(saved[0] as tf.Tensor2D);
          const stacked = tf.stack(dyHeads.map((g, h) => tf.matMul(g, weights[h]))); // [H, B T, D]
          return headMajorPerImage(stacked, H, batch, count, dim);
        }),
    };
  });
  return op(mixed) as tf.Tensor2D;
}

/** [H, B T, D] -> [B, H T, D]. */
function headMajorPerImage(stacked: tf.Tensor, H: number, batch: number, count: number, dim: number): tf.Tensor3D {
  return tf.reshape(tf.transpose(tf.reshape(stacked, [H, batch, count, dim]), [1, 0, 2, 3]), [batch, H * count, dim]) as tf.Tensor3D;
}

/** [rows, H d] -> H tensors [rows, d]: one host read, H writes. */
function splitColumns(x: tf.Tensor2D, H: number): tf.Tensor2D[] {
  const [rows, width] = x.shape;
  const d = width / H;
  const values = x.dataSync() as Float32Array;
  return Array.from({ length: H }, (_, h) => {
    const out = new Float32Array(rows * d);
    for (let r = 0; r < rows; r++) out.set(values.subarray(r * width + h * d, r * width + (h + 1) * d), r * d);
    return tf.tensor2d(out, [rows, d]);
  });
}

/**
 * [H, M, K] -> a maker of its H pieces [M, K], each on demand: one host read, then one write per
 * piece made (off the tape: no gradient flows through it). tf.split/tf.slice copy the whole input
 * per piece on wasm.
 */
export function hostPieces(x: tf.Tensor3D): (h: number) => tf.Tensor2D {
  const [, m, k] = x.shape;
  const values = x.dataSync() as Float32Array;
  const size = m * k;
  return (h) => tf.tensor2d(values.subarray(h * size, (h + 1) * size), [m, k]);
}

/** [H, M, K] -> H tensors [M, K]: every piece of hostPieces at once. */
export function splitLeading(x: tf.Tensor3D): tf.Tensor2D[] {
  const piece = hostPieces(x);
  return Array.from({ length: x.shape[0] }, (_, h) => piece(h));
}
