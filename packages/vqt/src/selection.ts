import * as tf from '@tensorflow/tfjs';
import type { DataSource } from '@vqt/core';
import { groupLassoSelect } from '@vqt/group-lasso';
import type { VqtBatch, VqtModel } from './model.js';

export interface VqtSelectionOptions {
  /** Fraction of head-input features kept (the reference keeps 0.7 on most tasks). */
  keepFraction: number;
  /** Absolute group-lasso lambda, or lambdaRatio x lambda_max (default 0.1). */
  lambda?: number;
  lambdaRatio?: number;
  batchSize?: number;
}

export interface VqtSelectionResult {
  keptIndices: Int32Array;
  numNonzeroGroups: number;
  lambda: number;
  lambdaMax: number;
}

/**
 * VQT's optional compression (paper sec. 3.2): with the learned queries frozen, a group-lasso head
 * ranks the head-input features, the top fraction is kept and a plain head is refit on them.
 * The model is switched to the kept features in place.
 */
export async function selectHeadFeatures(model: VqtModel, data: DataSource<VqtBatch>, options: VqtSelectionOptions): Promise<VqtSelectionResult> {
  const { features, labels, dim } = await model.collectFeatures(data, options.batchSize ?? 64);
  const matrix = tf.tensor2d(features, [labels.length, dim]);
  try {
    const lambda = options.lambda !== undefined ? { lambda: options.lambda } : { lambdaRatio: options.lambdaRatio ?? 0.1 };
    const selection = groupLassoSelect(matrix, labels, model.numClasses, { keepFraction: options.keepFraction, ...lambda });
    model.applySelection(selection.keptIndices, selection.head.weight, selection.head.bias);
    tf.dispose([selection.head.weight, selection.head.bias]);
    return { keptIndices: selection.keptIndices, numNonzeroGroups: selection.numNonzeroGroups, lambda: selection.lambda, lambdaMax: selection.lambdaMax };
  } finally {
    matrix.dispose();
  }
}
