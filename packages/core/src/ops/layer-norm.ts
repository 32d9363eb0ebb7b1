import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom-op.js';

export interface LayerNormParams {
  weight: tf.Tensor1D;
  bias: tf.Tensor1D;
}

/**
 * LayerNorm over the last axis, eps 1e-6 as in timm's ViT. Biased variance, like torch.
 *
 * One op with its gradient beside it: it keeps the normalised input and 1/sigma for the backward
 * pass, where autodiff of the same ops kept about ten tensors of the input's size per use until
 * the backward pass ended. dx = (g - mean(g) - x_hat mean(g x_hat)) / sigma with g = dy * weight.
 */
export function layerNorm<T extends tf.Tensor>(x: T, params: LayerNormParams, eps = 1e-6): T {
  const op = customOp(([input, weight, bias], save) => {
    const { mean, variance } = tf.moments(input, -1, true);
    const inverseStd = tf.rsqrt(tf.add(variance, eps));
    const normalized = tf.mul(tf.sub(input, mean), inverseStd);
    save([normalized, inverseStd, weight]);
    return {
      value: tf.add(tf.mul(normalized, weight), bias),
      gradFunc: (dy, saved) => {
        const [xHat, inv, w] = saved;
        const leading = Array.from({ length: dy.rank - 1 }, (_, i) => i);
        const g = tf.mul(dy, w);
        const dx = tf.mul(tf.sub(tf.sub(g, tf.mean(g, -1, true)), tf.mul(xHat, tf.mean(tf.mul(g, xHat), -1, true))), inv);
        return [dx, tf.sum(tf.mul(dy, xHat), leading), tf.sum(dy, leading)];
      },
    };
  });
  return op(x, params.weight, params.bias) as T;
}
