import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeImage,
  ImageDecodeError,
  ImageMissingError,
  LabelOutOfRangeError,
  ListLineError,
  openSplit,
  preprocessImage,
  resolvePreprocess,
  SplitFileMissingError,
  UnknownTaskError,
  VtabDataError,
  type VtabBatch,
} from '../src/index.js';
import { collect, GRAY_RAMP_JPEG, jpegBytes, makeTempDir, palettePngBytes, pngBytes, removeDir, writeFileAt } from './helpers.js';

let root: string;
/** A 10-class task folder (named svhn so the registry supplies the class count) with mixed image kinds. */
let taskDir: string;

const ramp = (n: number, step: number, offset = 0) => Array.from({ length: n }, (_, i) => (offset + i * step) % 256);

const IMAGES: [string, Uint8Array, number][] = [
  ['images/rgb.png', pngBytes(4, 4, 3, ramp(48, 5)), 0],
  ['images/rgb.jpg', jpegBytes(8, 6, ramp(144, 3, 7)), 1],
  ['images/gray.png', pngBytes(3, 5, 1, ramp(15, 17)), 2],
  ['images/gray.jpg', GRAY_RAMP_JPEG, 3],
  ['images/rgba.png', pngBytes(2, 2, 4, ramp(16, 15)), 4],
  ['images/palette.png', palettePngBytes(2, 3, [[1, 2, 3], [200, 100, 0], [9, 99, 199]], [0, 1, 2, 2, 1, 0]), 5],
  ['images/with space.png', pngBytes(5, 2, 3, ramp(30, 8)), 6],
  ['images/sub/deep16.png', pngBytes(2, 2, 1, [0, 1000, 40000, 65535], 16), 7],
  ['images/big.jpg', jpegBytes(40, 30, ramp(3600, 1)), 8],
  ['images/tall.png', pngBytes(1, 7, 3, ramp(21, 12)), 9],
  ['images/rgb-again.png', pngBytes(6, 6, 3, ramp(108, 2)), 0],
];

const trainLines = IMAGES.map(([path, , label]) => `${path} ${label}`);

beforeAll(async () => {
  root = await makeTempDir();
  taskDir = join(root, 'svhn');
  for (const [path, bytes] of IMAGES) await writeFileAt(join(taskDir, path), bytes);
  await writeFileAt(join(taskDir, 'train800.txt'), `${trainLines.join('\n')}\n`);
  // val200 misses most classes, and uses CRLF line ends and a blank line
  await writeFileAt(join(taskDir, 'val200.txt'), `images/rgb.png 0\r\n\r\nimages/gray.png 2\r\n`);
});

afterAll(() => removeDir(root));

async function expectedImage(path: string, imageSize: number, normalization?: 'imagenet' | 'inception'): Promise<Float32Array> {
  const image = decodeImage(await readFile(join(taskDir, path)));
  return preprocessImage(image, resolvePreprocess({ imageSize, normalization }));
}

function concatImages(batches: VtabBatch[]): Float32Array {
  const total = batches.reduce((n, b) => n + b.images.length, 0);
  const out = new Float32Array(total);
  let at = 0;
  for (const b of batches) {
    out.set(b.images, at);
    at += b.images.length;
  }
  return out;
}

