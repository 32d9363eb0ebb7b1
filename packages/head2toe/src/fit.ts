import * as tf from '@tensorflow/tfjs';
import { groupLassoSelect, type LinearHeadOptions, type SolverOptions } from '@vqt/group-lasso';
import { resolveHead2ToeOptions, type Head2ToeOptions } from './config.js';
import type { ExtractedFeatures } from './extractor.js';
import { Head2ToeModel } from './model.js';

/** Target size and pooling come from the features. */
export interface FitHead2ToeOptions extends Partial<Omit<Head2ToeOptions, 'targetSize' | 'pooling'>>, SolverOptions {
  /** L2 penalty (l2 / 2)||W||^2 of the group-lasso head (default 0). */
  l2?: number;
  /** Options of the plain retrained head (default: the same solver options, no lambda). */
  retrain?: Omit<LinearHeadOptions, 'warmStart'>;
}

export interface Head2ToeFit {
  model: Head2ToeModel;
  /** ||W[f,:]|| of the group-lasso head per feature (0 for dropped groups). */
  groupNorms: Float32Array;
  numNonzeroGroups: number;
  lambda: number;
  lambdaMax: number;
  /** Objective history length and convergence of the retrained head. */
  retrainIterations: number;
  retrainConverged: boolean;
}

/**
 * Head2Toe's selection and retrain on cached training features: a group-lasso head (one group per
 * feature), features ranked by group norm, the top `keep` fraction kept, a plain head retrained on
 * them (both solved exactly by @vqt/group-lasso's proximal gradient). Features are full width.
 */
export function fitHead2Toe(train: ExtractedFeatures, numClasses: number, options: FitHead2ToeOptions): Head2ToeFit {
  if (train.columns) throw new Error('head2toe: fit needs full-width features (extracted without columns)');
  const { targetSize, pooling, keep, lambda, lambdaRatio } = resolveHead2ToeOptions({ ...options, targetSize: train.targetSize, pooling: train.pooling });
  const { l2, retrain, maxIterations, tolerance, initialStep, backtrackFactor, stepGrowth, onIteration } = options;
  const solver: SolverOptions = stripUndefined({ maxIterations, tolerance, initialStep, backtrackFactor, stepGrowth, onIteration });
  const features = tf.tensor2d(train.features, [train.count, train.width]);
  try {
    const selection = groupLassoSelect(features, train.labels, numClasses, {
      ...solver,
      ...(lambda !== undefined ? { lambda } : { lambdaRatio }),
      ...(l2 !== undefined ? { l2 } : {}),
      keepFraction: keep,
      retrain: retrain ?? { ...solver, ...(l2 !== undefined ? { l2 } : {}) },
    });
    const model = new Head2ToeModel({
      targetSize,
      pooling,
      featureWidth: train.width,
      keptIndices: selection.keptIndices,
      numClasses,
      keep,
      lambda: selection.lambda,
      ...(lambda === undefined ? { lambdaRatio } : {}),
    });
    model.setHead(selection.head.weight, selection.head.bias);
    tf.dispose([selection.head.weight, selection.head.bias]);
    return {
      model,
      groupNorms: selection.groupNorms,
      numNonzeroGroups: selection.numNonzeroGroups,
      lambda: selection.lambda,
      lambdaMax: selection.lambdaMax,
      retrainIterations: selection.head.iterations,
      retrainConverged: selection.head.converged,
    };
  } finally {
    features.dispose();
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
