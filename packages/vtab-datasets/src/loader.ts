import { access, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { DecodePool, defaultWorkerScript, resolveWorkerCount } from './decode-pool.js';
import { DatasetLayoutError, ImageDecodeError, ImageMissingError, LabelOutOfRangeError, UnknownTaskError } from './errors.js';
import { decodeAndPreprocessInto, ImageLoadFailure, readImageBytes } from './image-file.js';
import { isNotFound, readSplitList, VTAB_SPLITS, type ListEntry, type VtabSplitName } from './list.js';
import { resolvePreprocess, type PreprocessOptions, type PreprocessParams } from './preprocess.js';
import { getTask, isKnownTask, MINI_SUITE_TASK_NAMES, VTAB_1K_TASK_NAMES } from './registry.js';
import { seededPermutation } from './rng.js';

export interface OpenSplitOptions extends PreprocessOptions {
  /** Task name for the class count; defaults to the task folder's name. An unknown explicit name is an error. */
  task?: string;
  /**
   * Class count. For a known task it must match the registry. For any other folder it overrides
   * the count taken from labels.txt or from the labels (max label + 1 over every list file); labels
   * must still fall below it.
   */
  numClasses?: number;
  /** Check at open time that every listed image exists (default true). */
  checkFiles?: boolean;
  /** Receives warnings such as classes missing from the split. Default console.warn. */
  onWarning?: (message: string) => void;
  /** Decode worker threads: 'auto' (default) uses up to 4 when the compiled worker is available; 0 decodes on the main thread. */
  decodeWorkers?: number | 'auto';
  /** Path or URL of decode-worker.js, for bundled setups where it is not next to this module. */
  workerScript?: string | URL;
}

export interface BatchOptions {
  /** Visit the examples in a seeded random order (default false: list order). */
  shuffle?: boolean;
  /** Shuffle seed (default 0). Use e.g. baseSeed + epoch for a fresh order each epoch. */
  seed?: number;
  /** Batches read and decoded ahead of the one being consumed (default 2; 0 = load on demand). */
  prefetch?: number;
  /** Skip a final batch smaller than batchSize (default false). */
  dropLast?: boolean;
}

export interface VtabBatch {
  /** [B, 3, S, S] float32, normalised. */
  readonly images: Float32Array;
  readonly labels: Int32Array;
  /** Positions of the batch's examples in the split list. */
  readonly indices: Int32Array;
}

/** How a data folder is laid out: VTAB-1k lists (`train800.txt`, ...) or `train/<class>/*.png`. */
export type DatasetLayout = 'vtab-lists' | 'image-folder';

/** Where a split's class count came from. */
export type ClassCountSource = 'registry' | 'numClasses' | 'labels.txt' | 'labels' | 'class folders';

export interface VtabSplit {
  readonly task: string;
  readonly split: VtabSplitName;
  readonly taskDir: string;
  /** The list file (VTAB lists) or the split's folder (image-folder tree; the first one for train800val200). */
  readonly listFile: string;
  readonly layout: DatasetLayout;
  /** Class names by label, when known: labels.txt (VTAB lists) or the class folders (image-folder tree). */
  readonly labelNames?: readonly string[];
  readonly classCountSource: ClassCountSource;
  /** Number of examples. */
  readonly size: number;
  readonly numClasses: number;
  readonly imageSize: number;
  readonly labels: Int32Array;
  /** Absolute image paths, in list order. */
  readonly paths: readonly string[];
  /** Examples per class, length numClasses. */
  readonly classCounts: Int32Array;
  /** Warnings raised while opening (also passed to onWarning). */
  readonly warnings: readonly string[];
  batches(batchSize: number, options?: BatchOptions): AsyncIterable<VtabBatch>;
  /** All images as one [N, 3, S, S] array (N * 3 * S * S * 4 bytes: 600 MB for 1000 images at 224). */
  loadAll(options?: { prefetch?: number }): Promise<{ images: Float32Array; labels: Int32Array }>;
  /** One preprocessed image [3, S, S], decoded on the calling thread. */
  image(index: number): Promise<Float32Array>;
}

/**
 * Opens `<taskDir>/<split>.txt` of a VTAB-1k style folder: parses and validates the list (labels in
 * range, images present), counts classes, and returns a split that streams preprocessed batches.
 */
export async function openSplit(taskDir: string, split: VtabSplitName, options: OpenSplitOptions = {}): Promise<VtabSplit> {
  const dir = resolve(taskDir);
  const params = resolvePreprocess(options);
  const { file, entries } = await readSplitList(dir, split);
  const classes = await resolveListClasses(dir, options, { file, entries });
  const { task, numClasses } = classes;
  for (const entry of entries) {
    if (entry.label < 0 || entry.label >= numClasses) {
      throw new LabelOutOfRangeError(file, entry.line, entry.label, numClasses, task);
    }
  }
  const paths = entries.map((e) => resolve(dir, e.path));
  if (options.checkFiles ?? true) await checkImagesExist(file, entries, paths);
  return createSplit({ ...classes, split, taskDir: dir, listFile: file, layout: 'vtab-lists', entries, paths }, params, options);
}

/** What every split needs besides its examples; shared by both layouts. */
export interface SplitSource {
  task: string;
  split: VtabSplitName;
  taskDir: string;
  listFile: string;
  layout: DatasetLayout;
  numClasses: number;
  labelNames?: readonly string[];
  classCountSource: ClassCountSource;
  /** Examples in order; `line` is 0 for an image-folder tree (errors then name only the image). */
  entries: readonly ListEntry[];
  /** Absolute image paths, parallel to entries. */
  paths: string[];
}

/** Counts classes, raises the missing-class warnings, and picks the decode workers. Labels are already checked. */
export function createSplit(source: SplitSource, params: PreprocessParams, options: OpenSplitOptions): VtabSplit {
  const labels = Int32Array.from(source.entries, (e) => e.label);
  const classCounts = new Int32Array(source.numClasses);
  for (const label of labels) classCounts[label]++;
  const warnings = classCountWarnings(source.listFile, classCounts);
  const warn = options.onWarning ?? ((message: string) => console.warn(message));
  for (const message of warnings) warn(message);

  const workerScript = options.workerScript ?? defaultWorkerScript();
  const workerCount = resolveWorkerCount(options.decodeWorkers, workerScript === undefined ? undefined : String(workerScript));
  return new FolderSplit({ ...source, params, labels, classCounts, warnings, workerScript, workerCount });
}

export const LABELS_FILE = 'labels.txt';

/**
 * The class count of a VTAB list folder, in this order: the registry for a known task (folder name
 * or `task`), else `numClasses`, else the lines of labels.txt, else max label + 1 over every list
 * file in the folder (so train800 and test agree even when one lacks the top class).
 */
export async function resolveListClasses(
  dir: string,
  options: OpenSplitOptions,
  opened?: { file: string; entries: readonly ListEntry[] },
): Promise<{ task: string; numClasses: number; labelNames?: string[]; classCountSource: ClassCountSource }> {
  const task = options.task ?? basename(dir);
  if (options.numClasses !== undefined && (!Number.isInteger(options.numClasses) || options.numClasses < 1)) {
    throw new RangeError(`numClasses must be a positive integer, got ${options.numClasses}`);
  }
  const labelNames = await readLabelNames(dir);
  const labelsFile = join(dir, LABELS_FILE);
  const checkNames = (numClasses: number, origin: string) => {
    if (labelNames !== undefined && labelNames.length !== numClasses) {
      throw new DatasetLayoutError(labelsFile, `has ${labelNames.length} class names but ${origin} has ${numClasses} classes`);
    }
  };
  if (isKnownTask(task)) {
    const numClasses = getTask(task).numClasses;
    if (options.numClasses !== undefined && options.numClasses !== numClasses) {
      throw new RangeError(`task "${task}" has ${numClasses} classes but numClasses ${options.numClasses} was given`);
    }
    checkNames(numClasses, `task "${task}"`);
    return { task, numClasses, labelNames, classCountSource: 'registry' };
  }
  if (options.task !== undefined && options.numClasses === undefined) {
    throw new UnknownTaskError(
      task,
      `; known tasks: ${[...new Set([...MINI_SUITE_TASK_NAMES, ...VTAB_1K_TASK_NAMES])].join(', ')}; leave out {task} to take the class count from the labels, or pass {numClasses}`,
    );
  }
  if (options.numClasses !== undefined) {
    checkNames(options.numClasses, 'numClasses');
    return { task, numClasses: options.numClasses, labelNames, classCountSource: 'numClasses' };
  }
  if (labelNames !== undefined) return { task, numClasses: labelNames.length, labelNames, classCountSource: 'labels.txt' };
  let top: { label: number; file: string; line: number } | undefined;
  for (const { file, entries } of await readPresentLists(dir, opened)) {
    for (const entry of entries) {
      if (entry.label < 0) throw new LabelOutOfRangeError(file, entry.line, entry.label, Math.max(1, (top?.label ?? 0) + 1), task);
      if (top === undefined || entry.label > top.label) top = { label: entry.label, file, line: entry.line };
    }
  }
  if (top === undefined) throw new DatasetLayoutError(dir, `no list file (${VTAB_SPLITS.map((s) => `${s}.txt`).join(', ')})`);
  return { task, numClasses: top.label + 1, classCountSource: 'labels' };
}

/** Every VTAB list file present in the folder, parsed (the one already open is reused). */
async function readPresentLists(dir: string, opened?: { file: string; entries: readonly ListEntry[] }): Promise<{ file: string; entries: readonly ListEntry[] }[]> {
  const lists = [];
  for (const split of VTAB_SPLITS) {
    const file = join(dir, `${split}.txt`);
    if (opened?.file === file) lists.push(opened);
    else if (await access(file).then(() => true, () => false)) lists.push(await readSplitList(dir, split));
  }
  return lists;
}

/**
 * Class names from `<dir>/labels.txt`, one per line in label order (line 1 is label 0); trailing
 * blank lines are ignored, a blank or repeated name in between is an error naming the line.
 */
export async function readLabelNames(dir: string): Promise<string[] | undefined> {
  const file = join(dir, LABELS_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
  const names = text.split('\n').map((line) => line.trim());
  while (names.length > 0 && names.at(-1) === '') names.pop();
  if (names.length === 0) throw new DatasetLayoutError(file, 'is empty (expected one class name per line, label 0 first)');
  const seen = new Map<string, number>();
  names.forEach((name, i) => {
    if (name === '') throw new DatasetLayoutError(`${file}:${i + 1}`, 'blank class name (one name per line, label 0 first)');
    if (seen.has(name)) throw new DatasetLayoutError(`${file}:${i + 1}`, `class name "${name}" repeats line ${seen.get(name)! + 1}`);
    seen.set(name, i);
  });
  return names;
}

/** Warns when a split lacks some classes; VTAB-1k's train800 can legitimately miss a few of 397. */
export function classCountWarnings(file: string, classCounts: Int32Array): string[] {
  const missing: number[] = [];
  classCounts.forEach((count, label) => {
    if (count === 0) missing.push(label);
  });
  if (missing.length === 0) return [];
  const shown = missing.length > 20 ? `${missing.slice(0, 20).join(', ')}, ...` : missing.join(', ');
  return [`${file}: ${missing.length} of ${classCounts.length} classes have no examples: ${shown}`];
}

async function checkImagesExist(file: string, entries: readonly ListEntry[], paths: readonly string[]): Promise<void> {
  const present = new Uint8Array(paths.length);
  let next = 0;
  const checkNext = async (): Promise<void> => {
    while (next < paths.length) {
      const i = next++;
      present[i] = await access(paths[i]).then(() => 1, () => 0);
    }
  };
  await Promise.all(Array.from({ length: Math.min(64, paths.length) }, checkNext));
  const first = present.indexOf(0);
  if (first >= 0) throw new ImageMissingError(file, entries[first].line, paths[first]);
}

interface FolderSplitInit extends SplitSource {
  params: PreprocessParams;
  labels: Int32Array;
  classCounts: Int32Array;
  warnings: string[];
  workerScript: string | URL | undefined;
  workerCount: number;
}

/** Loads one image into a batch buffer; implemented on the main thread or by a worker pool. */
interface ImageLoader {
  /** Skips the work (leaving zeros) once `isCancelled()` turns true: the batch is being thrown away. */
  loadInto(path: string, out: Float32Array, offset: number, isCancelled?: () => boolean): Promise<void>;
  close(): Promise<void>;
}

class FolderSplit implements VtabSplit {
  readonly task: string;
  readonly split: VtabSplitName;
  readonly taskDir: string;
  readonly listFile: string;
  readonly layout: DatasetLayout;
  readonly labelNames?: readonly string[];
  readonly classCountSource: ClassCountSource;
  readonly size: number;
  readonly numClasses: number;
  readonly imageSize: number;
  readonly labels: Int32Array;
  readonly paths: readonly string[];
  readonly classCounts: Int32Array;
  readonly warnings: readonly string[];
  private readonly params: PreprocessParams;
  private readonly entries: readonly ListEntry[];
  private readonly workerScript: string | URL | undefined;
  private readonly workerCount: number;

  constructor(init: FolderSplitInit) {
    this.task = init.task;
    this.split = init.split;
    this.taskDir = init.taskDir;
    this.listFile = init.listFile;
    this.layout = init.layout;
    if (init.labelNames !== undefined) this.labelNames = init.labelNames;
    this.classCountSource = init.classCountSource;
    this.size = init.entries.length;
    this.numClasses = init.numClasses;
    this.imageSize = init.params.imageSize;
    this.labels = init.labels;
    this.paths = init.paths;
    this.classCounts = init.classCounts;
    this.warnings = init.warnings;
    this.params = init.params;
    this.entries = init.entries;
    this.workerScript = init.workerScript;
    this.workerCount = init.workerCount;
  }

  async *batches(batchSize: number, options: BatchOptions = {}): AsyncGenerator<VtabBatch> {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    const prefetch = options.prefetch ?? 2;
    if (!Number.isInteger(prefetch) || prefetch < 0) throw new RangeError(`prefetch must be a non-negative integer, got ${prefetch}`);
    const order = options.shuffle ? seededPermutation(this.size, options.seed ?? 0) : Int32Array.from({ length: this.size }, (_, i) => i);
    const batchCount = options.dropLast ? Math.floor(this.size / batchSize) : Math.ceil(this.size / batchSize);

    const loader = this.createLoader();
    const cancelled = { value: false };
    const inFlight: Promise<VtabBatch>[] = [];
    let launched = 0;
    try {
      for (let consumed = 0; consumed < batchCount; consumed++) {
        // keep the batch about to be consumed plus `prefetch` more in flight
        while (launched < batchCount && launched <= consumed + prefetch) {
          const indices = order.slice(launched * batchSize, Math.min((launched + 1) * batchSize, this.size));
          const batch = this.loadBatch(indices, loader, cancelled);
          batch.catch(() => {}); // a failure surfaces when this batch is awaited, never as an unhandled rejection
          inFlight.push(batch);
          launched++;
        }
        yield await inFlight.shift()!;
      }
    } finally {
      cancelled.value = true;
      await loader.close();
    }
  }

  async loadAll(options: { prefetch?: number } = {}): Promise<{ images: Float32Array; labels: Int32Array }> {
    const perImage = 3 * this.imageSize * this.imageSize;
    const images = new Float32Array(this.size * perImage);
    for await (const batch of this.batches(64, { prefetch: options.prefetch })) {
      images.set(batch.images, batch.indices[0] * perImage);
    }
    return { images, labels: this.labels.slice() };
  }

  async image(index: number): Promise<Float32Array> {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) throw new RangeError(`image index ${index} outside [0, ${this.size})`);
    const out = new Float32Array(3 * this.imageSize * this.imageSize);
    await this.loadOne(mainThreadLoader(this.params), index, out, 0);
    return out;
  }

  private createLoader(): ImageLoader {
    if (this.workerCount > 0 && this.workerScript !== undefined) return workerPoolLoader(this.workerScript, this.workerCount, this.params);
    return mainThreadLoader(this.params);
  }

  private async loadBatch(indices: Int32Array, loader: ImageLoader, cancelled: { value: boolean }): Promise<VtabBatch> {
    const perImage = 3 * this.imageSize * this.imageSize;
    const images = new Float32Array(indices.length * perImage);
    const labels = new Int32Array(indices.length);
    await Promise.all(
      Array.from(indices, (index, slot) => {
        labels[slot] = this.labels[index];
        return this.loadOne(loader, index, images, slot * perImage, () => cancelled.value);
      }),
    );
    return { images, labels, indices };
  }

  /** Loads example `index` and turns an image failure into an error naming the list line. */
  private async loadOne(
    loader: ImageLoader,
    index: number,
    out: Float32Array,
    offset: number,
    isCancelled?: () => boolean,
  ): Promise<void> {
    try {
      await loader.loadInto(this.paths[index], out, offset, isCancelled);
    } catch (error) {
      if (!(error instanceof ImageLoadFailure)) throw error;
      // an image-folder tree has no list line: the error names the image alone
      const line = this.entries[index].line;
      const file = line > 0 ? this.listFile : undefined;
      if (error.kind === 'missing') throw new ImageMissingError(file, line > 0 ? line : undefined, this.paths[index]);
      throw new ImageDecodeError(file, line > 0 ? line : undefined, this.paths[index], error.reason);
    }
  }
}

function mainThreadLoader(params: PreprocessParams): ImageLoader {
  return {
    async loadInto(path, out, offset, isCancelled) {
      if (isCancelled?.()) return;
      const bytes = await readImageBytes(path);
      // decode in its own macrotask so I/O callbacks of the consumer can run between images
      await nextMacrotask();
      if (isCancelled?.()) return;
      decodeAndPreprocessInto(bytes, params, out, offset);
    },
    async close() {},
  };
}

function workerPoolLoader(script: string | URL, count: number, params: PreprocessParams): ImageLoader {
  const pool = new DecodePool(script, count);
  return {
    async loadInto(path, out, offset, isCancelled) {
      if (isCancelled?.()) return;
      out.set(await pool.load(path, params), offset);
    },
    close: () => pool.close(),
  };
}
