import * as tf from '@tensorflow/tfjs';

/** A linear softmax head: logits = features @ weight + bias, weight [F, C] input-major (row f = feature f's group). */
export interface LinearHead {
  weight: tf.Tensor2D;
  bias: tf.Tensor1D;
}

export function disposeHead(head: LinearHead): void {
  head.weight.dispose();
  head.bias.dispose();
}

export function cloneHead(head: LinearHead): LinearHead {
  return { weight: head.weight.clone(), bias: head.bias.clone() };
}

/** logits [n, C] of a head applied to features [n, F]. */
export function applyHead(features: tf.Tensor2D, head: LinearHead): tf.Tensor2D {
  return tf.tidy(() => tf.add(tf.matMul(features, head.weight), head.bias));
}

/** Fraction of rows whose arg-max logit equals the label. */
export function headAccuracy(features: tf.Tensor2D, labels: Int32Array, head: LinearHead): number {
  const predicted = tf.tidy(() => tf.argMax(applyHead(features, head), 1));
  const values = predicted.dataSync();
  predicted.dispose();
  let correct = 0;
  for (let i = 0; i < labels.length; i++) if (values[i] === labels[i]) correct++;
  return labels.length > 0 ? correct / labels.length : 0;
}
