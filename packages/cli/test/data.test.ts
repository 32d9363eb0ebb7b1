import { embeddedBackbone } from '@vqt/vtab-datasets';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorLines, vqt } from './helpers.js';

// The user's own data, in both layouts, through `vqt train` then `vqt eval`, on the embedded
// 64 px backbone with a linear probe: the images are solid colours with a little noise, one colour
// per class, so a probe that sees the right labels separates them.
const root = mkdtempSync(join(tmpdir(), 'vqt-data-'));
const backbone = embeddedBackbone().file;
const COLOURS: Record<string, [number, number, number]> = { red: [220, 30, 30], green: [30, 200, 40], blue: [30, 40, 220] };
const fast = ['--method', 'linear', '--checkpoint', backbone, '--epochs', '20', '--warmup', '0', '--lr', '0.05', '--batch', '8', '--progress', 'none'];

/** An 8-bit RGB PNG, written by hand (signature, IHDR, one IDAT, IEND). */
function png(width: number, height: number, rgb: Uint8Array): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit, truecolour, deflate, no filter, no interlace
  const rows = Buffer.alloc(height * (1 + 3 * width));
  for (let y = 0; y < height; y++) rows.set(rgb.subarray(y * 3 * width, (y + 1) * 3 * width), y * (1 + 3 * width) + 1);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

function colourImage(colour: [number, number, number], seed: number): Buffer {
  const size = 12;
  const rgb = new Uint8Array(size * size * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = Math.max(0, Math.min(255, colour[i % 3] + (((seed * 7919 + i * 104729) % 41) - 20)));
  return png(size, size, rgb);
}

function write(path: string, data: string | Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
}

const names = Object.keys(COLOURS);
/** A VTAB-style folder with a name no registry knows: lists, labels.txt, images anywhere. */
const listTask = join(root, 'my own task');
/** An image-folder tree: train/<class>/, test/<class>/, no val/. */
const tree = join(root, 'colour-tree');

beforeAll(() => {
  const train: string[] = [];
  const test: string[] = [];
  names.forEach((name, label) => {
    for (let i = 0; i < 8; i++) {
      const image = colourImage(COLOURS[name], 10 * label + i);
      write(join(listTask, 'pics', `${name}-${i}.png`), image);
      (i < 6 ? train : test).push(`pics/${name}-${i}.png ${label}`);
      write(join(tree, i < 6 ? 'train' : 'test', name, `${i}.png`), image);
    }
  });
  write(join(listTask, 'train800val200.txt'), `${train.join('\n')}\n`);
  write(join(listTask, 'test.txt'), `${test.join('\n')}\n`);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const config = (adapter: string) => JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8'));

function trainThenEval(data: string, out: string, extra: string[] = []): { trainLog: string; top1: number } {
  const train = vqt(['train', ...fast, '--data', data, '--out', out, ...extra]);
  expect(train.status, train.stderr).toBe(0);
  const evaluated = vqt(['eval', '--checkpoint', backbone, '--adapter', out, '--data', data, '--split', 'test']);
  expect(evaluated.status, evaluated.stderr).toBe(0);
  expect(evaluated.stdout).toMatch(/^test top-1: \d+\.\d\d% \(\d+\/6\)/);
  return { trainLog: train.stderr, top1: JSON.parse(readFileSync(join(out, 'eval_test.json'), 'utf8')).top1 };
}

describe('vqt train / eval on your own data', () => {
  it('a VTAB-style folder of any name: classes from the labels, then named by labels.txt', () => {
    const unnamed = trainThenEval(listTask, join(root, 'a-list'));
    expect(unnamed.trainLog).toContain(`data ${listTask}: VTAB-1k lists (train800val200.txt, test.txt); 3 classes from the largest label + 1\n`);
    expect(config(join(root, 'a-list'))).toMatchObject({ method: 'linear', numClasses: 3 });
    expect(config(join(root, 'a-list')).labelNames).toBeUndefined();
    expect(unnamed.top1).toBeGreaterThanOrEqual(5 / 6); // three colours: a probe on the right labels separates them

    write(join(listTask, 'labels.txt'), 'red\ngreen\nblue\n');
    const named = trainThenEval(listTask, join(root, 'b-list'));
    expect(named.trainLog).toContain('3 classes from labels.txt: red, green, blue');
    expect(config(join(root, 'b-list'))).toMatchObject({ numClasses: 3, labelNames: ['red', 'green', 'blue'] });
    rmSync(join(listTask, 'labels.txt'));
  });

  it('--classes overrides the count (eval takes the adapter\'s), and refuses labels beyond it', () => {
    const wide = join(root, 'c-list');
    trainThenEval(listTask, wide, ['--classes', '5']);
    expect(config(wide).numClasses).toBe(5);
    const narrow = vqt(['train', ...fast, '--data', listTask, '--out', join(root, 'd-list'), '--classes', '2']);
    expect(narrow.status).toBe(1);
    expect(errorLines(narrow).at(-1)).toMatch(new RegExp(`^vqt: ${join(listTask, 'train800val200.txt')}:13: label 2 is outside \\[0, 1\\] for task "my own task" \\(2 classes\\)$`));
  });

  it('an image-folder tree: classes from the folder names, sorted; val200 held out of train/', () => {
    const out = join(root, 'tree');
    const { trainLog, top1 } = trainThenEval(tree, out);
    expect(trainLog).toContain(
      `data ${tree}: image-folder tree (train/ 18 images, test/ 6 images; no val/: val200 is 20% of each class of train/ (fixed seed), train800 the rest); 3 classes from the folder names: blue, green, red\n`,
    );
    expect(trainLog).toMatch(/: 18 images in train800val200, 3 classes/);
    expect(config(out)).toMatchObject({ numClasses: 3, labelNames: ['blue', 'green', 'red'] });
    expect(top1).toBeGreaterThanOrEqual(5 / 6);
    const val = vqt(['eval', '--checkpoint', backbone, '--adapter', out, '--data', tree, '--split', 'val200']);
    expect(val.stdout, val.stderr).toMatch(/^val200 top-1: \d+\.\d\d% \(\d+\/3\)/); // round(0.2 x 6) per class
  });

  it('bad trees and folders fail with one line naming the path', () => {
    const bad = join(root, 'bad-tree');
    write(join(bad, 'train', 'red', '0.png'), colourImage(COLOURS.red, 0));
    write(join(bad, 'train', 'red', 'notes.txt'), 'x');
    const run = vqt(['train', ...fast, '--data', bad, '--out', join(root, 'never')]);
    expect(run.status).toBe(1);
    expect(errorLines(run)).toEqual([`vqt: ${join(bad, 'train', 'red', 'notes.txt')}: not an image (a class folder holds .png, .jpg or .jpeg files only)`]);
    const neither = vqt(['train', ...fast, '--data', join(root, 'pics-only'), '--out', join(root, 'never')]);
    expect(errorLines(neither)).toEqual([`vqt: ${join(root, 'pics-only')}: no such folder`]);
  });
});
