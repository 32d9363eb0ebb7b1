import * as tf from '@tensorflow/tfjs';
import { disposeHead, type LinearHead } from './params.js';
import { trainGroupLassoHead, groupLassoLambdaMax, type LinearHeadOptions } from './train.js';

export interface LambdaPathOptions extends Omit<LinearHeadOptions, 'warmStart'> {
  /** Explicit lambdas (solved in descending order). Otherwise a geometric grid from lambdaMax down. */
  lambdas?: number[];
  /** Grid size. Default 10. */
  numLambdas?: number;
  /** Smallest lambda as a fraction of lambdaMax. Default 0.01. */
  minRatio?: number;
}

export interface LambdaPathPoint {
  lambda: number;
  groupNorms: Float32Array;
  numNonzeroGroups: number;
  objective: number;
  iterations: number;
}

export interface LambdaPath {
  lambdaMax: number;
  points: LambdaPathPoint[];
}

/** lambdaMax * minRatio^(i / (numLambdas - 1)), i = 0 .. numLambdas - 1. */
export function geometricLambdas(lambdaMax: number, numLambdas = 10, minRatio = 0.01): number[] {
  if (!(numLambdas >= 1) || !Number.isInteger(numLambdas)) throw new Error(`numLambdas must be a positive integer, got ${numLambdas}`);
  if (!(minRatio > 0 && minRatio <= 1)) throw new Error(`minRatio must be in (0, 1], got ${minRatio}`);
  if (numLambdas === 1) return [lambdaMax];
  return Array.from({ length: numLambdas }, (_, i) => lambdaMax * Math.pow(minRatio, i / (numLambdas - 1)));
}

/**
 * Solves the group-lasso problem along a decreasing lambda sequence, each solve warm-started from the
 * previous one (cheap: neighbouring solutions are close). Use it to choose lambda, e.g. the largest
 * lambda whose numNonzeroGroups reaches the number of features you intend to keep.
 */
export function groupLassoPath(features: tf.Tensor2D, labels: Int32Array, numClasses: number, options: LambdaPathOptions = {}): LambdaPath {
  const { lambdas: given, numLambdas, minRatio, ...solverOptions } = options;
  const lambdaMax = groupLassoLambdaMax(features, labels, numClasses);
  const lambdas = (given ?? geometricLambdas(lambdaMax, numLambdas, minRatio)).slice().sort((a, b) => b - a);
  const points: LambdaPathPoint[] = [];
  let previous: LinearHead | undefined;
  try {
    for (const lambda of lambdas) {
      const head = trainGroupLassoHead(features, labels, numClasses, { ...solverOptions, lambda, warmStart: previous });
      if (previous) disposeHead(previous);
      previous = { weight: head.weight, bias: head.bias };
      points.push({
        lambda,
        groupNorms: head.groupNorms,
        numNonzeroGroups: head.numNonzeroGroups,
        objective: head.history[head.history.length - 1],
        iterations: head.iterations,
      });
    }
  } finally {
    if (previous) disposeHead(previous);
  }
  return { lambdaMax, points };
}
