import * as tf from '@tensorflow/tfjs';
import { logClassPriors, oneHotTargets, validateLabels } from './labels.js';
import type { LinearHead } from './params.js';
import type { SoftmaxProblem } from './smooth-loss.js';

export function validateFeatures(features: tf.Tensor2D): void {
  if (features.rank !== 2) throw new Error(`features must be rank 2 [n, F], got shape [${features.shape}]`);
  if (features.dtype !== 'float32') throw new Error(`features must be float32, got ${features.dtype}`);
  if (features.shape[0] === 0 || features.shape[1] === 0) throw new Error(`features must be non-empty, got shape [${features.shape}]`);
}

/** Builds the problem; the caller owns (and disposes) problem.targets but not problem.features. */
export function buildProblem(features: tf.Tensor2D, labels: Int32Array, numClasses: number, l2: number): SoftmaxProblem {
  validateFeatures(features);
  validateLabels(labels, features.shape[0], numClasses);
  if (!(l2 >= 0)) throw new Error(`l2 must be >= 0, got ${l2}`);
  return { features, targets: oneHotTargets(labels, numClasses), l2 };
}

/** W = 0 and the bias at the log class priors: the exact minimiser over the bias when W = 0. */
export function zeroHead(numFeatures: number, labels: Int32Array, numClasses: number): LinearHead {
  return {
    weight: tf.zeros([numFeatures, numClasses]) as tf.Tensor2D,
    bias: tf.tensor1d(logClassPriors(labels, numClasses)),
  };
}

export function validateWarmStart(head: LinearHead, numFeatures: number, numClasses: number): void {
  const [rows, cols] = head.weight.shape;
  if (rows !== numFeatures || cols !== numClasses || head.bias.shape[0] !== numClasses) {
    throw new Error(`warmStart has weight [${head.weight.shape}] / bias [${head.bias.shape}], expected [${numFeatures},${numClasses}] / [${numClasses}]`);
  }
}
