import { readSafetensors } from '@vqt/core';
import { generateMiniSuite } from '@vqt/vtab-datasets';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, CORE_FIXTURES, errorLines, vqt } from './helpers.js';

// A small VTAB-style folder (the mini suite's dsprites_loc at reduced counts) and the tiny
// reference checkpoint: these tests check the commands work end to end, not accuracy.
const root = mkdtempSync(join(tmpdir(), 'vqt-train-'));
const task = join(root, 'suite', 'dsprites_loc');
const checkpoint = join(CORE_FIXTURES, 'tiny_f32', 'model.safetensors');
const common = ['--checkpoint', checkpoint, '--heads', '3', '--data', task, '--batch', '16', '--progress', 'lines'];

beforeAll(async () => {
  await generateMiniSuite(join(root, 'suite'), { tasks: ['dsprites_loc'], counts: { train800: 96, val200: 32, test: 64 }, seed: 3 });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const tensorsOf = (dir: string) => {
  const { tensors } = readSafetensors(join(dir, 'adapter_model.safetensors'));
  return Object.fromEntries([...tensors].map(([k, t]) => [k, t.shape]));
};
const evalTop1 = (adapter: string) => {
  const run = vqt(['eval', '--checkpoint', checkpoint, '--adapter', adapter, '--data', task, '--split', 'test']);
  expect(run.status, run.stderr).toBe(0);
  expect(run.stdout).toMatch(/^test top-1: \d+\.\d\d% \(\d+\/64\)/);
  const result = JSON.parse(readFileSync(join(adapter, 'eval_test.json'), 'utf8'));
  expect(result.count).toBe(64);
  return result.top1 as number;
};

describe('vqt train / eval', () => {
  it('vqt: trains from the cache, prints trainable parameters first, saves an adapter-only checkpoint, evaluates', () => {
    const out = join(root, 'vqt');
    const run = vqt(['train', '--method', 'vqt', ...common, '--queries', '2', '--epochs', '3', '--warmup', '1', '--out', out]);
    expect(run.status, run.stderr).toBe(0);
    const lines = run.stderr.split('\n');
    const paramsLine = lines.findIndex((l) => l.startsWith('trainable params: '));
    expect(paramsLine).toBeGreaterThan(0);
    expect(paramsLine).toBeLessThan(lines.findIndex((l) => l.startsWith('epoch 1/3')));
    // 3 blocks x 2 queries x 48 + head (48 x (1 + 3 x 2) features x 16 classes + 16)
    expect(lines[paramsLine]).toContain(`trainable params: ${(3 * 2 * 48 + 48 * 7 * 16 + 16).toLocaleString('en-US')}`);
    expect(tensorsOf(out)).toEqual({ 'vqt.queries': [3, 2, 48], 'head.weight': [16, 336], 'head.bias': [16] });
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ method: 'vqt', numClasses: 16, options: { queries: 2, featureNorm: 'l2' } });
    const top1 = evalTop1(out);
    expect(top1).toBeGreaterThanOrEqual(0);
    const features = join(root, 'head.npy');
    const embed = vqt(['embed', '--checkpoint', checkpoint, '--adapter', out, '--input', join(CORE_FIXTURES, 'tiny_f32', 'input.npy'), '--out', features, '--features', 'head']);
    expect(embed.status, embed.stderr).toBe(0);
    expect(embed.stderr).toContain(`wrote ${features} [2, 336]`);
  });

  it('head2toe, vqt + group-lasso selection, and a linear probe train and evaluate', () => {
    const runs = {
      head2toe: ['--method', 'head2toe', '--target-size', '96', '--keep', '0.2'],
      select: ['--method', 'vqt', '--select', '0.7', '--epochs', '2', '--warmup', '0'],
      linear: ['--method', 'linear', '--epochs', '2', '--warmup', '0'],
    };
    for (const [name, args] of Object.entries(runs)) {
      const out = join(root, name);
      const run = vqt(['train', ...args, ...common, '--out', out]);
      expect(run.status, `${name}: ${run.stderr}`).toBe(0);
      evalTop1(out);
    }
    const h2t = JSON.parse(readFileSync(join(root, 'head2toe', 'adapter_config.json'), 'utf8'));
    // Official taps and pooling by default: F = 1776 on the tiny ViT at S 96.
    expect(h2t.options.pooling).toBe('official');
    expect(h2t.options.keptIndices).toHaveLength(Math.round(0.2 * 1776));
    expect(tensorsOf(join(root, 'head2toe'))['head.weight']).toEqual([16, Math.round(0.2 * 1776)]);
    const selected = JSON.parse(readFileSync(join(root, 'select', 'adapter_config.json'), 'utf8'));
    expect(selected.options.keptIndices).toHaveLength(Math.round(0.7 * 192));
    expect(tensorsOf(join(root, 'linear'))).toEqual({ 'head.weight': [16, 48], 'head.bias': [16] });
  });

  it('--resume continues a killed run to the same adapter as an unbroken run', async () => {
    const args = ['train', '--method', 'vqt', ...common, '--epochs', '30', '--warmup', '2', '--seed', '5'];
    const unbroken = join(root, 'unbroken');
    expect(vqt([...args, '--out', unbroken]).status).toBe(0);

    const killed = join(root, 'killed');
    const child = spawn(process.execPath, [CLI, ...args, '--out', killed], { env: { ...process.env, VQT_BACKEND: 'wasm', VQT_THREADS: '1' }, stdio: 'ignore' });
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => {
      const poll = setInterval(() => {
        if (existsSync(join(killed, 'trainer_state.safetensors'))) {
          clearInterval(poll);
          child.kill('SIGKILL');
        }
      }, 5);
      child.on('exit', (_code, sig) => {
        clearInterval(poll);
        resolve(sig);
      });
    });
    expect(signal).toBe('SIGKILL');
    expect(existsSync(join(killed, 'adapter_model.safetensors'))).toBe(false);
    const resumed = vqt([...args, '--out', killed, '--resume']);
    expect(resumed.status, resumed.stderr).toBe(0);
    const after = Number(resumed.stderr.match(/resuming from .* after epoch (\d+)/)?.[1]);
    expect(after).toBeGreaterThan(0);
    expect(after).toBeLessThan(30);
    expect(readFileSync(join(killed, 'adapter_model.safetensors')).equals(readFileSync(join(unbroken, 'adapter_model.safetensors')))).toBe(true);
  });

  it('refuses an adapter trained on another backbone, and bad list lines, with one line', () => {
    const other = join(CORE_FIXTURES, 'tiny_f16', 'model.safetensors');
    const run = vqt(['eval', '--checkpoint', other, '--adapter', join(root, 'vqt'), '--data', task]);
    expect(run.status).not.toBe(0);
    expect(errorLines(run)).toHaveLength(1);
    expect(errorLines(run)[0]).toMatch(/adapter_config\.json: trained on backbone model\.safetensors \(sha256 .*\), but .* has sha256/);

    const broken = join(root, 'broken');
    const brokenTask = join(root, 'broken-suite', 'dsprites_loc');
    rmSync(brokenTask, { recursive: true, force: true });
    // A copy of the task whose train list has one malformed line.
    const list = readFileSync(join(task, 'train800val200.txt'), 'utf8').split('\n');
    list[4] = 'images/train800/0004.png seven';
    cpSync(task, brokenTask, { recursive: true });
    writeFileSync(join(brokenTask, 'train800val200.txt'), list.join('\n'));
    const bad = vqt(['train', '--method', 'linear', ...common.slice(0, 4), '--data', brokenTask, '--out', broken, '--epochs', '1']);
    expect(bad.status).not.toBe(0);
    expect(errorLines(bad)).toHaveLength(1);
    expect(errorLines(bad)[0]).toMatch(/train800val200\.txt:5: /);
  });
});
