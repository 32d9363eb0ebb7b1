import { DEFAULT_RUNTIME, methodParts, methodSpec, parseOptionValue, registeredMethods, type MethodOption, type MethodSpec, type RuntimeConfig } from '@vqt/core';
import '@vqt/adaptformer';
import '@vqt/head2toe';
import '@vqt/lora';
import '@vqt/vpt';
import '@vqt/vqt';
import { UsageError } from './errors.js';

/**
 * The CLI's only knowledge of methods: the packages it imports register themselves with core's
 * registry, and every flag, choice and help line below comes from their specs.
 */

/** `--method` values: every registered method, and the stacks of a stackable method on an adapting one. */
export function methodChoices(): string[] {
  const methods = registeredMethods();
  const stacks = methods.filter((b) => b.role === 'adapt' && b.stackBase !== false).flatMap((base) => methods.filter((t) => t.stackable).map((top) => `${base.name}+${top.name}`));
  return [...methods.map((m) => m.name), ...stacks];
}

export interface MethodFlag {
  option: MethodOption;
  /** Methods that take it. */
  methods: string[];
}

/** One entry per distinct flag across all methods (shared flags, such as --last-blocks, once). */
export function methodFlags(): MethodFlag[] {
  const flags = new Map<string, MethodFlag>();
  for (const spec of registeredMethods()) {
    for (const option of spec.options) {
      if (option.hidden) continue;
      const entry = flags.get(option.flag) ?? { option, methods: [] };
      entry.methods.push(spec.name);
      flags.set(option.flag, entry);
    }
  }
  return [...flags.values()];
}

/** Commander's property name for a kebab-case flag. */
export function camel(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * The method config from command-line values: each flag goes to every part of the method (or stack)
 * that takes it; a flag no part takes is an error, never silently ignored.
 */
export function methodConfigFromFlags(method: string, values: Record<string, unknown>): { spec: MethodSpec<object>; config: Record<string, unknown> } {
  let spec: MethodSpec<object>;
  try {
    spec = methodSpec(method);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const parts = methodParts(method);
  const perPart = new Map(parts.map((p) => [p.name, {} as Record<string, unknown>]));
  for (const { option } of methodFlags()) {
    const raw = values[camel(option.flag)];
    if (raw === undefined) continue;
    const takers = parts.filter((p) => p.options.some((o) => o.flag === option.flag && !o.hidden));
    if (takers.length === 0) {
      throw new UsageError(`--${option.flag} is not an option of --method ${method} (it belongs to ${methodFlags().find((f) => f.option.flag === option.flag)!.methods.join(', ')})`);
    }
    for (const part of takers) {
      const own = part.options.find((o) => o.flag === option.flag)!;
      try {
        perPart.get(part.name)![own.key] = typeof raw === 'string' ? parseOptionValue(own, raw) : raw;
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
    }
  }
  const config = parts.length === 1 ? perPart.get(parts[0].name)! : Object.fromEntries(perPart);
  return { spec, config };
}

export interface RuntimeFlags {
  cacheBudget: number;
  cacheDir?: string;
  spillFloat16?: boolean;
  checkpointing: 'auto' | 'on' | 'off';
}

export function runtimeFromFlags(flags: Partial<RuntimeFlags>): RuntimeConfig {
  return {
    ...DEFAULT_RUNTIME,
    ...(flags.cacheBudget !== undefined ? { cacheBudgetBytes: flags.cacheBudget * 2 ** 20 } : {}),
    ...(flags.cacheDir ? { cacheDir: flags.cacheDir } : {}),
    spillDtype: flags.spillFloat16 ? 'float16' : 'float32',
    checkpointing: flags.checkpointing ?? 'auto',
  };
}
