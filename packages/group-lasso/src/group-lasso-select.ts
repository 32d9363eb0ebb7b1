import * as tf from '@tensorflow/tfjs';
import { disposeHead } from './params.js';
import { gatherColumns, keepCount, selectFeatures } from './select.js';
import { trainGroupLassoHead, trainLinearHead, type GroupLassoOptions, type LinearHeadOptions, type TrainedLinearHead } from './train.js';

export interface GroupLassoSelectOptions extends Omit<GroupLassoOptions, 'warmStart'> {
  /** Fraction of features to keep, in (0, 1]. */
  keepFraction: number;
  /** Options of the plain retrained head (its l2, iterations, ...); defaults to the solver options above minus lambda. */
  retrain?: Omit<LinearHeadOptions, 'warmStart'>;
}

export interface GroupLassoSelection {
  /** Ascending indices of the kept features (columns of the input matrix). */
  keptIndices: Int32Array;
  /** Plain head retrained on features[:, keptIndices]: weight [kept, C]. */
  head: TrainedLinearHead;
  groupNorms: Float32Array;
  numNonzeroGroups: number;
  lambda: number;
  lambdaMax: number;
}

/**
 * Head2Toe / VQT feature selection: train a group-lasso head, keep the top keepFraction of features by
 * group norm (zero groups ordered by their gradient norm), retrain a plain head on the kept columns.
 */
export function groupLassoSelect(trainFeatures: tf.Tensor2D, labels: Int32Array, numClasses: number, options: GroupLassoSelectOptions): GroupLassoSelection {
  const { keepFraction, retrain, ...lassoOptions } = options;
  keepCount(trainFeatures.shape[1], keepFraction); // validate before the expensive solve
  const lasso = trainGroupLassoHead(trainFeatures, labels, numClasses, lassoOptions);
  disposeHead(lasso);
  const keptIndices = selectFeatures(lasso.groupNorms, keepFraction, lasso.groupGradientNorms);
  const kept = gatherColumns(trainFeatures, keptIndices);
  try {
    const { lambda: _lambda, lambdaRatio: _ratio, ...solverOptions } = lassoOptions;
    const head = trainLinearHead(kept, labels, numClasses, retrain ?? solverOptions);
    return { keptIndices, head, groupNorms: lasso.groupNorms, numNonzeroGroups: lasso.numNonzeroGroups, lambda: lasso.lambda, lambdaMax: lasso.lambdaMax };
  } finally {
    kept.dispose();
  }
}
