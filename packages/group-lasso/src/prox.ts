import * as tf from '@tensorflow/tfjs';

/** L2 norm of every row of weight [F, C]: one value per feature group. */
export function groupNorms(weight: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.sqrt(tf.sum(tf.square(weight), 1)) as tf.Tensor1D);
}

/**
 * Proximal operator of threshold * sum_f ||W[f,:]||_2 (group soft-thresholding):
 * W[f,:] <- max(0, 1 - threshold / ||W[f,:]||) W[f,:]. Groups with norm <= threshold become exactly zero.
 */
export function groupSoftThreshold(weight: tf.Tensor2D, threshold: number): tf.Tensor2D {
  if (!(threshold >= 0)) throw new Error(`threshold must be >= 0, got ${threshold}`);
  if (threshold === 0) return weight.clone();
  return tf.tidy(() => {
    const norms = tf.sqrt(tf.sum(tf.square(weight), 1, true));
    // A zero row divides to +inf and is clamped to factor 0; the floor only keeps 0/0 out.
    const shrink = tf.relu(tf.sub(1, tf.div(threshold, tf.maximum(norms, 1e-30))));
    return tf.mul(weight, shrink);
  });
}
