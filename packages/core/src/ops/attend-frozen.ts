import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom-op.js';
import { hostPieces, splitLeading } from './per-head.js';

const IMAGE_BY_IMAGE_MIN_VALUES = 2 ** 17;

export interface AttendToFrozenOptions {
  /**
   * Compute image by image with 2-D matMuls. On wasm a batched matMul runs at ~1 GFLOP/s and a
   * 2-D one at 10-30 (ENGINE.md; measured 99 ms vs 11.5 ms for [32,197,768] x [32,768,12]), and
   * tf.split/tf.slice copy the whole input per piece, so images are split through the host instead.
   * That pays only for large images: the loop's per-op overhead dominates below. Default: on wasm
   * when an image's context has at least 2^17 values (ViT-B/16: 197 x 768; forward and backward of
   * one block at batch 32, T 1: 235 ms vs 529 ms batched; ViT-Ti/16: 88 ms vs 34 ms).
   */
  imageByImage?: boolean;
  /**
   * The image-by-image kernel as first written: a softmax, transposes and a fresh host split of the
   * context per image, forward and backward. Kept to check the current kernel against (tests).
   */
  legacy?: boolean;
}

/**
 * softmax(Q C^T) C over a frozen context C [B, N, D] for queries Q that carry the gradient:
 * Q [R, D] shared by every image, or [B, R, D] per image. Returns [B, R, D].
 *
 * Scores are computed as C Q^T, then a transpose of the small [N, R] result, so no [D, N] copy of the
 * context is made or kept for the backward pass; the gradient is written beside the forward without
 * matMul's transpose flags (ENGINE.md: ~10x slower on wasm). No gradient flows to C.
 */
export function attendToFrozen(queries: tf.Tensor2D | tf.Tensor3D, context: tf.Tensor3D, options: AttendToFrozenOptions = {}): tf.Tensor3D {
  const imageByImage = options.imageByImage ?? (tf.getBackend() === 'wasm' && context.shape[1] * context.shape[2] >= IMAGE_BY_IMAGE_MIN_VALUES);
  const shared = queries.rank === 2;
  const op = imageByImage ? (options.legacy ? legacyImageByImageOp(shared, context) : imageByImageOp(shared, context)) : batchedOp(shared, context);
  return op(queries) as tf.Tensor3D;
}

function batchedOp(shared: boolean, context: tf.Tensor3D) {
  const [batch, length, dim] = context.shape;
  return customOp(([q], save) => {
    const rows = (shared ? q.shape[0] : q.shape[1]) as number;
    const scoresT = shared
      ? (tf.reshape(tf.matMul(tf.reshape(context, [batch * length, dim]) as tf.Tensor2D, tf.transpose(q) as tf.Tensor2D), [batch, length, rows]) as tf.Tensor3D)
      : tf.matMul(context, tf.transpose(q, [0, 2, 1]) as tf.Tensor3D);
    const weights = tf.softmax(tf.transpose(scoresT, [0, 2, 1])) as tf.Tensor3D; // [B, R, N]
    save([weights, context]);
    return {
      value: tf.matMul(weights, context),
      gradFunc: (dy, saved) => {
        const [w, c] = saved as [tf.Tensor3D, tf.Tensor3D];
        const dWeights = tf.transpose(tf.matMul(c, tf.transpose(dy, [0, 2, 1]) as tf.Tensor3D), [0, 2, 1]) as tf.Tensor3D;
        const dScores = softmaxBackward(w, dWeights);
        if (!shared) return tf.matMul(dScores, c);
        // Summed over images: [R, B*N] @ [B*N, D], one 2-D matMul.
        const perRow = tf.reshape(tf.transpose(dScores, [1, 0, 2]), [rows, batch * length]) as tf.Tensor2D;
        return tf.matMul(perRow, tf.reshape(c, [batch * length, dim]) as tf.Tensor2D);
      },
    };
  });
}

/**
 * Only the products whose both operands differ per image run image by image (2-D matMuls with the
 * context as the large left operand where it can be); scores of shared queries, the softmax and its
 * backward, and the transposes run once over the batch (each op has a fixed cost that B of them
 * multiply). The per-image pieces of the context are split again in the backward pass rather than
 * saved: kept, they were most of a cached VQT step's memory (ViT-B/16, batch 32: 12 blocks x 19 MB)
 * for about 5% of its time.
 */
