import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom-op.js';

export function isTrainable(t: tf.Tensor): boolean {
  return t instanceof tf.Variable && t.trainable;
}

/**
 * y = x @ w + b with x [rows, in], w [in, out] (input-major, unlike torch's [out, in]).
 * Written with explicit transposes in the gradient: on wasm matMul's transpose flags and the default
 * matMul gradient run ~8x slower (ENGINE.md). Frozen weights are closed over so no gradient is
 * computed for them; `weightGradient` forces the gradient for weights derived from a trainable variable.
 */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D, weightGradient = false): tf.Tensor2D {
  // weightGradient: w or b is derived on the tape from a trainable variable (a per-head slice), not a variable itself.
  if (weightGradient || isTrainable(w) || (b !== undefined && isTrainable(b))) return trainableLinear(x, w, b);
  return frozenLinear(x, w, b);
}

function frozenLinear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  const op = customOp(([input], save) => {
    // Saved (a clone sharing w's buffer, only while a tape records) so that a weight derived per call,
    // such as a per-head slice, outlives the forward's tidy until the backward pass has used it.
    save([w]);
    const y = tf.matMul(input as tf.Tensor2D, w);
    return {
      value: b ? tf.add(y, b) : y,
      gradFunc: (dy, saved) => inputGradient(dy as tf.Tensor2D, saved[0] as tf.Tensor2D),
    };
  });
  return op(x) as tf.Tensor2D;
}

/**
 * dx = dy W^T without matMul's transpose flags. Intermediates live until the backward pass ends,
 * so transpose whichever is smaller: the weight, or the few rows of side queries flowing back.
 */
function inputGradient(dy: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const [inputs, outputs] = w.shape;
  const rows = dy.shape[0];
  if (rows * (inputs + outputs) < inputs * outputs) return tf.transpose(tf.matMul(w, tf.transpose(dy))) as tf.Tensor2D;
  return tf.matMul(dy, tf.transpose(w));
}

function trainableLinear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  const bias = b ?? tf.zeros([w.shape[1]]);
  const op = customOp(([input, weight, bi], save) => {
    save([input, weight]);
    return {
      value: tf.add(tf.matMul(input as tf.Tensor2D, weight as tf.Tensor2D), bi),
      gradFunc: (dy, saved) => {
        const [savedInput, savedWeight] = saved as [tf.Tensor2D, tf.Tensor2D];
        const dy2 = dy as tf.Tensor2D;
        return [
          inputGradient(dy2, savedWeight),
          tf.matMul(tf.transpose(savedInput), dy2),
          tf.sum(dy2, 0),
        ];
      },
    };
  });
  return op(x, w, bias) as tf.Tensor2D;
}
