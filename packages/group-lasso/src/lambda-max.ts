import * as tf from '@tensorflow/tfjs';
import type { LinearHead } from './params.js';
import { groupNorms } from './prox.js';
import { smoothLossAndGradient, type SoftmaxProblem } from './smooth-loss.js';

/**
 * Float32 slack on lambdaMax. The solver's own gradient at W = 0 is a float32 matMul, so at exactly the
 * computed maximum the largest group would sit on the threshold and could survive by a rounding error.
 */
export const LAMBDA_MAX_SLACK = 1e-4;

export interface GradientSummary {
  /** ||d smooth / d W[f,:]||_2 per feature (KKT: a zero group stays zero iff this is <= lambda). */
  groupGradientNorms: Float32Array;
  /** Frobenius norm of the whole gradient, bias included. */
  gradientNorm: number;
}

export function gradientSummary(problem: SoftmaxProblem, head: LinearHead): GradientSummary {
  const gradient = smoothLossAndGradient(problem, head);
  const norms = groupNorms(gradient.gradWeight);
  const biasNorm = tf.tidy(() => tf.sum(tf.square(gradient.gradBias)));
  const groupGradientNorms = norms.dataSync() as Float32Array;
  let squared = biasNorm.dataSync()[0];
  for (let f = 0; f < groupGradientNorms.length; f++) squared += groupGradientNorms[f] * groupGradientNorms[f];
  tf.dispose([gradient.gradWeight, gradient.gradBias, norms, biasNorm]);
  return { groupGradientNorms, gradientNorm: Math.sqrt(squared) };
}

/**
 * Smallest lambda at which W = 0 solves the group-lasso problem: max_f ||grad_f|| at W = 0 with the bias
 * at its optimum for W = 0 (the log class priors), times (1 + LAMBDA_MAX_SLACK). The L2 term has zero
 * gradient at W = 0, so it does not change lambdaMax.
 */
export function lambdaMaxFrom(summaryAtZero: GradientSummary): number {
  let max = 0;
  const norms = summaryAtZero.groupGradientNorms;
  for (let f = 0; f < norms.length; f++) if (norms[f] > max) max = norms[f];
  return max * (1 + LAMBDA_MAX_SLACK);
}
