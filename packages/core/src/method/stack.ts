import type * as tf from '@tensorflow/tfjs';
import { getMethod, resolveMethodConfig } from './registry.js';
import type { FittedMethod, MethodSpec } from './spec.js';

/** A stack's config: each part's own config under its method name, base first. */
export type StackConfig = Record<string, Record<string, unknown>>;

/** The spec behind a `--method` value: a registered method, or 'base+top' for a stack. */
export function methodSpec(name: string): MethodSpec<object> {
  return name.includes('+') ? stackSpec(name) : getMethod(name);
}

/** The parts of a method name: ['vpt', 'vqt'] for 'vpt+vqt', ['vqt'] for 'vqt'. */
export function methodParts(name: string): MethodSpec<object>[] {
  return name.split('+').map((part) => getMethod(part));
}

/**
 * VQT (or another reading method) on top of an adapting method, two-stage as in the paper
 * (sec. 4.3): fit the base with its own head, freeze it, fit the top through the frozen adapted
 * backbone. The adapter holds the base's tensors (not its head), the top's, and the final head.
 */
export function stackSpec(name: string): MethodSpec<StackConfig> {
  const parts = methodParts(name);
  if (parts.length !== 2) throw new Error(`stack "${name}": a stack is one adapting method and one method on top ('vpt+vqt')`);
  const [base, top] = parts;
  if (base.role !== 'adapt' || base.stackBase === false) throw new Error(`stack "${name}": nothing can stack on "${base.name}" (it does not adapt the shared backbone through hooks)`);
  if (!top.stackable) throw new Error(`stack "${name}": "${top.name}" cannot be stacked on another method`);
  return {
    name,
    description: `${top.name} on a frozen, already fitted ${base.name}`,
    prefix: top.prefix,
    role: 'read',
    defaults: { [base.name]: { ...base.defaults }, [top.name]: { ...top.defaults } },
    options: [],
    async fit(config, context, data) {
      // A base fitted earlier (`vqt train --base DIR`) is reused as it is; its owner disposes it.
      if (context.base && context.base.method !== base.name) {
        throw new Error(`stack "${name}": the given base is a "${context.base.method}" adapter, not "${base.name}"`);
      }
      if (context.joint && context.base) throw new Error(`stack "${name}": joint training fits the base too; it cannot reuse a fitted one`);
      const baseConfig = resolveMethodConfig(base, config[base.name] ?? {});
      let fittedBase: FittedMethod;
      if (context.joint) {
        // The base's hooks at their initial values (no epochs), trained together with the top.
        context.log(`stack ${name}: joint, ${base.name} and ${top.name} trained together`);
        fittedBase = await base.fit(baseConfig, { ...context, train: { ...context.train, epochs: 0, checkpointFile: undefined, resume: false } }, data);
        if (!fittedBase.trainableHooks) {
          fittedBase.dispose();
          throw new Error(`stack "${name}": ${base.name} does not expose trainable hooks, so it cannot be trained jointly`);
        }
      } else {
        if (!context.base) context.log(`stack ${name}: stage 1, ${base.name} with its own head`);
        fittedBase = context.base ?? (await base.fit(baseConfig, context, data));
      }
      try {
        if (!context.joint) context.log(`stack ${name}: stage 2, ${top.name} on the frozen ${base.name}`);
        const fittedTop = await top.fit(resolveMethodConfig(top, config[top.name] ?? {}), { ...context, base: fittedBase }, data);
        return stackFitted(name, fittedBase, fittedTop, !context.base);
      } catch (error) {
        if (!context.base) fittedBase.dispose();
        throw error;
      }
    },
    open(config, tensors, context) {
      const own = (prefix: string) => new Map([...tensors].filter(([key]) => key.startsWith(prefix)));
      const baseTensors = own(base.prefix);
      if (baseTensors.size === 0) throw new Error(`${context.file}: stack ${name} has no ${base.prefix}* tensors: its base is missing`);
      const topTensors = new Map([...tensors].filter(([key]) => !key.startsWith(base.prefix)));
      const fittedBase = base.open(resolveMethodConfig(base, config[base.name] ?? {}, context.file), baseTensors, { ...context, headless: true });
      try {
        const fittedTop = top.open(resolveMethodConfig(top, config[top.name] ?? {}, context.file), topTensors, { ...context, base: fittedBase });
        return stackFitted(name, fittedBase, fittedTop, true);
      } catch (error) {
        fittedBase.dispose();
        throw error;
      }
    },
  };
}

function stackFitted(name: string, base: FittedMethod, top: FittedMethod, ownsBase: boolean): FittedMethod {
  return {
    method: name,
    numClasses: top.numClasses,
    options: () => ({ [base.method]: base.options(), [top.method]: top.options() }),
    trainableParameters: () => base.trainableParameters() + top.trainableParameters(),
    logits: (images) => top.logits(images),
    headFeatures: (images) => top.headFeatures(images),
    evaluate: top.evaluate ? (data, batchSize) => top.evaluate!(data, batchSize) : undefined,
    adaptingHooks: base.adaptingHooks,
    exportTensors: () => {
      const baseTensors = base.exportTensors();
      const out: Record<string, tf.Tensor> = {};
      for (const [key, t] of Object.entries(baseTensors)) {
        if (key.startsWith('head.')) t.dispose();
        else out[key] = t;
      }
      return { ...out, ...top.exportTensors() };
    },
    dispose: () => {
      top.dispose();
      if (ownsBase) base.dispose();
    },
  };
}

/** Resolves a saved or command-line config for a single method or a stack ({part: config}). */
export function resolveAnyConfig(spec: MethodSpec<object>, options: Record<string, unknown>, where?: string): object {
  if (!spec.name.includes('+')) return resolveMethodConfig(spec, options, where);
  const parts = methodParts(spec.name);
  for (const key of Object.keys(options)) {
    if (!parts.some((p) => p.name === key)) throw new Error(`${where ?? spec.name}: stack ${spec.name} has no part "${key}"`);
  }
  return Object.fromEntries(parts.map((p) => [p.name, resolveMethodConfig(p, (options[p.name] ?? {}) as Record<string, unknown>, where)]));
}

