import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom-op.js';

/**
 * softmax(Q C^T) C over a frozen context C [B, N, D] for queries Q that carry the gradient:
 * Q [R, D] shared by every image, or [B, R, D] per image. Returns [B, R, D].
 *
 * Scores are computed as C Q^T, then a transpose of the small [B, N, R] result, so no [B, D, N] copy
 * of the context is made or kept for the backward pass; the gradient is written beside the forward
 * without matMul's transpose flags (ENGINE.md: ~10x slower on wasm). No gradient flows to C.
 */
export function attendToFrozen(queries: tf.Tensor2D | tf.Tensor3D, context: tf.Tensor3D): tf.Tensor3D {
  const [batch, length, dim] = context.shape;
  const shared = queries.rank === 2;
  const rows = shared ? queries.shape[0] : queries.shape[1];
  const op = customOp(([q], save) => {
    let scoresT: tf.Tensor3D; // [B, N, R]
    if (shared) {
      const flat = tf.reshape(context, [batch * length, dim]) as tf.Tensor2D;
      scoresT = tf.reshape(tf.matMul(flat, tf.transpose(q)), [batch, length, rows]);
    } else {
      scoresT = tf.matMul(context, tf.transpose(q, [0, 2, 1]) as tf.Tensor3D);
    }
    const weights = tf.softmax(tf.transpose(scoresT, [0, 2, 1])) as tf.Tensor3D; // [B, R, N]
    save([weights, context]);
    return {
      value: tf.matMul(weights, context),
      gradFunc: (dy, saved) => {
        const [w, c] = saved as [tf.Tensor3D, tf.Tensor3D];
        const dWeights = tf.transpose(tf.matMul(c, tf.transpose(dy, [0, 2, 1]) as tf.Tensor3D), [0, 2, 1]);
        const dScores = tf.mul(w, tf.sub(dWeights, tf.sum(tf.mul(dWeights, w), -1, true))) as tf.Tensor3D; // [B, R, N]
        if (!shared) return tf.matMul(dScores, c);
        // Summed over images: [R, B*N] @ [B*N, D], one 2-D matMul.
        const perRow = tf.reshape(tf.transpose(dScores, [1, 0, 2]), [rows, batch * length]) as tf.Tensor2D;
        return tf.matMul(perRow, tf.reshape(c, [batch * length, dim]) as tf.Tensor2D);
      },
    };
  });
  return op(queries) as tf.Tensor3D;
}
