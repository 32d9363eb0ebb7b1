import { describe, expect, it } from 'vitest';
import type { CellResult } from '../src/cell.js';
import type { BenchPlan, BenchVariant } from '../src/plan.js';
import { accuracyTable, checkResults, memoryTable, summarizeVariants } from '../src/report.js';
import { replaceReadmeSection } from '../src/suite.js';
import { tinySettings } from './helpers.js';

const variant = (label: string): BenchVariant => ({ method: label, label, options: {}, purpose: 'table' });
const cell = (label: string, task: string, seed: number, top1: number, step: number | null): CellResult => ({
  id: `${task}--${label}--s${seed}`, key: 'k', task, seed, method: label, label, purpose: 'table', options: {}, grid: [], best: { lr: 0.1, weightDecay: 0 },
  testTop1: top1, trainableParameters: 10, peakStepBytes: step, peakStepTotalBytes: step, fits: 2, seconds: 3,
  worker: { host: 'h', pid: 1, backend: 'wasm', threads: 1 }, finishedAt: '',
});

describe('report', () => {
  const tasks = ['mnist', 'lesion_grade', 'dsprites_loc'];
  const labels = ['linear', 'vqt', 'vpt'];
  const plan: BenchPlan = {
    variants: labels.map(variant),
    cells: labels.flatMap((l) => tasks.flatMap((t) => [0, 1].map((seed) => ({ id: `${t}--${l}--s${seed}`, task: t, seed, variant: variant(l) })))),
    skipped: [],
  };
  const results = [
    ...tasks.flatMap((t, i) => [cell('linear', t, 0, 0.4 + i / 10, 1000), cell('linear', t, 1, 0.5 + i / 10, 1000)]),
    ...tasks.flatMap((t) => [cell('vqt', t, 0, 0.6, 2 ** 20), cell('vqt', t, 1, 0.6, 2 ** 20)]),
    // vpt misses a task: its means are left blank, not computed over fewer tasks.
    cell('vpt', 'mnist', 0, 0.7, 2 ** 22),
  ];

  it('summarises seeds, groups and the mean, in the shape of Table 1', () => {
    const variants = summarizeVariants(plan, results, tasks);
    const linear = variants[0];
    expect(linear.tasks.mnist.mean).toBeCloseTo(0.45);
    expect(linear.tasks.mnist.std).toBeCloseTo(Math.SQRT1_2 / 10);
    expect(linear.groups).toEqual({ natural: expect.closeTo(0.45), specialized: expect.closeTo(0.55), structured: expect.closeTo(0.65) });
    expect(linear.mean).toBeCloseTo(0.55);
    expect(variants[2].mean).toBeUndefined();
    const table = accuracyTable({ variants, tasks: tasks.map((name, i) => ({ name, group: (['natural', 'specialized', 'structured'] as const)[i] })), seeds: 2 });
    expect(table.split('\n')[0]).toBe('| Method | mnist (Natu.) | lesion_grade (Spec.) | dsprites_loc (Stru.) | Natural mean | Specialized mean | Structured mean | Mean |');
    expect(table).toContain('| linear | 45.0 ± 7.1 | 55.0 ± 7.1 | 65.0 ± 7.1 | 45.0 | 55.0 | 65.0 | **55.0** |');
    expect(table).toContain('| vpt | 70.0 ± 0.0 | — | — | 70.0 | — | — | **—** |');
    expect(memoryTable({ variants, settings: tinySettings('/x') })).toContain('| vqt | 10 | 1.00 | 1.00x |');
  });

  it('fails the memory check only when VQT is not below an adapting method, and reports accuracy orderings', () => {
    const variants = summarizeVariants(plan, results, tasks);
    const check = checkResults(variants, tasks, labels);
    expect(check.failed).toBe(false);
    expect(check.memory.map((l) => l.outcome)).toEqual(['holds', 'skipped', 'skipped']);
    expect(check.accuracy[0]).toMatchObject({ claim: 'VQT above the linear probe', outcome: 'holds' });
    const heavy = summarizeVariants(plan, [...results.filter((r) => r.label !== 'vpt'), cell('vpt', 'mnist', 0, 0.7, 1000)], tasks);
    const failed = checkResults(heavy, tasks, labels);
    expect(failed.failed).toBe(true);
    expect(failed.memory[0].detail).toMatch(/vqt 1.00 MiB vs vpt 0.00 MiB/);
  });

  it('writes between the README markers and refuses a README without them', () => {
    const readme = 'a\n<!-- bench:results:start -->\nold\n<!-- bench:results:end -->\nb\n';
    expect(replaceReadmeSection(readme, 'new')).toBe('a\n<!-- bench:results:start -->\nnew\n<!-- bench:results:end -->\nb\n');
    expect(() => replaceReadmeSection('no markers', 'x', 'README.md')).toThrow(/README.md: no .* markers/);
  });
});
