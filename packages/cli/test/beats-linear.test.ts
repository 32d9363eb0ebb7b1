import { embeddedBackbone, generateMiniSuite } from '@vqt/vtab-datasets';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vqtAsync } from './helpers.js';

// Why this comparison means something:
// - The backbone is the embedded ViT, pretrained to classify Fashion-MNIST garments, which are all
//   centred: where an object sits never helped that task, so nothing asks the final CLS token (all
//   a linear probe sees) to keep it. dsprites_loc asks exactly that: the label is the x position
//   bin of one sprite.
// - VQT's queries read every block's tokens, and the early blocks still carry the position
//   embeddings added at the input. That is the paper's argument for VQT (intermediate features
//   matter), tested on a task where it applies, with the same frozen backbone, data and budget.
// - The suite is generated from a fixed seed and has the full 1000-image test split, so one
//   accuracy's standard error is at most 1.6 points; the required margin is 5 points (> 3 SE), and
//   the training runs are seeded, so the result is deterministic, not a lucky draw.
const root = mkdtempSync(join(tmpdir(), 'vqt-beats-linear-'));
const task = join(root, 'suite', 'dsprites_loc');
const checkpoint = embeddedBackbone().file;

beforeAll(async () => {
  await generateMiniSuite(join(root, 'suite'), { tasks: ['dsprites_loc'], seed: 0 });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function trainThenEval(method: string, extra: string[]): Promise<number> {
  const out = join(root, method);
  const train = await vqtAsync(['train', '--method', method, '--checkpoint', checkpoint, '--data', task, '--batch', '32', '--warmup', '1', '--seed', '1', '--progress', 'none', '--out', out, ...extra], { VQT_THREADS: '2' });
  expect(train.status, train.stderr).toBe(0);
  const evaluated = await vqtAsync(['eval', '--checkpoint', checkpoint, '--adapter', out, '--data', task, '--split', 'test'], { VQT_THREADS: '2' });
  expect(evaluated.status, evaluated.stderr).toBe(0);
  const result = JSON.parse(readFileSync(join(out, 'eval_test.json'), 'utf8'));
  expect(result.count).toBe(1000);
  return result.top1 as number;
}

describe('VQT against a linear probe on the same frozen backbone', () => {
  it('dsprites_loc: VQT beats the linear probe by at least 5 points on 1000 test images', async () => {
    const linear = await trainThenEval('linear', ['--epochs', '10', '--lr', '0.01']);
    const queries = await trainThenEval('vqt', ['--epochs', '10', '--lr', '0.01', '--queries', '1']);
    console.log(`dsprites_loc test top-1: VQT ${(100 * queries).toFixed(1)}%, linear probe ${(100 * linear).toFixed(1)}%`);
    expect(queries).toBeGreaterThan(linear + 0.05);
  });
});

describe('vqt demo (the README quick start)', () => {
  it('prints the backend, accuracy, trainable parameters and step memory for VQT and a linear probe', async () => {
    const run = await vqtAsync(['demo', '--epochs', '1'], { VQT_THREADS: '2', VQT_CACHE_DIR: join(root, 'cache') });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/^backend: wasm/m);
    expect(run.stdout).toMatch(/VQT demo on dsprites_loc \(wasm, \d threads?\)/);
    expect(run.stdout).toMatch(/^vqt +\d+\.\d\d% +7,568 +\d+\.\d MiB$/m);
    expect(run.stdout).toMatch(/^linear +\d+\.\d\d% +1,040 +\d+\.\d MiB$/m);
    expect(run.stdout).toContain('VQT: trainable params: 7,568 || all params: 324,176 || trainable%: 2.3345');
    expect(run.stdout).toMatch(/peak process memory \(max RSS\): \d+ MiB/);
  });
});

