import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom-op.js';

export function isTrainable(t: tf.Tensor): boolean {
  return t instanceof tf.Variable && t.trainable;
}

/**
 * y = x @ w + b with x [rows, in], w [in, out] (input-major, unlike torch's [out, in]).
 * Written with explicit transposes in the gradient: on wasm matMul's transpose flags and the default
 * matMul gradient run ~8x slower (ENGINE.md). Frozen weights are closed over so no gradient is
 * computed for them.
 */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  if (isTrainable(w) || (b !== undefined && isTrainable(b))) return trainableLinear(x, w, b);
  return frozenLinear(x, w, b);
}

function frozenLinear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  const op = customOp(([input], save) => {
    save([]);
    const y = tf.matMul(input as tf.Tensor2D, w);
    return {
      value: b ? tf.add(y, b) : y,
      gradFunc: (dy) => tf.matMul(dy as tf.Tensor2D, tf.transpose(w)),
    };
  });
  return op(x) as tf.Tensor2D;
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
          tf.matMul(dy2, tf.transpose(savedWeight)),
          tf.matMul(tf.transpose(savedInput), dy2),
          tf.sum(dy2, 0),
        ];
      },
    };
  });
  return op(x, w, bias) as tf.Tensor2D;
}
