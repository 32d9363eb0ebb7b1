import { readdir, readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeImage,
  defaultSuiteDir,
  ensureMiniSuite,
  generateMiniSuite,
  getMiniTask,
  MINI_SUITE_TASK_NAMES,
  openSplit,
  runCli,
  UnknownTaskError,
} from '../src/index.js';
import { PNG } from 'pngjs';
import { hashTree, makeTempDir, removeDir } from './helpers.js';

const SMALL = { train800: 24, val200: 8, test: 16 };

let root: string;
beforeAll(async () => {
  root = await makeTempDir('vtab-suite-');
});
afterAll(() => removeDir(root));

function parseList(text: string): { path: string; label: number }[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [path, label] = line.split(' ');
      return { path, label: Number(label) };
    });
}

describe('mini suite generation', () => {
  it.each(MINI_SUITE_TASK_NAMES)('generates %s in the VTAB-1k layout', async (task) => {
    const out = join(root, 'each');
    const [report] = await generateMiniSuite(out, { tasks: [task], counts: SMALL, seed: 1 });
    const dir = join(out, task);
    expect(report.dir).toBe(dir);
    const spec = getMiniTask(task);
    const lists = Object.fromEntries(
      await Promise.all(
        ['train800', 'val200', 'train800val200', 'test'].map(async (s) => [s, parseList(await readFile(join(dir, `${s}.txt`), 'utf8'))] as const),
      ),
    );
    expect(lists.train800).toHaveLength(SMALL.train800);
    expect(lists.val200).toHaveLength(SMALL.val200);
    expect(lists.test).toHaveLength(SMALL.test);
    expect(lists.train800val200).toEqual([...lists.train800, ...lists.val200]);
    const allPaths = [...lists.train800, ...lists.val200, ...lists.test].map((e) => e.path);
    expect(new Set(allPaths).size).toBe(allPaths.length);
    for (const entry of [...lists.train800, ...lists.test]) {
      expect(Number.isInteger(entry.label) && entry.label >= 0 && entry.label < spec.numClasses).toBe(true);
    }
    if (spec.source === 'procedural') {
      // balanced labels: every class in train800 whenever the count allows
      expect(new Set(lists.train800.map((e) => e.label)).size).toBe(Math.min(spec.numClasses, SMALL.train800));
    }
    // stored size and channels: grayscale PNG for mnist, RGB PNG for procedural tasks
    const bytes = await readFile(join(dir, lists.test[0].path));
    const png = PNG.sync.read(bytes);
    expect([png.width, png.height]).toEqual([spec.storedSize, spec.storedSize]);
    expect(png.colorType).toBe(spec.storedChannels === 1 ? 0 : 2);
    const info = JSON.parse(await readFile(join(dir, 'info.json'), 'utf8'));
    expect(info).toMatchObject({ task, numClasses: spec.numClasses, group: spec.group, seed: 1 });
    // the procedural images are not blank
    const { data } = decodeImage(bytes);
    expect(Math.max(...data) - Math.min(...data)).toBeGreaterThan(50);
  });

  it('is deterministic: same seed, same bytes; another seed, other bytes', async () => {
    const tasks = ['textures', 'clevr_dist', 'mnist'];
    await generateMiniSuite(join(root, 'det-a'), { tasks, counts: SMALL, seed: 42 });
    await generateMiniSuite(join(root, 'det-b'), { tasks, counts: SMALL, seed: 42 });
    await generateMiniSuite(join(root, 'det-c'), { tasks, counts: SMALL, seed: 43 });
    const a = await hashTree(join(root, 'det-a'));
    const b = await hashTree(join(root, 'det-b'));
    const c = await hashTree(join(root, 'det-c'));
    expect(a.size).toBe(3 * (SMALL.train800 + SMALL.val200 + SMALL.test + 5));
    expect(b).toEqual(a);
    for (const task of tasks) {
      expect(c.get(`${task}/images/train800/0000.png`)).not.toBe(a.get(`${task}/images/train800/0000.png`));
    }
  });

  it('keeps mnist splits disjoint real digits', async () => {
    const dir = join(root, 'each', 'mnist');
    const train = parseList(await readFile(join(dir, 'train800.txt'), 'utf8'));
    const test = parseList(await readFile(join(dir, 'test.txt'), 'utf8'));
    const hashes = async (entries: { path: string }[]) =>
      Promise.all(entries.map(async (e) => (await readFile(join(dir, e.path))).toString('base64')));
    const trainImages = new Set(await hashes(train));
    for (const image of await hashes(test)) expect(trainImages.has(image)).toBe(false);
  });

  it('rejects unknown tasks and bad counts before writing anything', async () => {
    const out = join(root, 'rejects');
    await expect(generateMiniSuite(out, { tasks: ['mnist', 'fashion_mnist'] })).rejects.toThrow(UnknownTaskError);
    await expect(generateMiniSuite(out, { counts: { test: 0 } })).rejects.toThrow(/count for test/);
    await expect(stat(out)).rejects.toThrow();
  });

  it('generates a full-size task that the loader opens', async () => {
    const out = join(root, 'full');
    const started = performance.now();
    await generateMiniSuite(out, { tasks: ['dsprites_loc'], seed: 0 });
    const seconds = (performance.now() - started) / 1000;
    expect(seconds).toBeLessThan(60);
    const dir = join(out, 'dsprites_loc');
    const sizes: Record<string, number> = {};
    for (const split of ['train800', 'val200', 'train800val200', 'test'] as const) {
      const opened = await openSplit(dir, split, { imageSize: 16, onWarning: (m) => expect.fail(m) });
      sizes[split] = opened.size;
      expect(opened.numClasses).toBe(16);
      expect(Math.min(...opened.classCounts)).toBeGreaterThan(0);
    }
    expect(sizes).toEqual({ train800: 800, val200: 200, train800val200: 1000, test: 1000 });
    const val = await openSplit(dir, 'val200', { imageSize: 16 });
    let seen = 0;
    for await (const batch of val.batches(64, { shuffle: true, seed: 1 })) {
      expect(batch.images.length).toBe(batch.labels.length * 3 * 16 * 16);
      seen += batch.labels.length;
    }
    expect(seen).toBe(200);
  });
});

