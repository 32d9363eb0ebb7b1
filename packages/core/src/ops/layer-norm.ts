import * as tf from '@tensorflow/tfjs';

export interface LayerNormParams {
  weight: tf.Tensor1D;
  bias: tf.Tensor1D;
}

/** LayerNorm over the last axis, eps 1e-6 as in timm's ViT. Biased variance, like torch. */
export function layerNorm<T extends tf.Tensor>(x: T, params: LayerNormParams, eps = 1e-6): T {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    const normalized = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(normalized, params.weight), params.bias) as T;
  });
}
