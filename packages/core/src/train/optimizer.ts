import * as tf from '@tensorflow/tfjs';
import type { OptimizerName } from './types.js';

interface AdamInternals {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: { originalName: string; variable: tf.Variable }[];
  accumulatedSecondMoment: { originalName: string; variable: tf.Variable }[];
}

/**
 * tfjs's Adam with each variable's update in its own tidy. tfjs runs every variable's update inside
 * one tidy, so about ten temporaries per weight stay alive until the last weight is done: several
 * GB for full fine-tuning of ViT-B/16, past the 4 GiB wasm heap. Same slots (by position), same
 * arithmetic in the same order, same saved state (getWeights/setWeights are tfjs's).
 */
export class PerVariableAdam extends tf.AdamOptimizer {
  override applyGradients(variableGradients: tf.NamedTensorMap | { name: string; tensor: tf.Tensor }[]): void {
    const self = this as unknown as AdamInternals;
    const list = Array.isArray(variableGradients) ? variableGradients : Object.keys(variableGradients).map((name) => ({ name, tensor: variableGradients[name] }));
    const [oneMinusAccBeta1, oneMinusAccBeta2] = tf.tidy(() => [tf.sub(1, self.accBeta1), tf.sub(1, self.accBeta2)]);
    list.forEach(({ name, tensor: gradient }, i) => {
      const value = tf.engine().registeredVariables[name];
      self.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
      self.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
      if (gradient == null) return;
      const firstMoment = self.accumulatedFirstMoment[i].variable;
      const secondMoment = self.accumulatedSecondMoment[i].variable;
      tf.tidy(() => {
        const newFirstMoment = tf.add(tf.mul(firstMoment, self.beta1), tf.mul(gradient, 1 - self.beta1));
        const newSecondMoment = tf.add(tf.mul(secondMoment, self.beta2), tf.mul(tf.square(gradient), 1 - self.beta2));
        const biasCorrectedFirstMoment = tf.div(newFirstMoment, oneMinusAccBeta1);
        const biasCorrectedSecondMoment = tf.div(newSecondMoment, oneMinusAccBeta2);
        firstMoment.assign(newFirstMoment);
        secondMoment.assign(newSecondMoment);
        value.assign(tf.add(tf.mul(tf.div(biasCorrectedFirstMoment, tf.add(tf.sqrt(biasCorrectedSecondMoment), self.epsilon)), -self.learningRate), value));
      });
    });
    tf.dispose([oneMinusAccBeta1, oneMinusAccBeta2]);
    tf.tidy(() => {
      self.accBeta1.assign(tf.mul(self.accBeta1, self.beta1));
      self.accBeta2.assign(tf.mul(self.accBeta2, self.beta2));
    });
    this.incrementIterations();
  }
}

/** Adam (torch defaults: betas 0.9/0.999, eps 1e-8) or SGD with momentum; the rate is set per epoch. */
export function createOptimizer(name: OptimizerName, lr: number, momentum = 0.9): tf.Optimizer {
  if (name === 'adam') return new PerVariableAdam(lr, 0.9, 0.999, 1e-8);
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
 * Decayed gradients are disposed here; so are the gradients they replace (`grads` is the caller's
 * to dispose otherwise).
 */
export function applyGradients(
  optimizer: tf.Optimizer,
  variables: tf.Variable[],
  grads: Record<string, tf.Tensor>,
  weightDecay: number,
  noDecay: Set<tf.Variable>,
): void {
  for (const v of variables) if (!grads[v.name]) throw new Error(`no gradient for variable ${v.name}: is it used by the model's logits?`);
  // One weight at a time, each decayed gradient replacing its gradient: the step never holds two
  // gradient-sized copies of every weight (full fine-tuning of ViT-B: 344 MB each).
  const decayed: tf.Tensor[] = [];
  const named = variables.map((v) => {
    const g = grads[v.name];
    if (!(weightDecay > 0) || noDecay.has(v)) return { name: v.name, tensor: g };
    const tensor = tf.tidy(() => tf.add(g, tf.mul(v, weightDecay)));
    g.dispose();
    decayed.push(tensor);
    return { name: v.name, tensor };
  });
  try {
    optimizer.applyGradients(named);
  } finally {
    tf.dispose(decayed);
  }
}