describe('ensureMiniSuite and the cache directory', () => {
  it('places the cache under $VQT_CACHE_DIR, versioned and per seed', () => {
    const saved = process.env.VQT_CACHE_DIR;
    process.env.VQT_CACHE_DIR = '/some/cache';
    try {
      expect(defaultSuiteDir()).toBe('/some/cache/mini-suite-v1/seed-0');
      expect(defaultSuiteDir(5)).toBe('/some/cache/mini-suite-v1/seed-5');
    } finally {
      if (saved === undefined) delete process.env.VQT_CACHE_DIR;
      else process.env.VQT_CACHE_DIR = saved;
    }
  });

  it('generates only what is missing and never trusts an incomplete folder', async () => {
    const dir = join(root, 'cache');
    const generated: string[] = [];
    const onTask = (r: { task: string }) => generated.push(r.task);
    expect(await ensureMiniSuite({ dir, tasks: ['dsprites_ori'], onTask })).toBe(dir);
    expect(generated).toEqual(['dsprites_ori']);
    const before = (await stat(join(dir, 'dsprites_ori', 'info.json'))).mtimeMs;
    await ensureMiniSuite({ dir, tasks: ['dsprites_ori'], onTask });
    expect(generated).toEqual(['dsprites_ori']);
    expect((await stat(join(dir, 'dsprites_ori', 'info.json'))).mtimeMs).toBe(before);

    // an interrupted run: a task folder without info.json (and a stray staging folder) is regenerated
    await mkdir(join(dir, 'dsprites_loc', 'images'), { recursive: true });
    await writeFile(join(dir, 'dsprites_loc', 'train800.txt'), 'images/x.png 0\n');
    await mkdir(join(dir, '.dsprites_loc.partial-1-1'), { recursive: true });
    await ensureMiniSuite({ dir, tasks: ['dsprites_loc', 'dsprites_ori'], onTask });
    expect(generated).toEqual(['dsprites_ori', 'dsprites_loc']);
    expect((await readFile(join(dir, 'dsprites_loc', 'train800.txt'), 'utf8')).split('\n')).toHaveLength(801);
    const entries = (await readdir(dir)).filter((name) => !name.startsWith('.'));
    expect(entries.sort()).toEqual(['dsprites_loc', 'dsprites_ori']);
  });
});

describe('vqt-datasets command', () => {
  function io() {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { log: (l: string) => out.push(l), error: (l: string) => err.push(l) } };
  }

  it('generates the requested tasks with a seed', async () => {
    const dir = join(root, 'cli');
    const run = io();
    const args = ['generate', '--out', dir, '--seed', '3', '--tasks', 'dsprites_ori,clevr_count', '--counts', '20,5,10'];
    expect(await runCli(args, run.io)).toBe(0);
    expect(run.out[0]).toMatch(/^dsprites_ori: 20\/5\/10 images in [\d.]+ s -> /);
    expect(run.out[2]).toMatch(/^done in [\d.]+ s$/);
    const info = JSON.parse(await readFile(join(dir, 'clevr_count', 'info.json'), 'utf8'));
    expect(info).toMatchObject({ seed: 3, counts: { train800: 20, val200: 5, test: 10, train800val200: 25 } });
  });

  it('reports usage errors with exit code 2 and task errors with 1', async () => {
    const noOut = io();
    expect(await runCli(['generate'], noOut.io)).toBe(2);
    expect(noOut.err.join('\n')).toMatch(/generate needs --out DIR/);
    const badTask = io();
    expect(await runCli(['generate', '--out', join(root, 'cli-bad'), '--tasks', 'nope'], badTask.io)).toBe(1);
    expect(badTask.err[0]).toMatch(/^unknown task "nope"/);
    const unknown = io();
    expect(await runCli(['frobnicate'], unknown.io)).toBe(2);
    const badCounts = io();
    expect(await runCli(['generate', '--out', 'x', '--counts', '1,2'], badCounts.io)).toBe(2);
    const badSeed = io();
    expect(await runCli(['generate', '--out', 'x', '--seed', '-1'], badSeed.io)).toBe(2);
    const tasks = io();
    expect(await runCli(['tasks'], tasks.io)).toBe(0);
    expect(tasks.out).toHaveLength(MINI_SUITE_TASK_NAMES.length);
  });
});
