import * as tf from '@tensorflow/tfjs';

/**
 * tfjs refuses a second live variable with the same name, so a second model in one process
 * (tests, a grid search) gets a numbered suffix. The adapter file never uses these names.
 */
export function freshVariableName(base: string): string {
  const taken = tf.engine().registeredVariables;
  if (!(base in taken)) return base;
  for (let i = 1; ; i++) if (!(`${base}#${i}` in taken)) return `${base}#${i}`;
}

export function namedVariable(initial: tf.Tensor, name: string): tf.Variable {
  return tf.variable(initial, true, freshVariableName(name));
}
