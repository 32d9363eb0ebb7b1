import type { MethodOption, MethodSpec } from './spec.js';

// One registry per process, shared by the ESM and CJS builds of this package (each is its own module instance).
const REGISTRY_KEY = Symbol.for('@vqt/core/method-registry');
const holder = globalThis as unknown as Record<symbol, Map<string, MethodSpec<object>> | undefined>;
const registry: Map<string, MethodSpec<object>> = (holder[REGISTRY_KEY] ??= new Map());

/** Adds a method; registering the same spec twice is harmless, another spec under a taken name is an error. */
export function registerMethod<C extends object>(spec: MethodSpec<C>): MethodSpec<C> {
  const existing = registry.get(spec.name);
  if (existing === (spec as unknown)) return spec;
  if (existing) {
    // The ESM and CJS builds of one package (or a test runner's fresh module graph) register the same
    // method again: the latest registration serves, so the spec an import hands out is the one in use.
    if (sameMethod(existing, spec as unknown as MethodSpec<object>)) {
      registry.set(spec.name, spec as unknown as MethodSpec<object>);
      return spec;
    }
    throw new Error(`method "${spec.name}" is already registered by another spec`);
  }
  checkSpec(spec as unknown as MethodSpec<object>);
  for (const other of registry.values()) checkSharedFlags(spec as unknown as MethodSpec<object>, other);
  registry.set(spec.name, spec as unknown as MethodSpec<object>);
  return spec;
}

/** The registered spec of a method ('vqt', 'head2toe', 'linear'); unknown names are an error listing the registered ones. Import a method's package to register it. */
export function getMethod(name: string): MethodSpec<object> {
  const spec = registry.get(name);
  if (!spec) throw new Error(`unknown method "${name}"; registered: ${[...registry.keys()].join(', ') || 'none'}`);
  return spec;
}

/** Whether a method of this name is registered (its package has been imported). */
export function hasMethod(name: string): boolean {
  return registry.has(name);
}

/** Every registered spec, in registration order (what `vqt train --help` lists). */
export function registeredMethods(): MethodSpec<object>[] {
  return [...registry.values()];
}

function sameMethod(a: MethodSpec<object>, b: MethodSpec<object>): boolean {
  const signature = (m: MethodSpec<object>) => JSON.stringify([m.prefix, m.role, m.defaults, m.options]);
  return signature(a) === signature(b);
}

function checkSpec(spec: MethodSpec<object>): void {
  const keys = new Set(Object.keys(spec.defaults));
  const declared = new Set<string>();
  for (const option of spec.options) {
    if (!keys.has(option.key)) throw new Error(`method "${spec.name}": option --${option.flag} has no default for key "${option.key}"`);
    if (declared.has(option.key)) throw new Error(`method "${spec.name}": key "${option.key}" declared twice`);
    declared.add(option.key);
  }
  for (const key of keys) if (!declared.has(key)) throw new Error(`method "${spec.name}": default "${key}" has no option`);
  if (!/^[a-z][a-z0-9-]*\.$/.test(spec.prefix)) throw new Error(`method "${spec.name}": prefix "${spec.prefix}" must look like "name."`);
}

/** Two methods may share a flag (`--last-blocks`) only with the same kind and choices. */
function checkSharedFlags(a: MethodSpec<object>, b: MethodSpec<object>): void {
  if (a.name === b.name) return;
  for (const x of a.options) {
    const y = b.options.find((o) => o.flag === x.flag);
    if (y && (y.kind !== x.kind || String(y.choices) !== String(x.choices))) {
      throw new Error(`--${x.flag} means different things for methods "${a.name}" and "${b.name}"`);
    }
  }
}

/**
 * Fills defaults and validates a method config. Unknown keys are errors (an option that the method
 * does not take must not be silently accepted), so are wrong kinds and out-of-range values.
 * `where` names the source in messages (a file, 'command line').
 */
export function resolveMethodConfig<C extends object>(spec: MethodSpec<C>, partial: Record<string, unknown>, where = spec.name): C {
  const known = new Map(spec.options.map((o) => [o.key, o]));
  for (const key of Object.keys(partial)) {
    if (!known.has(key)) throw new Error(`${where}: method "${spec.name}" has no option "${key}" (options: ${[...known.keys()].join(', ')})`);
  }
  const config = { ...spec.defaults } as Record<string, unknown>;
  for (const [key, value] of Object.entries(partial)) if (value !== undefined) config[key] = value;
  for (const option of spec.options) checkValue(option, config[option.key], `${where}: ${spec.name}.${option.key}`);
  spec.validate?.(config as C);
  return config as C;
}

function checkValue(option: MethodOption, value: unknown, name: string): void {
  if (value === undefined) {
    if (option.optional) return;
    throw new Error(`${name} is required`);
  }
  const fail = (what: string) => {
    throw new Error(`${name} must be ${what} (got ${JSON.stringify(value)})`);
  };
  const inRange = (n: number) => {
    if (option.min !== undefined && n < option.min) fail(`>= ${option.min}`);
    if (option.max !== undefined && n > option.max) fail(`<= ${option.max}`);
  };
  switch (option.kind) {
    case 'int':
      if (!Number.isInteger(value)) fail('an integer');
      inRange(value as number);
      break;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) fail('a number');
      inRange(value as number);
      break;
    case 'fraction':
      if (typeof value !== 'number' || !(value > 0 && value <= 1)) fail('a fraction in (0, 1]');
      break;
    case 'boolean':
      if (typeof value !== 'boolean') fail('true or false');
      break;
    case 'string':
      if (typeof value !== 'string') fail('a string');
      break;
    case 'choice':
      if (!option.choices?.includes(value as string)) fail(`one of ${option.choices?.join(', ')}`);
      break;
    case 'intList':
      if (!Array.isArray(value) || !value.every((v) => Number.isInteger(v))) fail('a list of integers');
      for (const v of value as number[]) inRange(v);
      break;
    case 'json':
      if (!option.hidden) throw new Error(`${name}: 'json' options are saved state, not flags (mark it hidden)`);
      break;
    case 'stringList':
      if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) fail('a list of strings');
      if (option.choices) for (const v of value as string[]) if (!option.choices.includes(v)) fail(`a list of ${option.choices.join(', ')}`);
      break;
  }
}

/** Parses a command-line string for an option of this kind (lists are comma-separated). */
export function parseOptionValue(option: MethodOption, text: string): unknown {
  const number = (t: string) => {
    const n = Number(t);
    if (t.trim() === '' || !Number.isFinite(n)) throw new Error(`--${option.flag}: "${t}" is not a number`);
    return n;
  };
  switch (option.kind) {
    case 'int':
    case 'number':
    case 'fraction':
      return number(text);
    case 'boolean':
      if (text === 'true' || text === 'on') return true;
      if (text === 'false' || text === 'off') return false;
      throw new Error(`--${option.flag}: "${text}" is not true/false`);
    case 'intList':
      return text.split(',').map((t) => number(t));
    case 'stringList':
      return text.split(',').map((t) => t.trim()).filter(Boolean);
    default:
      return text;
  }
}
