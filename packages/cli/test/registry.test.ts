import { readSafetensors } from '@vqt/core';
import { generateMiniSuite } from '@vqt/vtab-datasets';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORE_FIXTURES, errorLines, vqt, vqtAsync } from './helpers.js';

// The CLI knows methods only through core's registry: flags, help, and the adapters it opens.
const root = mkdtempSync(join(tmpdir(), 'vqt-registry-'));
const task = join(root, 'suite', 'dsprites_loc');
const checkpoint = join(CORE_FIXTURES, 'tiny_f32', 'model.safetensors');
const common = ['--checkpoint', checkpoint, '--heads', '3', '--data', task, '--batch', '16', '--progress', 'none'];

beforeAll(async () => {
  await generateMiniSuite(join(root, 'suite'), { tasks: ['dsprites_loc'], counts: { train800: 48, val200: 16, test: 32 }, seed: 5 });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('methods from the registry', () => {
  it('train --help lists every method and its own options', () => {
    const run = vqt(['train', '--help']);
    expect(run.status).toBe(0);
    for (const line of [/--queries <value>\s+query tokens per block \(T\) \[vqt\]/, /--target-size <value>\s+pooled size per tap \[head2toe\]/, /^\s+linear\s+linear probe/m, /^\s+vqt\s+Visual Query Tuning/m]) {
      expect(run.stdout).toMatch(line);
    }
  });

  it('an option the chosen method does not take is an error, not ignored', () => {
    const run = vqt(['train', '--method', 'head2toe', ...common, '--queries', '4', '--out', join(root, 'never')]);
    expect(run.status).not.toBe(0);
    expect(errorLines(run)).toEqual(['vqt: --queries is not an option of --method head2toe (it belongs to vqt)']);
    const bad = vqt(['train', '--method', 'vqt', ...common, '--queries', '0', '--out', join(root, 'never')]);
    expect(bad.status).not.toBe(0);
    expect(errorLines(bad)).toEqual(['vqt: command line: vqt.queries must be >= 1 (got 0)']);
  });

  it('predict: top-k labels with probabilities for files, a directory and a glob, as a table and as JSON', () => {
    const out = join(root, 'adapter');
    const train = vqt(['train', '--method', 'linear', ...common, '--epochs', '2', '--warmup', '0', '--out', out]);
    expect(train.status, train.stderr).toBe(0);
    const images = join(root, 'predict-me');
    mkdirSync(images);
    const testImages = readdirSync(join(task, 'images', 'test')).slice(0, 3);
    expect(testImages.length).toBe(3);
    for (const f of testImages) copyFileSync(join(task, 'images', 'test', f), join(images, f));
    const files = testImages.map((f) => join(images, f));

    const table = vqt(['predict', '--checkpoint', checkpoint, '--adapter', out, '--top', '2', files[0], files[1]]);
    expect(table.status, table.stderr).toBe(0);
    const rows = table.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^image\s+rank\s+label\s+probability$/);
    expect(rows.length).toBe(1 + 2 * 2);
    expect(rows[1]).toMatch(new RegExp(`^${files[0]}\\s+1\\s+\\S+\\s+\\d+\\.\\d\\d%$`));

    const json = vqt(['predict', '--checkpoint', checkpoint, '--adapter', out, '--json', '--top', '3', images]);
    expect(json.status, json.stderr).toBe(0);
    const results = JSON.parse(json.stdout) as { file: string; top: { index: number; label: string; probability: number }[] }[];
    expect(results.map((r) => r.file)).toEqual([...files].sort());
    for (const r of results) {
      expect(r.top.length).toBe(3);
      expect(r.top[0].probability).toBeGreaterThanOrEqual(r.top[1].probability);
      expect(r.top.reduce((s, t) => s + t.probability, 0)).toBeLessThanOrEqual(1 + 1e-6);
    }
    const glob = vqt(['predict', '--checkpoint', checkpoint, '--adapter', out, '--json', join(images, '*.png')]);
    expect(glob.status, glob.stderr).toBe(0);
    expect((JSON.parse(glob.stdout) as unknown[]).length).toBe(3);

    const notImage = join(root, 'notes.png');
    writeFileSync(notImage, 'hello');
    const bad = vqt(['predict', '--checkpoint', checkpoint, '--adapter', out, notImage]);
    expect(bad.status).not.toBe(0);
    expect(errorLines(bad)).toHaveLength(1);
    expect(errorLines(bad)[0]).toContain(`${notImage}: cannot decode image`);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(config.training.normalization).toBe('imagenet');
  });
});

describe('every method and stack from the command line', () => {
  const methods: [string, string[]][] = [
    ['vpt', ['--prompts', '2']],
    ['vpt-shallow', ['--prompts', '2']],
    ['adaptformer', ['--bottleneck', '8']],
    ['lora', ['--rank', '2', '--targets', 'q,v,fc1']],
    ['vpt+vqt', ['--prompts', '2', '--queries', '1']],
    ['adaptformer+vqt', ['--bottleneck', '8']],
    ['lora+vqt', ['--rank', '2']],
  ];
  it.each(methods)('%s trains, saves, reopens and predicts', async (method, flags) => {
    const out = join(root, `m-${method}`);
    const train = await vqtAsync(['train', '--method', method, ...common, ...flags, '--epochs', '1', '--warmup', '0', '--out', out, '--eval-split', 'test']);
    expect(train.status, train.stderr).toBe(0);
    expect(train.stderr).toMatch(/test top-1: \d+\.\d\d% \(\d+\/32\)/);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(config.method).toBe(method);
    if (method.includes('+')) expect(Object.keys(config.options)).toEqual(method.split('+'));
    const image = join(task, 'images', 'test', '0000.png');
    const predicted = await vqtAsync(['predict', '--checkpoint', checkpoint, '--adapter', out, '--json', '--top', '1', image]);
    expect(predicted.status, predicted.stderr).toBe(0);
    expect(JSON.parse(predicted.stdout)[0].top[0].probability).toBeGreaterThan(0);
  });

  it('eval and embed open stacks and adapting methods: cls is the adapted CLS, head the head input', async () => {
    const input = join(CORE_FIXTURES, 'tiny_f32', 'input.npy');
    const evaluated = await vqtAsync(['eval', '--checkpoint', checkpoint, '--adapter', join(root, 'm-lora+vqt'), '--data', task]);
    expect(evaluated.status, evaluated.stderr).toBe(0);
    expect(evaluated.stdout).toMatch(/^test top-1: /);
    const embed = async (adapter: string, features: string) => {
      const out = join(root, `${features}-${adapter}.npy`);
      const run = await vqtAsync(['embed', '--checkpoint', checkpoint, '--adapter', join(root, adapter), '--input', input, '--out', out, '--features', features]);
      expect(run.status, run.stderr).toBe(0);
      return readFileSync(out);
    };
    const plain = join(root, 'plain-cls.npy');
    expect((await vqtAsync(['embed', '--checkpoint', checkpoint, '--heads', '3', '--input', input, '--out', plain])).status).toBe(0);
    // VPT's prompts change the CLS; the head of a stack reads [CLS, Z'_1..Z'_M]: D (1 + depth) features.
    expect((await embed('m-vpt', 'cls')).equals(readFileSync(plain))).toBe(false);
    expect((await embed('m-lora+vqt', 'head')).length).toBeGreaterThan((await embed('m-lora', 'head')).length);
  });

  it('--base reuses a trained base adapter, --joint trains both parts together; both are refused off a stack', async () => {
    const reused = join(root, 'reused-vpt+vqt');
    const withBase = await vqtAsync(['train', '--method', 'vpt+vqt', ...common, '--prompts', '2', '--epochs', '1', '--warmup', '0', '--base', join(root, 'm-vpt'), '--out', reused]);
    expect(withBase.status, withBase.stderr).toBe(0);
    expect(withBase.stderr).toContain(`stack base: vpt adapter from ${join(root, 'm-vpt')} (not retrained)`);
    const prompts = (dir: string) => readSafetensors(join(dir, 'adapter_model.safetensors')).tensors.get('vpt.prompts')!.data;
    expect(Array.from(prompts(reused))).toEqual(Array.from(prompts(join(root, 'm-vpt'))));
    const joint = await vqtAsync(['train', '--method', 'lora+vqt', ...common, '--rank', '2', '--epochs', '1', '--warmup', '0', '--joint', '--out', join(root, 'joint')]);
    expect(joint.status, joint.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(root, 'joint', 'adapter_config.json'), 'utf8')).training.stacking).toBe('joint');
    const notStack = await vqtAsync(['train', '--method', 'vqt', ...common, '--joint', '--out', join(root, 'never')]);
    expect(errorLines(notStack)).toEqual(['vqt: --joint trains the two methods of a stack together; --method vqt is not a stack']);
  });
});
