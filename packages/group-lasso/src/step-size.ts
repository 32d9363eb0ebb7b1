import * as tf from '@tensorflow/tfjs';

/**
 * Estimate of the Lipschitz constant of the smooth objective's gradient, used as the solver's first
 * step 1/L. Böhning's bound says the softmax cross-entropy Hessian is at most
 * 0.5 * [X 1]^T [X 1] / n (+ l2); its top eigenvalue comes from a few power iterations.
 * Power iteration approaches from below, so the step may be slightly long: backtracking corrects that.
 */
export function estimateLipschitz(features: tf.Tensor2D, l2: number, iterations = 10): number {
  const [n, numFeatures] = features.shape;
  if (n === 0) return 1 + l2;
  let vWeight = tf.tidy(() => tf.add(1, tf.mul(0.1, tf.sin(tf.range(0, numFeatures, 1, 'float32')))).reshape([numFeatures, 1]) as tf.Tensor2D);
  let vBias = 1;
  let eigenvalue = 0;
  for (let i = 0; i < iterations; i++) {
    const next = tf.tidy(() => {
      const u = tf.add(tf.matMul(features, vWeight), vBias) as tf.Tensor2D;
      // Augmented X^T u without transposing X: (u^T X)^T.
      const weightPart = tf.transpose(tf.matMul(tf.transpose(u), features)) as tf.Tensor2D;
      const biasPart = tf.sum(u);
      const normSquared = tf.add(tf.sum(tf.square(weightPart)), tf.square(biasPart));
      const norm = tf.sqrt(normSquared);
      const vNormSquared = tf.add(tf.sum(tf.square(vWeight)), vBias * vBias);
      // Rayleigh quotient of A^T A at v: ||A v||^2 / ||v||^2.
      const rayleigh = tf.div(tf.sum(tf.square(u)), vNormSquared);
      return { weightPart: tf.div(weightPart, norm) as tf.Tensor2D, scalars: tf.stack([tf.div(biasPart, norm), rayleigh]) };
    });
    const [biasValue, rayleigh] = next.scalars.dataSync();
    next.scalars.dispose();
    vWeight.dispose();
    vWeight = next.weightPart;
    vBias = biasValue;
    eigenvalue = rayleigh;
    if (!Number.isFinite(eigenvalue)) break;
  }
  vWeight.dispose();
  if (!Number.isFinite(eigenvalue) || eigenvalue <= 0) return 1 + l2;
  return (0.5 * eigenvalue) / n + l2;
}
