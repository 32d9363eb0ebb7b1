import { open, readdir, stat } from 'node:fs/promises';
import { basename, extname, join, relative, resolve } from 'node:path';
import { sniffImageFormat } from './decode.js';
import { DatasetLayoutError, ImageDecodeError, SplitFileMissingError } from './errors.js';
import { resolveImageSize, type BackboneSizeOptions } from './image-batch.js';
import { VTAB_SPLITS, type ListEntry, type VtabSplitName } from './list.js';
import {
  createSplit,
  openSplit,
  resolveListClasses,
  type ClassCountSource,
  type DatasetLayout,
  type OpenSplitOptions,
  type VtabSplit,
} from './loader.js';
import { resolvePreprocess } from './preprocess.js';
import { deriveSeed, seededPermutation } from './rng.js';

export interface OpenDatasetOptions extends Omit<OpenSplitOptions, 'imageSize'>, BackboneSizeOptions {}

/** A data folder of either layout, with its classes resolved once; splits open on demand. */
export interface VtabDataset {
  readonly dir: string;
  readonly layout: DatasetLayout;
  readonly task: string;
  readonly numClasses: number;
  /** Class names by label: the class folders (image-folder tree) or labels.txt (VTAB lists), if any. */
  readonly labelNames?: readonly string[];
  readonly classCountSource: ClassCountSource;
  readonly imageSize: number;
  /** The splits this folder can give. */
  readonly splits: readonly VtabSplitName[];
  /** One line for a log: which layout was found, the classes, where each split comes from. */
  readonly description: string;
  split(name: VtabSplitName): Promise<VtabSplit>;
}

/** The image-folder tree's split folders; `val` is optional. */
const TREE_FOLDERS = ['train', 'val', 'test'] as const;
type TreeFolder = (typeof TREE_FOLDERS)[number];

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

/** Without val/, this share of each class of train/ (rounded, at least one image left to train) is val200. */
export const HELD_OUT_FRACTION = 0.2;
/** Seed of the held-out draw; fixed so every run, and train and eval, see the same split. */
export const HELD_OUT_SEED = 0;

const TREE_SHAPE = 'an image-folder tree holds train/<class>/*.png|jpg, test/<class>/..., optionally val/<class>/...';

/**
 * Opens a data folder of either layout:
 *
 * - VTAB-1k lists: `train800.txt`, `val200.txt`, `train800val200.txt`, `test.txt` of `<path> <label>`
 *   lines (see openSplit for the class count: registry, `numClasses`, labels.txt, or max label + 1).
 * - An image-folder tree: `train/<class>/*.png|jpg`, `test/<class>/...`, optional `val/<class>/...`.
 *   Classes are the class folder names over all split folders, sorted by code point (as Python's
 *   sorted()), label i = the i-th name. train800 = train/, val200 = val/, train800val200 = both,
 *   test = test/. Without val/, val200 is HELD_OUT_FRACTION of each class of train/ drawn with a fixed
 *   seed, train800 the rest, and train800val200 all of train/.
 *
 * Lists win when a folder has both. Bad input (no class folders, an empty class folder, a file that
 * is not a PNG or JPEG) is refused here, before any training, with a one-line error naming the path.
 * The image size comes from `imageSize` or from `backbone`.
 */
export async function openDataset(dir: string, options: OpenDatasetOptions = {}): Promise<VtabDataset> {
  const root = resolve(dir);
  const imageSize = resolvePreprocess({ ...options, imageSize: resolveImageSize(options) }).imageSize;
  const splitOptions: OpenSplitOptions = { ...options, imageSize };
  const layout = await detectLayout(root);
  return layout === 'vtab-lists' ? openListDataset(root, splitOptions, imageSize) : openTreeDataset(root, splitOptions, imageSize);
}

/** Which layout a folder has; an error naming the folder when it has neither. */
export async function detectLayout(dir: string): Promise<DatasetLayout> {
  const root = resolve(dir);
  const kind = await stat(root).then((s) => (s.isDirectory() ? 'dir' : 'file'), () => 'missing');
  if (kind === 'missing') throw new DatasetLayoutError(root, 'no such folder');
  if (kind === 'file') throw new DatasetLayoutError(root, 'is a file, not a data folder');
  for (const split of VTAB_SPLITS) if (await isFile(join(root, `${split}.txt`))) return 'vtab-lists';
  for (const folder of TREE_FOLDERS) if (await isDirectory(join(root, folder))) return 'image-folder';
  throw new DatasetLayoutError(
    root,
    `neither a VTAB-1k task folder (${VTAB_SPLITS.map((s) => `${s}.txt`).join(', ')}) nor an image-folder tree (train/<class>/*.png|jpg, test/<class>/...)`,
  );
}

