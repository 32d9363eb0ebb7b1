import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom-op.js';

// Abramowitz & Stegun 7.1.26: erf(z) = 1 - P(t) exp(-z^2), t = 1 / (1 + p z), |error| <= 1.5e-7.
// Built from exp and a polynomial because tfjs's Erf is not vectorised on wasm (ENGINE.md).
const P = 0.3275911;
const A = [0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429];
const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** erfc-style remainder: returns P(t) * exp(-x^2 / 2) for z = |x| / sqrt(2), so erf(z) = 1 - result. */
function erfRemainder(x: tf.Tensor): tf.Tensor {
  const z = tf.mul(tf.abs(x), INV_SQRT2);
  const t = tf.reciprocal(tf.add(tf.mul(z, P), 1));
  let poly: tf.Tensor = tf.scalar(A[4]);
  for (let i = 3; i >= 0; i--) poly = tf.add(tf.mul(poly, t), A[i]);
  poly = tf.mul(poly, t);
  return tf.mul(poly, tf.exp(tf.mul(tf.square(x), -0.5)));
}

/** Exact (erf) GELU, as timm's nn.GELU: x * Phi(x). Accurate to ~1e-7 relative to x. */
export function gelu<T extends tf.Tensor>(x: T): T {
  const op = customOp(([input], save) => {
    save([input]);
    // x >= 0: x (1 - R/2); x < 0: x R/2, i.e. relu(x) - |x| R / 2.
    const value = tf.sub(tf.relu(input), tf.mul(tf.mul(tf.abs(input), 0.5), erfRemainder(input)));
    return {
      value,
      gradFunc: (dy, saved) => {
        const [xs] = saved;
        // d/dx x Phi(x) = Phi(x) + x phi(x)
        const density = tf.mul(tf.exp(tf.mul(tf.square(xs), -0.5)), INV_SQRT_2PI);
        return tf.mul(dy, tf.add(normalCdf(xs), tf.mul(xs, density)));
      },
    };
  });
  return op(x) as T;
}

/** Phi(x) = 0.5 (1 + erf(x / sqrt 2)) = 1 - R/2 for x >= 0, R/2 for x < 0. */
function normalCdf(x: tf.Tensor): tf.Tensor {
  const halfR = tf.mul(erfRemainder(x), 0.5);
  return tf.where(tf.greaterEqual(x, 0), tf.sub(1, halfR), halfR);
}
