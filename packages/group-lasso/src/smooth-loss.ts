import * as tf from '@tensorflow/tfjs';
import type { LinearHead } from './params.js';

/** The smooth part of the objective: mean softmax cross-entropy plus (l2 / 2) ||W||_F^2 (bias unpenalised). */
export interface SoftmaxProblem {
  features: tf.Tensor2D;
  /** One-hot (or soft) targets [n, C]. */
  targets: tf.Tensor2D;
  l2: number;
}

export interface SmoothGradient {
  loss: number;
  gradWeight: tf.Tensor2D;
  gradBias: tf.Tensor1D;
}

/** Sum in float64 on the host: a float32 reduction over thousands of terms drifts by ~1e-6 relative, too coarse to compare objectives near the optimum. */
export function hostSum(tensor: tf.Tensor): number {
  const values = tensor.dataSync();
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i];
  return total;
}

function logProbabilities(problem: SoftmaxProblem, head: LinearHead): tf.Tensor2D {
  const logits = tf.add(tf.matMul(problem.features, head.weight), head.bias) as tf.Tensor2D;
  return tf.sub(logits, tf.logSumExp(logits, 1, true));
}

/** Per-sample losses [n]: cross-entropy plus the L2 term spread evenly, so their mean is the smooth loss. */
function sampleLosses(problem: SoftmaxProblem, logProbs: tf.Tensor2D, weight: tf.Tensor2D): tf.Tensor1D {
  const crossEntropy = tf.neg(tf.sum(tf.mul(problem.targets, logProbs), 1)) as tf.Tensor1D;
  if (problem.l2 === 0) return crossEntropy;
  return tf.add(crossEntropy, tf.mul(0.5 * problem.l2, tf.sum(tf.square(weight))));
}

function meanOf(losses: tf.Tensor1D): number {
  const value = hostSum(losses) / losses.shape[0];
  losses.dispose();
  return value;
}

export function smoothLoss(problem: SoftmaxProblem, head: LinearHead): number {
  return meanOf(tf.tidy(() => sampleLosses(problem, logProbabilities(problem, head), head.weight)));
}

/**
 * Loss and its closed-form gradient (softmax - targets) / n, backpropagated by hand: no autodiff tape,
 * and X^T G is formed as (G^T X)^T so only small [n, C] / [C, F] matrices are transposed, never the
 * feature matrix, and matMul's transpose flags (slow on wasm) are not used.
 */
export function smoothLossAndGradient(problem: SoftmaxProblem, head: LinearHead): SmoothGradient {
  const { losses, gradWeight, gradBias } = tf.tidy(() => {
    const n = problem.features.shape[0];
    const logProbs = logProbabilities(problem, head);
    const residual = tf.div(tf.sub(tf.exp(logProbs), problem.targets), n) as tf.Tensor2D;
    let gradWeight = tf.transpose(tf.matMul(tf.transpose(residual), problem.features)) as tf.Tensor2D;
    if (problem.l2 !== 0) gradWeight = tf.add(gradWeight, tf.mul(problem.l2, head.weight));
    return { losses: sampleLosses(problem, logProbs, head.weight), gradWeight, gradBias: tf.sum(residual, 0) as tf.Tensor1D };
  });
  return { loss: meanOf(losses), gradWeight, gradBias };
}
