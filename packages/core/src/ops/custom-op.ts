import * as tf from '@tensorflow/tfjs';

export type GradientFn = (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[];

/**
 * tf.customGrad with the inputs as an array: the gradient sits beside the forward, as in tfjs-core's ops.
 *
 * tfjs frees nothing during a backward pass until it ends: a custom gradient's temporaries and
 * every intermediate gradient (each node's dy) live to the last node. Here the gradient runs in its
 * own tidy, and its dy is freed once used when the backward pass made it (its id is newer than the
 * op's output; a dy the caller handed to tf.grads is older and is left alone). In a cached VQT
 * step at ViT-B/16, batch 32, these were most of the step's memory after its activations.
 */
export function customOp(
  forward: (inputs: tf.Tensor[], save: tf.GradSaveFunc) => { value: tf.Tensor; gradFunc: GradientFn },
): (...inputs: tf.Tensor[]) => tf.Tensor {
  const f = (...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const { value, gradFunc } = forward(args as tf.Tensor[], save);
    const outputId = value.id;
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const grads = tf.tidy(() => gradFunc(dy, saved));
        const returned = Array.isArray(grads) ? grads : [grads];
        if (dy.id > outputId && !returned.includes(dy)) dy.dispose();
        return grads;
      },
    };
  };
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as (...inputs: tf.Tensor[]) => tf.Tensor;
}
