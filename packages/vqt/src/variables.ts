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

/** A trainable variable from a fresh tensor; the tensor itself is released (the variable shares its data). */
export function namedVariable(initial: tf.Tensor, name: string): tf.Variable {
  const variable = tf.variable(initial, true, freshVariableName(name));
  initial.dispose();
  return variable;
}
