import * as tf from '@tensorflow/tfjs';

/** Throws unless `labels` are n integers in [0, numClasses). */
export function validateLabels(labels: Int32Array, numSamples: number, numClasses: number): void {
  if (!Number.isInteger(numClasses) || numClasses < 2) {
    throw new Error(`numClasses must be an integer >= 2, got ${numClasses}`);
  }
  if (labels.length !== numSamples) {
    throw new Error(`labels has ${labels.length} entries but features has ${numSamples} rows`);
  }
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (label < 0 || label >= numClasses) throw new Error(`label ${label} at index ${i} is outside [0, ${numClasses})`);
  }
}

/** One-hot targets [n, C] in float32, built on the host (tf.oneHot would need an int32 tensor round trip). */
export function oneHotTargets(labels: Int32Array, numClasses: number): tf.Tensor2D {
  const values = new Float32Array(labels.length * numClasses);
  for (let i = 0; i < labels.length; i++) values[i * numClasses + labels[i]] = 1;
  return tf.tensor2d(values, [labels.length, numClasses]);
}

/**
 * log of the class frequencies: the optimal bias when the weight is zero, so starting there makes
 * W = 0 a fixed point whenever lambda >= lambdaMax. Empty classes get a tiny pseudo-count so the log stays finite.
 */
export function logClassPriors(labels: Int32Array, numClasses: number): Float32Array {
  const counts = new Float64Array(numClasses);
  for (let i = 0; i < labels.length; i++) counts[labels[i]] += 1;
  const pseudoCount = 1e-3;
  const total = labels.length + pseudoCount * numClasses;
  const priors = new Float32Array(numClasses);
  for (let c = 0; c < numClasses; c++) {
    const count = counts[c] > 0 ? counts[c] : pseudoCount;
    priors[c] = Math.log(count / total);
  }
  return priors;
}