describe('openSplit', () => {
  it('parses the list, resolves the task from the folder name and counts classes', async () => {
    const warnings: string[] = [];
    const split = await openSplit(taskDir, 'train800', { imageSize: 8, onWarning: (m) => warnings.push(m) });
    expect(split.task).toBe('svhn');
    expect(split.numClasses).toBe(10);
    expect(split.size).toBe(IMAGES.length);
    expect(Array.from(split.labels)).toEqual(IMAGES.map(([, , label]) => label));
    expect(split.paths[6]).toBe(join(taskDir, 'images/with space.png'));
    expect(Array.from(split.classCounts)).toEqual([2, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(split.warnings).toEqual([]);
    expect(warnings).toEqual([]);
  });

  it('yields NCHW float32 batches equal to decode + preprocess of each file (JPEG, PNG, gray, RGBA, palette, 16-bit)', async () => {
    const split = await openSplit(taskDir, 'train800', { imageSize: 8 });
    const batches = await collect(split.batches(4));
    expect(batches.map((b) => b.labels.length)).toEqual([4, 4, 3]);
    expect(batches[0].images.length).toBe(4 * 3 * 8 * 8);
    const all = concatImages(batches);
    for (let i = 0; i < IMAGES.length; i++) {
      const expected = await expectedImage(IMAGES[i][0], 8);
      expect(Array.from(all.subarray(i * 192, (i + 1) * 192))).toEqual(Array.from(expected));
    }
    expect(batches.flatMap((b) => Array.from(b.indices))).toEqual(IMAGES.map((_, i) => i));
  });

  it('honours imageSize and normalization options', async () => {
    const split = await openSplit(taskDir, 'train800', { imageSize: 5, normalization: 'inception' });
    const [first] = await collect(split.batches(1, { prefetch: 0 }));
    expect(Array.from(first.images)).toEqual(Array.from(await expectedImage(IMAGES[0][0], 5, 'inception')));
    expect(Array.from(await split.image(2))).toEqual(Array.from(await expectedImage(IMAGES[2][0], 5, 'inception')));
  });

  it('shuffles deterministically from a seed, visiting every example once', async () => {
    const split = await openSplit(taskDir, 'train800', { imageSize: 4 });
    const order = async (seed: number) => (await collect(split.batches(3, { shuffle: true, seed }))).flatMap((b) => Array.from(b.indices));
    const a = await order(7);
    expect(await order(7)).toEqual(a);
    expect(await order(8)).not.toEqual(a);
    expect([...a].sort((x, y) => x - y)).toEqual(IMAGES.map((_, i) => i));
    const shuffled = await collect(split.batches(3, { shuffle: true, seed: 7 }));
    for (const batch of shuffled) {
      expect(Array.from(batch.labels)).toEqual(Array.from(batch.indices, (i) => IMAGES[i][2]));
    }
  });

  it('gives identical batches with and without prefetch, and supports dropLast', async () => {
    const split = await openSplit(taskDir, 'train800', { imageSize: 6 });
    const eager = await collect(split.batches(2, { shuffle: true, seed: 3, prefetch: 4 }));
    const lazy = await collect(split.batches(2, { shuffle: true, seed: 3, prefetch: 0 }));
    expect(eager.length).toBe(6);
    expect(eager.map((b) => Array.from(b.indices))).toEqual(lazy.map((b) => Array.from(b.indices)));
    expect(Array.from(concatImages(eager))).toEqual(Array.from(concatImages(lazy)));
    const dropped = await collect(split.batches(2, { dropLast: true }));
    expect(dropped.map((b) => b.labels.length)).toEqual([2, 2, 2, 2, 2]);
  });

  it('loads everything at once in list order', async () => {
    const split = await openSplit(taskDir, 'train800', { imageSize: 4 });
    const { images, labels } = await split.loadAll();
    expect(images.length).toBe(IMAGES.length * 48);
    expect(Array.from(labels)).toEqual(Array.from(split.labels));
    expect(Array.from(images.subarray(3 * 48, 4 * 48))).toEqual(Array.from(await expectedImage(IMAGES[3][0], 4)));
  });

  it('warns (testably) when a split lacks classes, and tolerates CRLF and blank lines', async () => {
    const warnings: string[] = [];
    const split = await openSplit(taskDir, 'val200', { imageSize: 4, onWarning: (m) => warnings.push(m) });
    expect(split.size).toBe(2);
    expect(split.warnings).toHaveLength(1);
    expect(split.warnings[0]).toBe(`${join(taskDir, 'val200.txt')}: 8 of 10 classes have no examples: 1, 3, 4, 5, 6, 7, 8, 9`);
    expect(warnings).toEqual(split.warnings);
  });

  it('validates batch arguments', async () => {
    const split = await openSplit(taskDir, 'train800', { imageSize: 4 });
    await expect(collect(split.batches(0))).rejects.toThrow(/batchSize/);
    await expect(collect(split.batches(2, { prefetch: -1 }))).rejects.toThrow(/prefetch/);
    await expect(split.image(99)).rejects.toThrow(/index 99/);
  });
});

describe('bad input', () => {
  const QUIET = { onWarning: () => {} };
  /** Writes `<root>/<name>/` with the given list text and images and returns the folder. */
  async function makeTask(name: string, listText: string, images: Record<string, Uint8Array> = {}): Promise<string> {
    const dir = join(root, name);
    await writeFileAt(join(dir, 'train800.txt'), listText);
    for (const [path, bytes] of Object.entries(images)) await writeFileAt(join(dir, path), bytes);
    return dir;
  }

  const png = pngBytes(2, 2, 3, ramp(12, 20));

  async function errorOf(promise: Promise<unknown>): Promise<Error> {
    try {
      await promise;
    } catch (error) {
      expect(error).toBeInstanceOf(VtabDataError);
      expect((error as Error).message).not.toMatch(/[\r\n]/);
      return error as Error;
    }
    throw new Error('expected a rejection');
  }

  it('a list line that does not parse names file and line', async () => {
    const dir = await makeTask('bad-line/svhn', 'a.png 1\nb.png 2\nno_label_here\n', { 'a.png': png, 'b.png': png });
    const error = await errorOf(openSplit(dir, 'train800', QUIET));
    expect(error).toBeInstanceOf(ListLineError);
    expect(error.message).toBe(`${join(dir, 'train800.txt')}:3: expected "<path> <label>", got "no_label_here"`);

    const dir2 = await makeTask('bad-label-text/svhn', 'a.png 1\na.png one\n', { 'a.png': png });
    expect((await errorOf(openSplit(dir2, 'train800', QUIET))).message).toBe(
      `${join(dir2, 'train800.txt')}:2: expected "<path> <label>", label "one" is not an integer`,
    );
    const dir3 = await makeTask('empty/svhn', '\n\n');
    expect((await errorOf(openSplit(dir3, 'train800', QUIET))).message).toMatch(/train800\.txt:1: expected "<path> <label>", the list is empty$/);
  });

  it('a missing image is reported at open time with its list line', async () => {
    const dir = await makeTask('missing/svhn', 'a.png 1\nimages/nope.png 2\n', { 'a.png': png });
    const error = await errorOf(openSplit(dir, 'train800', QUIET));
    expect(error).toBeInstanceOf(ImageMissingError);
    expect(error.message).toBe(`${join(dir, 'train800.txt')}:2: image not found: ${join(dir, 'images/nope.png')}`);
  });

  it('a missing image is reported while loading when the open-time check is off', async () => {
    const dir = await makeTask('missing-late/svhn', 'a.png 1\nimages/nope.png 2\n', { 'a.png': png });
    const split = await openSplit(dir, 'train800', { ...QUIET, imageSize: 4, checkFiles: false });
    const error = await errorOf(collect(split.batches(8)));
    expect(error).toBeInstanceOf(ImageMissingError);
    expect(error.message).toBe(`${join(dir, 'train800.txt')}:2: image not found: ${join(dir, 'images/nope.png')}`);
  });

  it('an undecodable image names file, line and reason, and surfaces only when its batch is reached', async () => {
    const dir = await makeTask('undecodable/svhn', 'a.png 0\nb.png 1\nbroken.jpg 2\nc.png 3\n', {
      'a.png': png,
      'b.png': png,
      'broken.jpg': Buffer.from('this is not an image'),
      'c.png': png,
    });
    const split = await openSplit(dir, 'train800', { ...QUIET, imageSize: 4 });
    const seen: number[] = [];
    const error = await errorOf(
      (async () => {
        for await (const batch of split.batches(1, { prefetch: 3 })) seen.push(batch.indices[0]);
      })(),
    );
    expect(seen).toEqual([0, 1]);
    expect(error).toBeInstanceOf(ImageDecodeError);
    expect(error.message).toBe(
      `${join(dir, 'train800.txt')}:3: cannot decode image ${join(dir, 'broken.jpg')}: not a JPEG or PNG file (unrecognised leading bytes)`,
    );
    const truncatedDir = await makeTask('truncated/svhn', 'cut.png 0\n', { 'cut.png': png.subarray(0, 30) });
    const truncated = await openSplit(truncatedDir, 'train800', { ...QUIET, imageSize: 4 });
    expect((await errorOf(truncated.loadAll())).message).toMatch(/train800\.txt:1: cannot decode image .*cut\.png: /);
  });

  it('stopping early over a failing prefetched batch leaks no unhandled rejection', async () => {
    const dir = await makeTask('early-stop/svhn', 'a.png 0\nbroken.png 1\n', { 'a.png': png, 'broken.png': Buffer.from('nope') });
    const split = await openSplit(dir, 'train800', { ...QUIET, imageSize: 4 });
    for await (const batch of split.batches(1, { prefetch: 2 })) {
      expect(batch.indices[0]).toBe(0);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  });

  it('a label outside the class count names file and line', async () => {
    const dir = await makeTask('label-range/svhn', 'a.png 9\na.png 10\n', { 'a.png': png });
    const error = await errorOf(openSplit(dir, 'train800', QUIET));
    expect(error).toBeInstanceOf(LabelOutOfRangeError);
    expect(error.message).toBe(`${join(dir, 'train800.txt')}:2: label 10 is outside [0, 9] for task "svhn" (10 classes)`);
    const negative = await makeTask('label-negative/patch_camelyon', 'a.png -1\n', { 'a.png': png });
    expect((await errorOf(openSplit(negative, 'train800', QUIET))).message).toMatch(/train800\.txt:1: label -1 is outside \[0, 1\] for task "patch_camelyon"/);
  });

  it('a folder of any name takes its class count from the labels; an unknown explicit task is an error', async () => {
    const dir = await makeTask('custom/my_task', 'a.png 4\n', { 'a.png': png });
    const inferred = await openSplit(dir, 'train800', { ...QUIET, imageSize: 4 });
    expect([inferred.task, inferred.numClasses, inferred.classCountSource]).toEqual(['my_task', 5, 'labels']);
    const error = await errorOf(openSplit(dir, 'train800', { ...QUIET, task: 'nope' }));
    expect(error).toBeInstanceOf(UnknownTaskError);
    expect(error.message).toMatch(/^unknown task "nope"; known tasks: mnist, .*caltech101.*; leave out \{task\} to take the class count from the labels, or pass \{numClasses\}/);
    const custom = await openSplit(dir, 'train800', { ...QUIET, numClasses: 5, imageSize: 4 });
    expect([custom.task, custom.numClasses]).toEqual(['my_task', 5]);
    // an explicit task overrides the folder name
    const asDtd = await openSplit(dir, 'train800', { ...QUIET, task: 'dtd', imageSize: 4 });
    expect(asDtd.numClasses).toBe(47);
    await expect(openSplit(dir, 'train800', { ...QUIET, task: 'dtd', numClasses: 3 })).rejects.toThrow(/has 47 classes/);
  });

  it('a missing split file or task folder names the expected file', async () => {
    const error = await errorOf(openSplit(taskDir, 'test'));
    expect(error).toBeInstanceOf(SplitFileMissingError);
    expect(error.message).toBe(
      `${join(taskDir, 'test.txt')}: split file not found (a VTAB-1k task folder holds train800.txt, val200.txt, train800val200.txt, test.txt)`,
    );
    const gone = join(root, 'does-not-exist', 'svhn');
    expect((await errorOf(openSplit(gone, 'train800', QUIET))).message).toBe(
      `${join(gone, 'train800.txt')}: split file not found: task directory ${gone} does not exist`,
    );
  });
});

describe('decode worker threads', () => {
  it('produce the same batches as main-thread decoding and the same errors', async () => {
    let esbuild: typeof import('esbuild');
    try {
      esbuild = await import('esbuild');
    } catch {
      return; // esbuild (a tsup/vite dependency) unavailable: nothing to bundle the worker with
    }
    // the loader looks for the compiled dist/decode-worker.js; under vitest we bundle it from source
    const workerScript = join(root, 'decode-worker.cjs');
    await esbuild.build({
      entryPoints: [join(import.meta.dirname, '../src/decode-worker.ts')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      outfile: workerScript,
      logLevel: 'silent',
    });
    const threaded = await openSplit(taskDir, 'train800', { imageSize: 7, decodeWorkers: 2, workerScript });
    const inline = await openSplit(taskDir, 'train800', { imageSize: 7, decodeWorkers: 0 });
    const a = await collect(threaded.batches(3, { shuffle: true, seed: 5 }));
    const b = await collect(inline.batches(3, { shuffle: true, seed: 5 }));
    expect(Array.from(concatImages(a))).toEqual(Array.from(concatImages(b)));

    const dir = join(root, 'worker-bad', 'svhn');
    await writeFileAt(join(dir, 'train800.txt'), 'ok.png 0\nbad.png 1\n');
    await writeFileAt(join(dir, 'ok.png'), pngBytes(2, 2, 1, [1, 2, 3, 4]));
    await writeFileAt(join(dir, 'bad.png'), Buffer.from('garbage'));
    const bad = await openSplit(dir, 'train800', { imageSize: 4, decodeWorkers: 1, workerScript, onWarning: () => {} });
    await expect(collect(bad.batches(2))).rejects.toThrow(`${join(dir, 'train800.txt')}:2: cannot decode image ${join(dir, 'bad.png')}`);
    await expect(openSplit(taskDir, 'train800', { decodeWorkers: -1 })).rejects.toThrow(/decodeWorkers/);
  });
});
