import * as tf from '@tensorflow/tfjs';
import { isTrainable } from '../ops/linear.js';
import { isRecordingGradients, untaped } from '../ops/tape.js';

/**
 * Tensors derived from a parameter (per-head slices, a transpose), computed afresh at every call from
 * the parameter as it is now: nothing is snapshotted, so a method may train the parameter. While a
 * gradient scope records a trainable parameter they are derived on the tape (the gradient reaches the
 * parameter itself); otherwise with the cheaper off-tape formulation.
 */
export function derive<T extends tf.Tensor>(param: tf.Tensor, onTape: () => T[], offTape: () => T[] = onTape): T[] {
  if (isTrainable(param) && isRecordingGradients()) return onTape();
  return untaped(offTape);
}

/** True when weights derived from this Linear must carry a gradient back to it (see derive). */
export function derivesOnTape(p: { weight: tf.Tensor; bias?: tf.Tensor }): boolean {
  return isRecordingGradients() && (isTrainable(p.weight) || (p.bias !== undefined && isTrainable(p.bias)));
}

/** Columns [h d, (h + 1) d) of w [in, H d] for every head: one host read and H writes (tf.slice copies all of w per piece on wasm). */
export function splitColumnsThroughHost(w: tf.Tensor2D, heads: number): tf.Tensor2D[] {
  const [rows, cols] = w.shape;
  const d = cols / heads;
  const values = w.dataSync() as Float32Array;
  return Array.from({ length: heads }, (_, h) => {
    const out = new Float32Array(rows * d);
    for (let r = 0; r < rows; r++) out.set(values.subarray(r * cols + h * d, r * cols + (h + 1) * d), r * d);
    return tf.tensor2d(out, [rows, d]);
  });
}

/** The transposes of splitColumnsThroughHost's pieces, [d, in] for every head, written straight from one host read. */
export function splitColumnsTransposedThroughHost(w: tf.Tensor2D, heads: number): tf.Tensor2D[] {
  const [rows, cols] = w.shape;
  const d = cols / heads;
  const values = w.dataSync() as Float32Array;
  return Array.from({ length: heads }, (_, h) => {
    const out = new Float32Array(d * rows);
    for (let r = 0; r < rows; r++) {
      const from = r * cols + h * d;
      for (let j = 0; j < d; j++) out[j * rows + r] = values[from + j];
    }
    return tf.tensor2d(out, [d, rows]);
  });
}

export function splitColumnsOnTape(w: tf.Tensor2D, heads: number): tf.Tensor2D[] {
  const [rows, cols] = w.shape;
  const d = cols / heads;
  return Array.from({ length: heads }, (_, h) => tf.slice(w, [0, h * d], [rows, d]));
}

export function splitVectorOnTape(b: tf.Tensor1D, heads: number): tf.Tensor1D[] {
  const d = b.shape[0] / heads;
  return Array.from({ length: heads }, (_, h) => tf.slice(b, [h * d], [d]));
}
