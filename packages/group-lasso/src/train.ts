import * as tf from '@tensorflow/tfjs';
import { solveProximalGradient, type SolverOptions, type SolverResult } from './fista.js';
import { gradientSummary, lambdaMaxFrom } from './lambda-max.js';
import { disposeHead, type LinearHead } from './params.js';
import { buildProblem, validateWarmStart, zeroHead } from './problem.js';
import { groupNorms } from './prox.js';
import type { SoftmaxProblem } from './smooth-loss.js';
import { estimateLipschitz } from './step-size.js';

export interface LinearHeadOptions extends SolverOptions {
  /** L2 penalty (l2 / 2) ||W||_F^2 on the weight (not the bias). Default 0. */
  l2?: number;
  /** Start from this head instead of W = 0, bias = log class priors. Not disposed. */
  warmStart?: LinearHead;
}

export interface GroupLassoOptions extends LinearHeadOptions {
  /** Absolute penalty strength. Give exactly one of lambda and lambdaRatio. */
  lambda?: number;
  /** Penalty as a fraction of lambdaMax (>= 1: every group is zero). */
  lambdaRatio?: number;
}

export interface TrainedLinearHead extends LinearHead {
  /** Objective per iteration (index 0 = start), non-increasing. */
  history: number[];
  iterations: number;
  converged: boolean;
}

export interface GroupLassoHead extends TrainedLinearHead {
  /** ||W[f,:]||_2 per feature; exactly 0 for dropped features. */
  groupNorms: Float32Array;
  /** ||grad_f|| of the smooth loss at the solution: ranks the zero groups by how close they are to entering. */
  groupGradientNorms: Float32Array;
  numNonzeroGroups: number;
  lambda: number;
  lambdaMax: number;
}

interface PreparedProblem {
  problem: SoftmaxProblem;
  zero: LinearHead;
  lambdaMax: number;
  /** Gradient norm at the zero head: the scale of the stopping test. */
  gradientNormAtZero: number;
  dispose(): void;
}

function prepare(features: tf.Tensor2D, labels: Int32Array, numClasses: number, l2: number): PreparedProblem {
  const problem = buildProblem(features, labels, numClasses, l2);
  const zero = zeroHead(features.shape[1], labels, numClasses);
  const summary = gradientSummary(problem, zero);
  return {
    problem,
    zero,
    lambdaMax: lambdaMaxFrom(summary),
    gradientNormAtZero: summary.gradientNorm,
    dispose() {
      disposeHead(zero);
      problem.targets.dispose();
    },
  };
}

function solve(prepared: PreparedProblem, lambda: number, options: LinearHeadOptions): SolverResult {
  const { problem, zero } = prepared;
  const [, numFeatures] = problem.features.shape;
  if (options.warmStart) validateWarmStart(options.warmStart, numFeatures, zero.bias.shape[0]);
  const step = options.initialStep ?? 1 / estimateLipschitz(problem.features, problem.l2);
  return solveProximalGradient(problem, options.warmStart ?? zero, { lambda, step, residualScale: prepared.gradientNormAtZero }, options);
}

/** lambdaMax for these features and labels: any lambda >= it gives W = 0 exactly. */
export function groupLassoLambdaMax(features: tf.Tensor2D, labels: Int32Array, numClasses: number): number {
  const prepared = prepare(features, labels, numClasses, 0);
  prepared.dispose();
  return prepared.lambdaMax;
}

function resolveLambda(options: GroupLassoOptions, lambdaMax: number): number {
  const { lambda, lambdaRatio } = options;
  if ((lambda === undefined) === (lambdaRatio === undefined)) throw new Error('give exactly one of lambda and lambdaRatio');
  const value = lambda ?? lambdaRatio! * lambdaMax;
  if (!(value >= 0) || !Number.isFinite(value)) throw new Error(`lambda must be finite and >= 0, got ${value}`);
  return value;
}

/**
 * Multinomial logistic regression with penalty lambda * sum_f ||W[f,:]||_2 (plus optional (l2/2)||W||^2),
 * solved by FISTA with backtracking and restart. Deterministic: there is no randomness anywhere.
 */
export function trainGroupLassoHead(features: tf.Tensor2D, labels: Int32Array, numClasses: number, options: GroupLassoOptions): GroupLassoHead {
  const prepared = prepare(features, labels, numClasses, options.l2 ?? 0);
  try {
    const lambda = resolveLambda(options, prepared.lambdaMax);
    const result = solve(prepared, lambda, options);
    const normsTensor = groupNorms(result.head.weight);
    const norms = normsTensor.dataSync() as Float32Array;
    normsTensor.dispose();
    let numNonzeroGroups = 0;
    for (let f = 0; f < norms.length; f++) if (norms[f] > 0) numNonzeroGroups++;
    return {
      weight: result.head.weight,
      bias: result.head.bias,
      history: result.history,
      iterations: result.iterations,
      converged: result.converged,
      groupNorms: norms,
      groupGradientNorms: gradientSummary(prepared.problem, result.head).groupGradientNorms,
      numNonzeroGroups,
      lambda,
      lambdaMax: prepared.lambdaMax,
    };
  } finally {
    prepared.dispose();
  }
}

/** Plain (optionally L2-regularised) softmax regression with the same solver: the retrain step. */
export function trainLinearHead(features: tf.Tensor2D, labels: Int32Array, numClasses: number, options: LinearHeadOptions = {}): TrainedLinearHead {
  const prepared = prepare(features, labels, numClasses, options.l2 ?? 0);
  try {
    const result = solve(prepared, 0, options);
    return { weight: result.head.weight, bias: result.head.bias, history: result.history, iterations: result.iterations, converged: result.converged };
  } finally {
    prepared.dispose();
  }
}
