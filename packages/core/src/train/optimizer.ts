import * as tf from '@tensorflow/tfjs';
import type { OptimizerName } from './types.js';

/** Adam (torch defaults: betas 0.9/0.999, eps 1e-8) or SGD with momentum; the rate is set per epoch. */
export function createOptimizer(name: OptimizerName, lr: number, momentum = 0.9): tf.Optimizer {
  if (name === 'adam') return tf.train.adam(lr, 0.9, 0.999, 1e-8);
  if (name === 'sgd') return tf.train.momentum(lr, momentum);
  throw new Error(`unknown optimizer "${name as string}" (use adam or sgd)`);
}

/** Sets an Adam or SGD optimizer's learning rate in place (the trainer does it every epoch). */
export function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  // tfjs optimizers answer instanceof by duck typing, so ask for the method instead.
  const sgd = optimizer as unknown as { setLearningRate?: (lr: number) => void; learningRate: number };
  if (typeof sgd.setLearningRate === 'function') sgd.setLearningRate(lr);
  else sgd.learningRate = lr;
}

/**
 * Coupled L2 weight decay, as torch.optim.Adam(weight_decay=wd): g + wd * w before the update.
 * Gradients are passed as an ordered list so optimizer slots line up by position after a resume.
 */
export function applyGradients(
  optimizer: tf.Optimizer,
  variables: tf.Variable[],
  grads: Record<string, tf.Tensor>,
  weightDecay: number,
  noDecay: Set<tf.Variable>,
): void {
  tf.tidy(() => {
    const named = variables.map((v) => {
      const g = grads[v.name];
      if (!g) throw new Error(`no gradient for variable ${v.name}: is it used by the model's logits?`);
      return { name: v.name, tensor: weightDecay > 0 && !noDecay.has(v) ? tf.add(g, tf.mul(v, weightDecay)) : g };
    });
    optimizer.applyGradients(named);
  });
}
