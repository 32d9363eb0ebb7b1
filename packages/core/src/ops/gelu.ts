import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom-op.js';

// Abramowitz & Stegun 7.1.26: erf(z) = 1 - P(t) exp(-z^2), t = 1 / (1 + p z), |error| <= 1.5e-7.
// Built from exp and a polynomial because tfjs's Erf is not vectorised on wasm (ENGINE.md).
const P = 0.3275911;
const A = [0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429];
const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * erfc-style remainder: returns P(t) * exp(-x^2 / 2) for z = |x| / sqrt(2), so erf(z) = 1 - result.
 * Each step frees what it used: GELU runs on the MLP's widest activation, and keeping the ~20
 * intermediates of one expression alive until the op ended set the peak memory of a whole forward.
 */
function erfRemainder(x: tf.Tensor): tf.Tensor {
  const t = tf.tidy(() => tf.reciprocal(tf.add(tf.mul(tf.abs(x), INV_SQRT2 * P), 1)));
  let poly = tf.tidy(() => tf.add(tf.mul(t, A[4]), A[3]));
  for (let i = 2; i >= 0; i--) {
    const next = tf.tidy(() => tf.add(tf.mul(poly, t), A[i]));
    poly.dispose();
    poly = next;
  }
  const withT = tf.mul(poly, t);
  tf.dispose([poly, t]);
  const gaussian = tf.tidy(() => tf.exp(tf.mul(tf.square(x), -0.5)));
  const result = tf.mul(withT, gaussian);
  tf.dispose([withT, gaussian]);
  return result;
}

/** Exact (erf) GELU, as timm's nn.GELU: x * Phi(x). Accurate to ~1e-7 relative to x. */
export function gelu<T extends tf.Tensor>(x: T): T {
  const op = customOp(([input], save) => {
    save([input]);
    // x >= 0: x (1 - R/2); x < 0: x R/2, i.e. relu(x) - |x| R / 2.
    const remainder = erfRemainder(input);
    const scaled = tf.tidy(() => tf.mul(tf.mul(tf.abs(input), 0.5), remainder));
    remainder.dispose();
    const value = tf.tidy(() => tf.sub(tf.relu(input), scaled));
    scaled.dispose();
    return {
      value,
      gradFunc: (dy, saved) => {
        const [xs] = saved;
        // d/dx x Phi(x) = Phi(x) + x phi(x)
        const slope = tf.tidy(() => tf.mul(tf.exp(tf.mul(tf.square(xs), -0.5)), INV_SQRT_2PI));
        const xSlope = tf.mul(xs, slope);
        slope.dispose();
        const cdf = normalCdf(xs);
        const derivative = tf.add(cdf, xSlope);
        tf.dispose([cdf, xSlope]);
        const dx = tf.mul(dy, derivative);
        derivative.dispose();
        return dx;
      },
    };
  });
  return op(x) as T;
}

/** Phi(x) = 0.5 (1 + erf(x / sqrt 2)) = 1 - R/2 for x >= 0, R/2 for x < 0. */
function normalCdf(x: tf.Tensor): tf.Tensor {
  const remainder = erfRemainder(x);
  const result = tf.tidy(() => {
    const halfR = tf.mul(remainder, 0.5);
    return tf.where(tf.greaterEqual(x, 0), tf.sub(1, halfR), halfR);
  });
  remainder.dispose();
  return result;
}

/** QuickGELU, x sigmoid(1.702 x), as OpenAI's CLIP and timm's act_layer='quick_gelu'. Vectorised on wasm. */
export function quickGelu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702)))) as T;
}
