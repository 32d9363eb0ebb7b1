import { generateMiniSuite } from '@vqt/vtab-datasets';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchSettings } from '../src/plan.js';

export const FIXTURE = fileURLToPath(new URL('./fixtures/bench-process.mjs', import.meta.url));

/** Two mini-suite tasks at a few images per split: cells of a linear probe take about a second. */
export async function tinyTasks(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'vqt-bench-tasks-'));
  await generateMiniSuite(dir, { tasks: ['blob_patch', 'dsprites_loc'], counts: { train800: 16, val200: 8, test: 16 }, workers: 0 });
  return dir;
}

export function tinySettings(dir: string): BenchSettings {
  return {
    data: { kind: 'folders', dir },
    checkpoint: 'embedded',
    epochs: 1,
    warmupEpochs: 0,
    batchSize: 8,
    optimizer: 'adam',
    grid: { lr: [0.01], weightDecay: [1e-4] },
    normalization: 'imagenet',
    cacheBudgetMiB: 64,
  };
}