async function openListDataset(root: string, options: OpenSplitOptions, imageSize: number): Promise<VtabDataset> {
  const classes = await resolveListClasses(root, options);
  const splits: VtabSplitName[] = [];
  for (const split of VTAB_SPLITS) if (await isFile(join(root, `${split}.txt`))) splits.push(split);
  const origin: Record<ClassCountSource, string> = {
    registry: `the task registry ("${classes.task}")`,
    numClasses: 'numClasses',
    'labels.txt': 'labels.txt',
    labels: 'the largest label + 1',
    'class folders': 'the class folders',
  };
  const names = classes.labelNames ? `: ${preview(classes.labelNames)}` : '';
  return {
    dir: root,
    layout: 'vtab-lists',
    task: classes.task,
    numClasses: classes.numClasses,
    ...(classes.labelNames ? { labelNames: classes.labelNames } : {}),
    classCountSource: classes.classCountSource,
    imageSize,
    splits,
    description: `VTAB-1k lists (${splits.map((s) => `${s}.txt`).join(', ')}); ${classes.numClasses} classes from ${origin[classes.classCountSource]}${names}`,
    split: (name) => openSplit(root, name, options),
  };
}

interface TreeImage {
  path: string;
  label: number;
}

async function openTreeDataset(root: string, options: OpenSplitOptions, imageSize: number): Promise<VtabDataset> {
  const folders = new Map<TreeFolder, Map<string, string[]>>();
  for (const folder of TREE_FOLDERS) {
    const path = join(root, folder);
    if (await isDirectory(path)) folders.set(folder, await scanSplitFolder(path));
  }
  const classNames = [...new Set([...folders.values()].flatMap((classes) => [...classes.keys()]))].sort(byCodePoint);
  const task = options.task ?? basename(root);
  if (options.numClasses !== undefined && options.numClasses !== classNames.length) {
    throw new DatasetLayoutError(root, `has ${classNames.length} class folders (${preview(classNames)}) but numClasses ${options.numClasses} was given`);
  }
  const labelOf = new Map(classNames.map((name, label) => [name, label]));
  const imagesOf = (folder: TreeFolder): TreeImage[] => {
    const classes = folders.get(folder);
    if (classes === undefined) return [];
    return [...classes.keys()].sort(byCodePoint).flatMap((name) => classes.get(name)!.map((path) => ({ path, label: labelOf.get(name)! })));
  };

  const hasVal = folders.has('val');
  const train = imagesOf('train');
  const { kept, heldOut } = hasVal ? { kept: train, heldOut: [] } : holdOut(train, classNames);
  const sources: Record<VtabSplitName, { images: TreeImage[]; folders: TreeFolder[] }> = {
    train800: { images: kept, folders: ['train'] },
    val200: hasVal ? { images: imagesOf('val'), folders: ['val'] } : { images: heldOut, folders: ['train'] },
    train800val200: { images: [...train, ...imagesOf('val')], folders: hasVal ? ['train', 'val'] : ['train'] },
    test: { images: imagesOf('test'), folders: ['test'] },
  };
  const splits = VTAB_SPLITS.filter((split) => sources[split].folders.every((folder) => folders.has(folder)));
  const counts = [...folders.entries()].map(([folder, classes]) => `${folder}/ ${[...classes.values()].reduce((n, files) => n + files.length, 0)} images`);
  const valNote = hasVal ? '' : `; no val/: val200 is ${100 * HELD_OUT_FRACTION}% of each class of train/ (fixed seed), train800 the rest`;
  const params = resolvePreprocess(options);

  return {
    dir: root,
    layout: 'image-folder',
    task,
    numClasses: classNames.length,
    labelNames: classNames,
    classCountSource: 'class folders',
    imageSize,
    splits,
    description: `image-folder tree (${counts.join(', ')}${valNote}); ${classNames.length} classes from the folder names: ${preview(classNames)}`,
    async split(name) {
      const source = sources[name];
      if (source === undefined) throw new RangeError(`unknown split "${name}"; use one of ${VTAB_SPLITS.join(', ')}`);
      const missing = source.folders.find((folder) => !folders.has(folder));
      if (missing !== undefined) {
        throw new SplitFileMissingError(join(root, missing), `split folder not found, needed for ${name} (${TREE_SHAPE})`);
      }
      const entries: ListEntry[] = source.images.map((image) => ({ path: relative(root, image.path), label: image.label, line: 0 }));
      return createSplit(
        {
          task,
          split: name,
          taskDir: root,
          listFile: join(root, source.folders[0]),
          layout: 'image-folder',
          numClasses: classNames.length,
          labelNames: classNames,
          classCountSource: 'class folders',
          entries,
          paths: source.images.map((image) => image.path),
        },
        params,
        options,
      );
    },
  };
}

