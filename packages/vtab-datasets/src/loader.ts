import { access } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { DecodePool, defaultWorkerScript, resolveWorkerCount } from './decode-pool.js';
import { ImageDecodeError, ImageMissingError, LabelOutOfRangeError, UnknownTaskError } from './errors.js';
import { decodeAndPreprocessInto, ImageLoadFailure, readImageBytes } from './image-file.js';
import { readSplitList, type ListEntry, type VtabSplitName } from './list.js';
import { resolvePreprocess, type PreprocessOptions, type PreprocessParams } from './preprocess.js';
import { getTask, isKnownTask, MINI_SUITE_TASK_NAMES, VTAB_1K_TASK_NAMES } from './registry.js';
import { seededPermutation } from './rng.js';

export interface OpenSplitOptions extends PreprocessOptions {
  /** Task name for the class count; defaults to the task folder's name. */
  task?: string;
  /** Class count for a task outside the registry (must match the registry for a known task). */
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

export interface VtabSplit {
  readonly task: string;
  readonly split: VtabSplitName;
  readonly taskDir: string;
  readonly listFile: string;
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
  const { task, numClasses } = resolveTask(dir, options);
  const { file, entries } = await readSplitList(dir, split);
  for (const entry of entries) {
    if (entry.label < 0 || entry.label >= numClasses) {
      throw new LabelOutOfRangeError(file, entry.line, entry.label, numClasses, task);
    }
  }
  const paths = entries.map((e) => resolve(dir, e.path));
  if (options.checkFiles ?? true) await checkImagesExist(file, entries, paths);

  const labels = Int32Array.from(entries, (e) => e.label);
  const classCounts = new Int32Array(numClasses);
  for (const label of labels) classCounts[label]++;
  const warnings = classCountWarnings(file, classCounts);
  const warn = options.onWarning ?? ((message: string) => console.warn(message));
  for (const message of warnings) warn(message);

  const workerScript = options.workerScript ?? defaultWorkerScript();
  const workerCount = resolveWorkerCount(options.decodeWorkers, workerScript === undefined ? undefined : String(workerScript));
  return new FolderSplit({
    task, split, taskDir: dir, listFile: file, numClasses, params, entries, paths, labels, classCounts, warnings,
    workerScript, workerCount,
  });
}

function resolveTask(dir: string, options: OpenSplitOptions): { task: string; numClasses: number } {
  const task = options.task ?? basename(dir);
  if (isKnownTask(task)) {
    const numClasses = getTask(task).numClasses;
    if (options.numClasses !== undefined && options.numClasses !== numClasses) {
      throw new RangeError(`task "${task}" has ${numClasses} classes but numClasses ${options.numClasses} was given`);
    }
    return { task, numClasses };
  }
  if (options.numClasses !== undefined) {
    if (!Number.isInteger(options.numClasses) || options.numClasses < 1) {
      throw new RangeError(`numClasses must be a positive integer, got ${options.numClasses}`);
    }
    return { task, numClasses: options.numClasses };
  }
  const origin = options.task === undefined ? ` (the name of folder ${dir})` : '';
  throw new UnknownTaskError(
    task,
    `${origin}; known tasks: ${[...new Set([...MINI_SUITE_TASK_NAMES, ...VTAB_1K_TASK_NAMES])].join(', ')}; pass {numClasses} for other tasks`,
  );
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

interface FolderSplitInit {
  task: string;
  split: VtabSplitName;
  taskDir: string;
  listFile: string;
  numClasses: number;
  params: PreprocessParams;
  entries: readonly ListEntry[];
  paths: string[];
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
      const line = this.entries[index].line;
      if (error.kind === 'missing') throw new ImageMissingError(this.listFile, line, this.paths[index]);
      throw new ImageDecodeError(this.listFile, line, this.paths[index], error.reason);
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
