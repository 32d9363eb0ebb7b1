import * as tf from '@tensorflow/tfjs';

/**
 * The shapes ('AxB') of every tensor the gradient tape records for one loss w.r.t. `vars`: which
 * parts of the model are on the tape. Reads tfjs engine internals; gradients are computed and freed.
 */
export function tapeShapes(fn: () => tf.Scalar, vars: tf.Variable[]): string[] {
  let shapes: string[] = [];
  const { grads, value } = tf.variableGrads(() => {
    const loss = fn();
    const tape = (tf.engine() as unknown as { state: { activeTape: { outputs: tf.Tensor[] }[] } }).state.activeTape;
    shapes = tape.flatMap((node) => node.outputs.map((o) => o.shape.join('x')));
    return loss;
  }, vars);
  tf.dispose([value, ...Object.values(grads)]);
  return shapes;
}
