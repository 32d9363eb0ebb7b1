import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DatasetLayoutError,
  decodeImage,
  detectLayout,
  ImageDecodeError,
  ImageMissingError,
  LabelOutOfRangeError,
  loadImageBatch,
  openDataset,
  openSplit,
  preprocessImage,
  resolvePreprocess,
  SplitFileMissingError,
  type VtabBatch,
} from '../src/index.js';
import { collect, jpegBytes, makeTempDir, pngBytes, removeDir, writeFileAt } from './helpers.js';

const QUIET = { onWarning: () => {}, decodeWorkers: 0 as const };
let root: string;

beforeAll(async () => {
  root = await makeTempDir('vtab-dataset-');
});
afterAll(() => removeDir(root));

/** A distinct small image per (seed): a PNG, or a JPEG when `jpeg`. */
const image = (seed: number, jpeg = false) => {
  const pixels = Array.from({ length: 4 * 3 * 3 }, (_, i) => (seed * 37 + i * 11) % 256);
  return jpeg ? jpegBytes(4, 3, pixels) : pngBytes(4, 3, 3, pixels);
};

async function errorOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    expect((error as Error).message).not.toMatch(/[\r\n]/);
    return error as Error;
  }
  throw new Error('expected a rejection');
}

async function expected(path: string, imageSize: number): Promise<Float32Array> {
  return preprocessImage(decodeImage(await readFile(path)), resolvePreprocess({ imageSize }));
}

const allImages = (batches: VtabBatch[]) => batches.flatMap((b) => [...b.images]);

describe('VTAB list folders with any name', () => {
  let dir: string;
  beforeAll(async () => {
    dir = join(root, 'My Flowers 2');
    for (let i = 0; i < 6; i++) await writeFileAt(join(dir, 'img', `${i}.png`), image(i));
    await writeFileAt(join(dir, 'train800.txt'), 'img/0.png 0\nimg/1.png 1\nimg/2.png 2\n');
    await writeFileAt(join(dir, 'test.txt'), 'img/3.png 4\nimg/4.png 0\n');
  });

  it('takes the class count from the largest label over every list file', async () => {
    const train = await openSplit(dir, 'train800', { ...QUIET, imageSize: 4 });
    expect([train.task, train.numClasses, train.classCountSource, train.layout]).toEqual(['My Flowers 2', 5, 'labels', 'vtab-lists']);
    expect(train.labelNames).toBeUndefined();
    expect(train.warnings[0]).toMatch(/train800\.txt: 2 of 5 classes have no examples: 3, 4$/);
    const dataset = await openDataset(dir, { ...QUIET, imageSize: 4 });
    expect([dataset.layout, dataset.numClasses, dataset.splits]).toEqual(['vtab-lists', 5, ['train800', 'test']]);
    expect(dataset.description).toBe('VTAB-1k lists (train800.txt, test.txt); 5 classes from the largest label + 1');
    expect((await dataset.split('test')).numClasses).toBe(5);
  });

  it('numClasses overrides it, and labels beyond it are an error naming file and line', async () => {
    expect((await openSplit(dir, 'train800', { ...QUIET, numClasses: 9 })).numClasses).toBe(9);
    const error = await errorOf(openSplit(dir, 'test', { ...QUIET, numClasses: 3 }));
    expect(error).toBeInstanceOf(LabelOutOfRangeError);
    expect(error.message).toBe(`${join(dir, 'test.txt')}:1: label 4 is outside [0, 2] for task "My Flowers 2" (3 classes)`);
  });

  it('labels.txt names the classes and sets their count', async () => {
    const named = join(root, 'named');
    await writeFileAt(join(named, 'a.png'), image(1));
    await writeFileAt(join(named, 'train800.txt'), 'a.png 1\n');
    await writeFileAt(join(named, 'labels.txt'), 'daisy\r\nrose\ntulip\n\n');
    const split = await openSplit(named, 'train800', QUIET);
    expect([split.numClasses, split.labelNames, split.classCountSource]).toEqual([3, ['daisy', 'rose', 'tulip'], 'labels.txt']);
    const dataset = await openDataset(named, QUIET);
    expect(dataset.labelNames).toEqual(['daisy', 'rose', 'tulip']);
    expect(dataset.description).toContain('3 classes from labels.txt: daisy, rose, tulip');

    const mismatch = await errorOf(openSplit(named, 'train800', { ...QUIET, numClasses: 4 }));
    expect(mismatch).toBeInstanceOf(DatasetLayoutError);
    expect(mismatch.message).toBe(`${join(named, 'labels.txt')}: has 3 class names but numClasses has 4 classes`);
    await writeFileAt(join(named, 'train800.txt'), 'a.png 3\n');
    expect((await errorOf(openSplit(named, 'train800', QUIET))).message).toMatch(/train800\.txt:1: label 3 is outside \[0, 2\]/);
    await writeFileAt(join(named, 'labels.txt'), 'daisy\n\nrose\n');
    expect((await errorOf(openSplit(named, 'train800', QUIET))).message).toBe(`${join(named, 'labels.txt')}:2: blank class name (one name per line, label 0 first)`);
    await writeFileAt(join(named, 'labels.txt'), 'daisy\nrose\ndaisy\n');
    expect((await errorOf(openSplit(named, 'train800', QUIET))).message).toMatch(/labels\.txt:3: class name "daisy" repeats line 1$/);
  });

  it('a known task still takes the registry count, and refuses labels beyond it', async () => {
    const known = join(root, 'known', 'dmlab');
    await writeFileAt(join(known, 'a.png'), image(2));
    await writeFileAt(join(known, 'train800.txt'), 'a.png 5\na.png 6\n');
    const error = await errorOf(openSplit(known, 'train800', QUIET));
    expect(error.message).toBe(`${join(known, 'train800.txt')}:2: label 6 is outside [0, 5] for task "dmlab" (6 classes)`);
  });

  it('a negative label is an error naming file and line', async () => {
    const negative = join(root, 'negative');
    await writeFileAt(join(negative, 'train800.txt'), 'a.png 0\na.png -2\n');
    const error = await errorOf(openDataset(negative, QUIET));
    expect(error).toBeInstanceOf(LabelOutOfRangeError);
    expect(error.message).toMatch(/train800\.txt:2: label -2 is outside/);
  });
});

