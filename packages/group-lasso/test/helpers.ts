import * as tf from '@tensorflow/tfjs';
import { makeSynthetic, type SyntheticData, type SyntheticOptions } from './synthetic.js';

export interface SyntheticTensors {
  data: SyntheticData;
  train: tf.Tensor2D;
  test: tf.Tensor2D;
  dispose(): void;
}

export function syntheticTensors(options: SyntheticOptions): SyntheticTensors {
  const data = makeSynthetic(options);
  const train = tf.tensor2d(data.train.features, [options.numTrain, options.numFeatures]);
  const test = tf.tensor2d(data.test.features, [options.numTest, options.numFeatures]);
  return { data, train, test, dispose: () => tf.dispose([train, test]) };
}

/** The setting of the recovery tests: 600 samples, 20 informative features hidden among 500, 4 classes. */
export const RECOVERY_SETTING: Omit<SyntheticOptions, 'seed'> = {
  numTrain: 600,
  numTest: 2000,
  numFeatures: 500,
  numInformative: 20,
  numClasses: 4,
  signal: 1,
};

export function timed<T>(run: () => T): { value: T; ms: number } {
  const start = performance.now();
  const value = run();
  return { value, ms: performance.now() - start };
}