/**
 * Reads `<split>/<class>/*` into class name -> sorted absolute image paths. Hidden entries (a
 * leading dot, e.g. .DS_Store) are skipped; anything else that is not a PNG or JPEG image in a
 * class folder is an error naming it, checked by extension and by the file's leading bytes.
 */
async function scanSplitFolder(folder: string): Promise<Map<string, string[]>> {
  const classes = new Map<string, string[]>();
  for (const name of (await visibleEntries(folder)).sort(byCodePoint)) {
    const classDir = join(folder, name);
    if (!(await isDirectory(classDir))) {
      throw new DatasetLayoutError(classDir, `is a file directly in ${basename(folder)}/; ${TREE_SHAPE}`);
    }
    const files: string[] = [];
    for (const file of (await visibleEntries(classDir)).sort(byCodePoint)) {
      const path = join(classDir, file);
      if (await isDirectory(path)) throw new DatasetLayoutError(path, 'is a folder inside a class folder; put the images directly in the class folder');
      if (!IMAGE_EXTENSIONS.has(extname(file).toLowerCase())) {
        throw new DatasetLayoutError(path, 'not an image (a class folder holds .png, .jpg or .jpeg files only)');
      }
      files.push(path);
    }
    if (files.length === 0) throw new DatasetLayoutError(classDir, 'class folder has no images');
    classes.set(name, files);
  }
  if (classes.size === 0) throw new DatasetLayoutError(folder, `has no class folders; ${TREE_SHAPE}`);
  await checkImageHeaders([...classes.values()].flat());
  return classes;
}

/** Refuses a file whose leading bytes are neither PNG nor JPEG now, rather than minutes into training. */
async function checkImageHeaders(paths: readonly string[]): Promise<void> {
  let next = 0;
  const bad: { index: number; reason: string }[] = [];
  const checkNext = async (): Promise<void> => {
    while (next < paths.length) {
      const index = next++;
      const handle = await open(paths[index], 'r');
      try {
        const head = new Uint8Array(8);
        const { bytesRead } = await handle.read(head, 0, 8, 0);
        if (sniffImageFormat(head.subarray(0, bytesRead)) === undefined) {
          bad.push({ index, reason: bytesRead === 0 ? 'the file is empty' : 'not a JPEG or PNG file (unrecognised leading bytes)' });
        }
      } finally {
        await handle.close();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(32, paths.length) }, checkNext));
  if (bad.length > 0) {
    const first = bad.reduce((a, b) => (a.index < b.index ? a : b));
    throw new ImageDecodeError(undefined, undefined, paths[first.index], first.reason);
  }
}

/** Per class, a fixed HELD_OUT_FRACTION of train/ (by a seeded draw) goes to val200; order is kept. */
function holdOut(train: readonly TreeImage[], classNames: readonly string[]): { kept: TreeImage[]; heldOut: TreeImage[] } {
  const held = new Set<TreeImage>();
  classNames.forEach((name, label) => {
    const members = train.filter((image) => image.label === label);
    const count = Math.min(Math.round(HELD_OUT_FRACTION * members.length), members.length - 1);
    const order = seededPermutation(members.length, deriveSeed(HELD_OUT_SEED, 'val200', name));
    for (let i = 0; i < count; i++) held.add(members[order[i]]);
  });
  return { kept: train.filter((image) => !held.has(image)), heldOut: train.filter((image) => held.has(image)) };
}

async function visibleEntries(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => !name.startsWith('.'));
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

/** Python's sorted() order for str: by Unicode code point (JavaScript's < compares UTF-16 units). */
function byCodePoint(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function preview(names: readonly string[]): string {
  return names.length > 8 ? `${names.slice(0, 8).join(', ')}, ... (${names.length})` : names.join(', ');
}
