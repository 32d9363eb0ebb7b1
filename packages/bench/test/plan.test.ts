import { registerMethod, type MethodSpec } from '@vqt/core';
import { describe, expect, it } from 'vitest';
import { cellKey, parseMethodRequest, planBench, settingsKey, splitMethodList } from '../src/plan.js';
import { tinySettings } from './helpers.js';

// Planning only reads specs; these two never fit.
const never = () => {
  throw new Error('not fitted in planning tests');
};
registerMethod({
  name: 'plan-adapt', description: 'adapting test method', prefix: 'plan-adapt.', role: 'adapt',
  defaults: { lastBlocks: undefined }, options: [{ key: 'lastBlocks', flag: 'last-blocks', kind: 'int', min: 1, optional: true, description: 'k' }],
  fit: never, open: never,
} as unknown as MethodSpec<object>);
registerMethod({
  name: 'plan-read', description: 'reading test method', prefix: 'plan-read.', role: 'read', stackable: true,
  defaults: { queries: 1 }, options: [{ key: 'queries', flag: 'queries', kind: 'int', min: 1, description: 'T' }],
  fit: never, open: never,
} as unknown as MethodSpec<object>);

describe('planBench', () => {
  it('plans table rows, sweeps and stacks from the registry and skips what is not registered', () => {
    const plan = planBench({ methods: ['linear', 'plan-read', 'plan-adapt', 'plan-adapt+plan-read', 'vpt', 'vpt+plan-read'], tasks: ['a', 'b'], seeds: 2, lastBlocks: [1, 2], queries: [1, 4], sweepTasks: ['a'] });
    expect(plan.skipped.map((s) => s.method)).toEqual(['vpt', 'vpt+plan-read']);
    expect(plan.skipped[0].reason).toMatch(/not registered/);
    expect(plan.variants.map((v) => v.label)).toEqual(['linear', 'plan-read', 'plan-read T=4', 'plan-adapt', 'plan-adapt last 1', 'plan-adapt last 2', 'plan-adapt+plan-read']);
    // 4 table rows x 2 tasks x 2 seeds + 3 sweep variants x 1 task x 2 seeds.
    expect(plan.cells.length).toBe(4 * 2 * 2 + 3 * 2);
    expect(new Set(plan.cells.map((c) => c.id)).size).toBe(plan.cells.length);
    expect(plan.cells.map((c) => c.id)).toContain('a--plan-adapt_plus_plan-read--s1');
    expect(plan.cells.map((c) => c.id)).toContain('a--plan-read-T4--s0');
  });

  it('parses method variants with options and refuses unknown options', () => {
    expect(splitMethodList('linear,plan-read[queries=2],plan-adapt+plan-read')).toEqual(['linear', 'plan-read[queries=2]', 'plan-adapt+plan-read']);
    expect(parseMethodRequest('plan-read[queries=2]')).toEqual({ method: 'plan-read', label: 'plan-read[queries=2]', options: { queries: 2 } });
    expect(() => parseMethodRequest('plan-read[nope=2]')).toThrow(/no option "nope"/);
    expect(() => planBench({ methods: [{ method: 'plan-read', label: 'x', options: { queries: 0 } }], tasks: ['a'], seeds: 1 })).toThrow(/queries must be >= 1/);
  });

  it('keys results by settings and options, not by the cache budget', () => {
    const settings = tinySettings('/data');
    const [cell] = planBench({ methods: ['linear'], tasks: ['a'], seeds: 1 }).cells;
    expect(settingsKey({ ...settings, cacheBudgetMiB: 1 })).toBe(settingsKey(settings));
    expect(settingsKey({ ...settings, epochs: 2 })).not.toBe(settingsKey(settings));
    expect(cellKey(settings, { ...cell, variant: { ...cell.variant, options: { featureNorm: 'l2' } } })).not.toBe(cellKey(settings, cell));
  });
});