function imageByImageOp(shared: boolean, context: tf.Tensor3D) {
  const [batch, length, dim] = context.shape;
  const flatContext = () => tf.reshape(context, [batch * length, dim]) as tf.Tensor2D;
  // [B*N, R] scores (one row per token) -> softmax weights [B, R, N].
  const weightsFrom = (scoresT: tf.Tensor2D, rows: number) => tf.softmax(tf.transpose(tf.reshape(scoresT, [batch, length, rows]), [0, 2, 1])) as tf.Tensor3D;
  // One image's piece of the context at a time, each freed once used: all B alive at once were 19 MB
  // per block at ViT-B/16, batch 32 (the largest buffers of a cached VQT step after its activations).
  // The context is read from the backend once per pass (a 19 MB copy at that size) and shared by the pass's loops.
  const perImage = <T extends tf.Tensor>(pieces: (b: number) => tf.Tensor2D, fn: (piece: tf.Tensor2D, b: number) => T): T[] =>
    Array.from({ length: batch }, (_, b) => tf.tidy(() => fn(pieces(b), b)));
  return customOp(([q], save) => {
    const rows = (shared ? q.shape[0] : q.shape[1]) as number;
    const pieces = hostPieces(context);
    const weights = tf.tidy(() => {
      if (shared) return weightsFrom(tf.matMul(flatContext(), tf.transpose(q)), rows);
      const queriesT = splitLeading(tf.transpose(q, [0, 2, 1]) as tf.Tensor3D); // B x [D, R]
      return weightsFrom(tf.concat(perImage(pieces, (c, b) => tf.matMul(c, queriesT[b])), 0) as tf.Tensor2D, rows);
    });
    // W_b C_b as (C_b^T W_b^T)^T: the context is the left operand. On wasm the right operand is
    // packed afresh for every product, and packing a [N, D] context for R rows cost as much again.
    const weightsT = splitLeading(tf.transpose(weights, [0, 2, 1]) as tf.Tensor3D); // B x [N, R]
    const mixedT = perImage(pieces, (c, b) => tf.matMul(tf.transpose(c), weightsT[b])); // [D, R]
    const value = tf.tidy(() => tf.transpose(tf.stack(mixedT), [0, 2, 1]));
    save([weights, context]);
    tf.dispose([...weightsT, ...mixedT, weights]);
    return {
      value,
      gradFunc: (dy, saved) => {
        const [w, c] = saved as [tf.Tensor3D, tf.Tensor3D];
        const contextPieces = hostPieces(c);
        const dyT = splitLeading(tf.transpose(dy, [0, 2, 1]) as tf.Tensor3D); // B x [D, R]
        const dWeightsT = tf.concat(perImage(contextPieces, (ci, b) => tf.matMul(ci, dyT[b])), 0); // [B*N, R]
        const dWeights = tf.transpose(tf.reshape(dWeightsT, [batch, length, rows]), [0, 2, 1]) as tf.Tensor3D;
        const dScores = softmaxBackward(w, dWeights); // [B, R, N]
        if (shared) {
          // Summed over images: [R, B*N] @ [B*N, D], one 2-D matMul.
          const perRow = tf.reshape(tf.transpose(dScores, [1, 0, 2]), [rows, batch * length]) as tf.Tensor2D;
          return tf.matMul(perRow, tf.reshape(c, [batch * length, dim]) as tf.Tensor2D);
        }
        const dScoresT = splitLeading(tf.transpose(dScores, [0, 2, 1]) as tf.Tensor3D); // B x [N, R]
        return tf.transpose(tf.stack(perImage(contextPieces, (ci, b) => tf.matMul(tf.transpose(ci), dScoresT[b]))), [0, 2, 1]); // dS_b C_b, as above
      },
    };
  });
}

function legacyImageByImageOp(shared: boolean, context: tf.Tensor3D) {
  return customOp(([q], save) => {
    const images = splitLeading(context);
    const perImageQ = shared ? undefined : splitLeading(q as tf.Tensor3D);
    const qT = shared ? tf.transpose(q) : undefined;
    const weights: tf.Tensor2D[] = [];
    const mixed: tf.Tensor2D[] = [];
    images.forEach((c, b) => {
      const scoresT = tf.matMul(c, qT ?? tf.transpose(perImageQ![b])); // [N, R]
      const w = tf.softmax(tf.transpose(scoresT)) as tf.Tensor2D; // [R, N]
      weights.push(w);
      mixed.push(tf.matMul(w, c));
    });
    const stackedWeights = tf.stack(weights) as tf.Tensor3D;
    save([stackedWeights, context]);
    const value = tf.stack(mixed);
    tf.dispose([...images, ...(perImageQ ?? []), ...weights, ...mixed]);
    return {
      value,
      gradFunc: (dy, saved) => {
        const [w, c] = saved as [tf.Tensor3D, tf.Tensor3D];
        const cs = splitLeading(c);
        const dys = splitLeading(dy as tf.Tensor3D);
        const dWeights = tf.stack(cs.map((ci, b) => tf.transpose(tf.matMul(ci, tf.transpose(dys[b]))))) as tf.Tensor3D; // [B, R, N]
        const dScores = splitLeading(softmaxBackward(w, dWeights));
        const perImage = cs.map((ci, b) => tf.matMul(dScores[b], ci)); // [R, D] each
        const dq = shared ? tf.addN(perImage) : tf.stack(perImage);
        tf.dispose([...cs, ...dys, dWeights, ...dScores, ...perImage]);
        return dq;
      },
    };
  });
}

/** dL/dscores from dL/dweights for weights = softmax(scores) over the last axis. */
export function softmaxBackward(weights: tf.Tensor3D, dWeights: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => tf.mul(weights, tf.sub(dWeights, tf.sum(tf.mul(dWeights, weights), -1, true)))) as tf.Tensor3D;
}
