import { describe, expect, it } from 'vitest';
import { frozenHook, getMethod, parseOptionValue, registerMethod, resolveAdaptedBlocks, resolveMethodConfig, type Hook, type HookContext, type MethodSpec } from '../src/index.js';

const spec = (name: string, flagKind: 'int' | 'number' = 'int'): MethodSpec<{ size: number; names?: string[] }> => ({
  name,
  description: 'test',
  prefix: `${name}.`,
  role: 'adapt',
  defaults: { size: 4, names: undefined },
  options: [
    { key: 'size', flag: 'shared-size', kind: flagKind, min: 1, description: 'size' },
    { key: 'names', flag: `${name}-names`, kind: 'stringList', choices: ['a', 'b'], optional: true, description: 'names' },
  ],
  fit: () => Promise.reject(new Error('not in this test')),
  open: () => {
    throw new Error('not in this test');
  },
});

describe('method registry', () => {
  it('keeps one spec per name; the same method registered again (ESM and CJS builds) serves from its latest registration', () => {
    const a = registerMethod(spec('reg-a'));
    expect(getMethod('reg-a')).toBe(a);
    const again = registerMethod(spec('reg-a'));
    expect(getMethod('reg-a')).toBe(again);
    expect(() => registerMethod({ ...spec('reg-a'), prefix: 'other.' })).toThrow(/already registered by another spec/);
    expect(() => getMethod('nosuch')).toThrow(/unknown method "nosuch"; registered: .*reg-a/);
  });

  it('a shared flag must mean the same thing for every method that takes it', () => {
    registerMethod(spec('reg-b'));
    expect(() => registerMethod(spec('reg-c', 'number'))).toThrow(/--shared-size means different things for methods "reg-c" and "reg-/);
  });

  it('refuses specs whose options and defaults disagree, and prefixes that are not "name."', () => {
    expect(() => registerMethod({ ...spec('reg-d'), defaults: { size: 1, names: undefined, extra: 2 } as never })).toThrow(/default "extra" has no option/);
    expect(() => registerMethod({ ...spec('reg-e'), prefix: 'Bad' })).toThrow(/prefix "Bad"/);
  });

  it('resolves configs strictly and parses command-line values by kind', () => {
    const s = spec('reg-f');
    expect(resolveMethodConfig(s, {})).toEqual({ size: 4, names: undefined });
    expect(() => resolveMethodConfig(s, { sizes: 2 }, 'a.json')).toThrow('a.json: method "reg-f" has no option "sizes" (options: size, names)');
    expect(() => resolveMethodConfig(s, { size: 0 })).toThrow('reg-f: reg-f.size must be >= 1 (got 0)');
    expect(() => resolveMethodConfig(s, { names: ['a', 'z'] })).toThrow(/a list of a, b/);
    expect(parseOptionValue(s.options[1], 'a, b')).toEqual(['a', 'b']);
    expect(() => parseOptionValue(s.options[0], 'x')).toThrow('--shared-size: "x" is not a number');
  });

  it('selects adapted blocks by subset or by the last k, refusing what does not fit the backbone', () => {
    expect(resolveAdaptedBlocks({}, 4, 'm')).toEqual([0, 1, 2, 3]);
    expect(resolveAdaptedBlocks({ lastBlocks: 2 }, 4, 'm')).toEqual([2, 3]);
    expect(resolveAdaptedBlocks({ blocks: [3, 1] }, 4, 'm')).toEqual([1, 3]);
    expect(() => resolveAdaptedBlocks({ blocks: [1], lastBlocks: 1 }, 4, 'm')).toThrow(/not both/);
    expect(() => resolveAdaptedBlocks({ lastBlocks: 5 }, 4, 'm')).toThrow(/only 4 blocks/);
    expect(() => resolveAdaptedBlocks({ blocks: [4] }, 4, 'm')).toThrow(/0..3/);
  });

  it('a frozen hook has no variables and runs in inference mode', () => {
    const seen: boolean[] = [];
    const hook: Hook = { name: 'h', trainableVariables: () => [{} as never], mlpParallel: (_x, ctx) => (seen.push(ctx.training), undefined) };
    const frozen = frozenHook(hook);
    expect(frozen.trainableVariables()).toEqual([]);
    expect(frozen.name).toBe('h');
    frozen.mlpParallel!({} as never, { training: true } as HookContext);
    hook.mlpParallel!({} as never, { training: true } as HookContext);
    expect(seen).toEqual([false, true]);
  });
});
