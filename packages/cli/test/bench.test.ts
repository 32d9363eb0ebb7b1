import { generateMiniSuite } from '@vqt/vtab-datasets';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORE_FIXTURES, vqt, vqtAsync } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'vqt-bench-cli-'));
const suite = join(root, 'suite');
const checkpoint = join(CORE_FIXTURES, 'tiny_f32', 'model.safetensors');
const tiny = ['--vtab', suite, '--checkpoint', checkpoint, '--heads', '3', '--epochs', '1', '--lr-grid', '0.01', '--wd-grid', '0', '--batch', '8'];

beforeAll(async () => {
  await generateMiniSuite(suite, { tasks: ['blob_patch', 'dsprites_loc'], counts: { train800: 16, val200: 8, test: 16 }, seed: 1, workers: 0 });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('vqt bench', () => {
  it('runs on a pool of two workers, skips unregistered methods with a note, and writes the folder', async () => {
    const out = join(root, 'run');
    const run = await vqtAsync(['bench', ...tiny, '--methods', 'linear,vqt,ssf,ssf+vqt', '--queries', '2', '--sweep-tasks', 'blob_patch', '--workers', '2', '--check', '--out', out]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/skipping method ssf: not registered/);
    expect(run.stderr).toMatch(/\[5\/5\] /);
    expect(readdirSync(join(out, 'cells')).sort()).toEqual([
      'blob_patch--linear--s0.json', 'blob_patch--vqt--s0.json', 'blob_patch--vqt-T2--s0.json', 'dsprites_loc--linear--s0.json', 'dsprites_loc--vqt--s0.json',
    ]);
    for (const file of ['results.json', 'table.md', 'memory.md', 'check.md', 'summary.md', 'accuracy-vs-memory.png', 'accuracy-vs-queries.svg']) expect(existsSync(join(out, file)), file).toBe(true);
    expect(run.stdout).toMatch(/VQT trains in less memory than vpt: skipped — vpt: not among this run's methods/);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(new Set(results.cells.map((c: { worker: { pid: number } }) => c.worker.pid)).size).toBeGreaterThanOrEqual(1);
    expect(results.skipped.map((s: { method: string }) => s.method)).toEqual(['ssf', 'ssf+vqt']);

    // Rerun: every cell is reused, nothing recomputed.
    const again = await vqtAsync(['bench', ...tiny, '--methods', 'linear,vqt,ssf,ssf+vqt', '--queries', '2', '--sweep-tasks', 'blob_patch', '--out', out]);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/5 already in .*, 0 to run/);
  });

  it('refuses bad input with one line', () => {
    expect(vqt(['bench', ...tiny, '--tasks', 'nope']).stderr).toMatch(/^vqt: --tasks: no folder .*nope/m);
    expect(vqt(['bench', '--methods', 'vqt[nope=1]']).stderr).toMatch(/^vqt: --methods: method "vqt" has no option "nope"/m);
    expect(vqt(['bench', '--workers', '2', '--queue', 'redis://localhost:1']).stderr).toMatch(/^vqt: --queue and --workers/m);
    expect(vqt(['worker']).stderr).toMatch(/^vqt: vqt worker needs --queue/m);
  });
});