describe('image-folder trees', () => {
  let tree: string;
  const classes = { rose: 5, daisy: 4, Tulip: 1 } as const;
  beforeAll(async () => {
    tree = join(root, 'flowers');
    let seed = 0;
    for (const [name, count] of Object.entries(classes)) {
      for (let i = 0; i < count; i++) await writeFileAt(join(tree, 'train', name, `${name}_${i}.${i % 2 ? 'jpg' : 'png'}`), image(seed++, i % 2 === 1));
      await writeFileAt(join(tree, 'test', name, 'x.PNG'), image(seed++));
    }
    await writeFileAt(join(tree, 'train', 'rose', '.DS_Store'), 'junk'); // hidden files are skipped
  });

  it('finds the layout, sorts the class folders by code point, and maps the splits', async () => {
    expect(await detectLayout(tree)).toBe('image-folder');
    const dataset = await openDataset(tree, { ...QUIET, backbone: { config: { imageSize: 6 } } });
    expect([dataset.layout, dataset.task, dataset.imageSize, dataset.numClasses]).toEqual(['image-folder', 'flowers', 6, 3]);
    expect(dataset.labelNames).toEqual(['Tulip', 'daisy', 'rose']); // 'T' < 'd'
    expect(dataset.splits).toEqual(['train800', 'val200', 'train800val200', 'test']);
    expect(dataset.description).toBe(
      'image-folder tree (train/ 10 images, test/ 3 images; no val/: val200 is 20% of each class of train/ (fixed seed), train800 the rest); 3 classes from the folder names: Tulip, daisy, rose',
    );

    const all = await dataset.split('train800val200');
    expect(all.paths.map((p) => p.slice(tree.length + 1))).toEqual([
      'train/Tulip/Tulip_0.png',
      ...[0, 1, 2, 3].map((i) => `train/daisy/daisy_${i}.${i % 2 ? 'jpg' : 'png'}`),
      ...[0, 1, 2, 3, 4].map((i) => `train/rose/rose_${i}.${i % 2 ? 'jpg' : 'png'}`),
    ]);
    expect([...all.labels]).toEqual([0, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    expect([all.layout, all.labelNames, all.classCountSource]).toEqual(['image-folder', ['Tulip', 'daisy', 'rose'], 'class folders']);

    // without val/: a fixed 20% of each class (round, at least one left) is val200, train800 the rest
    const train = await dataset.split('train800');
    const val = await dataset.split('val200');
    expect([train.size, val.size]).toEqual([8, 2]);
    expect([...val.labels]).toEqual([1, 2]);
    expect(new Set([...train.paths, ...val.paths])).toEqual(new Set(all.paths));
    const again = await (await openDataset(tree, { ...QUIET, imageSize: 6 })).split('val200');
    expect(again.paths).toEqual(val.paths);

    // the pixels are the files', preprocessed as the list loader does
    const test = await dataset.split('test');
    expect([...test.labels]).toEqual([0, 1, 2]);
    const images = allImages(await collect(test.batches(2)));
    const wanted = (await Promise.all(test.paths.map((p) => expected(p, 6)))).flatMap((a) => [...a]);
    expect(images).toEqual(wanted);
  });

  it('takes val200 from val/ when there is one', async () => {
    const withVal = join(root, 'with-val');
    for (const split of ['train', 'val', 'test']) {
      for (const name of ['a', 'b']) for (let i = 0; i < 2; i++) await writeFileAt(join(withVal, split, name, `${i}.png`), image(i));
    }
    const dataset = await openDataset(withVal, QUIET);
    expect(dataset.description).toMatch(/^image-folder tree \(train\/ 4 images, val\/ 4 images, test\/ 4 images\); 2 classes/);
    const [train, val, both] = await Promise.all((['train800', 'val200', 'train800val200'] as const).map((s) => dataset.split(s)));
    expect([train.size, val.size, both.size]).toEqual([4, 4, 8]);
    expect(val.paths.every((p) => p.includes(`${join(withVal, 'val')}/`))).toBe(true);
    expect(both.paths).toEqual([...train.paths, ...val.paths]);
  });

  it('numClasses must match the class folders; a missing split folder is named', async () => {
    expect((await errorOf(openDataset(tree, { ...QUIET, numClasses: 4 }))).message).toBe(
      `${tree}: has 3 class folders (Tulip, daisy, rose) but numClasses 4 was given`,
    );
    const trainOnly = join(root, 'train-only');
    await writeFileAt(join(trainOnly, 'train', 'a', '0.png'), image(0));
    const dataset = await openDataset(trainOnly, QUIET);
    expect(dataset.splits).toEqual(['train800', 'val200', 'train800val200']);
    const error = await errorOf(dataset.split('test'));
    expect(error).toBeInstanceOf(SplitFileMissingError);
    expect(error.message).toMatch(new RegExp(`^${join(trainOnly, 'test')}: split folder not found, needed for test`));
  });

  it('refuses bad trees with one line naming the path', async () => {
    const bad = async (name: string, files: Record<string, string | Uint8Array>) => {
      const dir = join(root, 'bad', name);
      for (const [path, data] of Object.entries(files)) await writeFileAt(join(dir, path), data);
      return dir;
    };
    const noClasses = await bad('no-classes', { 'train/.keep': '' });
    expect((await errorOf(openDataset(noClasses))).message).toMatch(new RegExp(`^${join(noClasses, 'train')}: has no class folders; an image-folder tree holds train/<class>/`));

    const emptyClass = await bad('empty-class', { 'train/a/0.png': image(0), 'train/b/.hidden': '' });
    const empty = await errorOf(openDataset(emptyClass));
    expect(empty).toBeInstanceOf(DatasetLayoutError);
    expect(empty.message).toBe(`${join(emptyClass, 'train', 'b')}: class folder has no images`);

    const notImage = await bad('not-image', { 'train/a/0.png': image(0), 'train/a/notes.txt': 'hello' });
    expect((await errorOf(openDataset(notImage))).message).toBe(
      `${join(notImage, 'train', 'a', 'notes.txt')}: not an image (a class folder holds .png, .jpg or .jpeg files only)`,
    );

    const fake = await bad('fake-png', { 'train/a/0.png': image(0), 'train/a/1.png': 'not really a png' });
    const fakeError = await errorOf(openDataset(fake));
    expect(fakeError).toBeInstanceOf(ImageDecodeError);
    expect(fakeError.message).toBe(`${join(fake, 'train', 'a', '1.png')}: cannot decode image: not a JPEG or PNG file (unrecognised leading bytes)`);

    const looseFile = await bad('loose-file', { 'train/a/0.png': image(0), 'train/readme.md': '#' });
    expect((await errorOf(openDataset(looseFile))).message).toMatch(new RegExp(`^${join(looseFile, 'train', 'readme.md')}: is a file directly in train/`));

    const nested = await bad('nested', { 'train/a/0.png': image(0), 'train/a/more/1.png': image(1) });
    expect((await errorOf(openDataset(nested))).message).toBe(`${join(nested, 'train', 'a', 'more')}: is a folder inside a class folder; put the images directly in the class folder`);

    // a PNG signature over a broken body passes the open-time check and fails when decoded, naming the image only
    const truncated = await bad('truncated', { 'train/a/0.png': image(0).subarray(0, 30) });
    const split = await (await openDataset(truncated, QUIET)).split('train800val200');
    const decodeError = await errorOf(collect(split.batches(1)));
    expect(decodeError).toBeInstanceOf(ImageDecodeError);
    expect(decodeError.message).toMatch(new RegExp(`^${join(truncated, 'train', 'a', '0.png')}: cannot decode image: `));

    const neither = await bad('neither', { 'images/0.png': image(0) });
    expect((await errorOf(openDataset(neither))).message).toBe(
      `${neither}: neither a VTAB-1k task folder (train800.txt, val200.txt, train800val200.txt, test.txt) nor an image-folder tree (train/<class>/*.png|jpg, test/<class>/...)`,
    );
    expect((await errorOf(openDataset(join(root, 'nowhere')))).message).toBe(`${join(root, 'nowhere')}: no such folder`);
  });
});

describe('loadImageBatch', () => {
  it('turns paths and buffers into one NCHW batch at the backbone size', async () => {
    const a = join(root, 'loose', 'a.png');
    const b = join(root, 'loose', 'b.jpg');
    await writeFileAt(a, image(3));
    await writeFileAt(b, image(4, true));
    const batch = await loadImageBatch([a, image(5), b], { backbone: { model: { config: { imageSize: 5 } } } });
    expect(batch.shape).toEqual([3, 3, 5, 5]);
    expect(batch.sources).toEqual([a, 'input 1', b]);
    const wanted = [await expected(a, 5), preprocessImage(decodeImage(image(5)), resolvePreprocess({ imageSize: 5 })), await expected(b, 5)];
    expect([...batch.images]).toEqual(wanted.flatMap((x) => [...x]));
    const inception = await loadImageBatch([a], { imageSize: 5, normalization: 'inception' });
    expect([...inception.images]).toEqual([...preprocessImage(decodeImage(image(3)), resolvePreprocess({ imageSize: 5, normalization: 'inception' }))]);
  });

  it('names the bad input', async () => {
    const missing = join(root, 'loose', 'missing.png');
    const gone = await errorOf(loadImageBatch([missing], { imageSize: 4 }));
    expect(gone).toBeInstanceOf(ImageMissingError);
    expect(gone.message).toBe(`${missing}: image not found`);
    expect((await errorOf(loadImageBatch([image(1), new TextEncoder().encode('GIF89a...')], { imageSize: 4 }))).message).toBe(
      'input 1: cannot decode image: not a JPEG or PNG file (unrecognised leading bytes)',
    );
    expect((await errorOf(loadImageBatch([join(root, 'loose')], { imageSize: 4 }))).message).toMatch(new RegExp(`^${join(root, 'loose')}: cannot read: `));
    await expect(loadImageBatch([image(1)], { imageSize: 8, backbone: { config: { imageSize: 4 } } })).rejects.toThrow(
      'imageSize 8 was given but the backbone takes 4 x 4 images',
    );
    await expect(loadImageBatch([])).rejects.toThrow(RangeError);
  });
});
