import * as tf from '@tensorflow/tfjs';
import { epochOrder, untaped, type DataSource, type Hook, type HookContext, type VisionTransformer } from '@vqt/core';
import type { SpillDtype } from './config.js';
import type { VqtCachedBatch } from './model.js';
import { RowStore } from './cache-store.js';
import type { HostImageBatch, HostImageBatches } from './sources.js';

export const DEFAULT_CACHE_BUDGET_BYTES = 1024 ** 3;

export interface FeatureCacheOptions {
  /** LN1 bytes held in memory before the cache moves to disk (default 1 GiB). */
  budgetBytes?: number;
  /** Where the spill directory is made (default: the OS temp directory). */
  dir?: string;
  /** Precision of spilled rows (default float32; float16 halves disk use and reads). */
  spillDtype?: SpillDtype;
  /** Leave the spill files on close (default: remove them). */
  keepFiles?: boolean;
  /** Number of images, when known: a cache that cannot fit goes to disk from the first chunk. */
  expectedImages?: number;
  /**
   * Frozen hooks of another method (e.g. a trained AdaptFormer) that run before the cache reads the
   * backbone: the cached LN1 outputs and CLS are those of the adapted model. Hooks that add tokens
   * (VPT's prompts) make a block's rows longer: the cache keeps each block's own length.
   */
  hooks?: readonly Hook[];
}

/** One batch read from the cache, still on the host. */
interface HostCachedBatch {
  ln1: Float32Array[];
  cls: Float32Array;
  labels: Int32Array;
}

/**
 * The frozen features VQT needs from each training image, computed once: LN1 output per block
 * [L, D] and the final CLS [D]. Without augmentation these never change, so every epoch trains
 * only the query path (vit.replaySideQueries) instead of running the backbone.
 *
 * A DataSource of cached batches with a seeded order per (seed, epoch). Call close() when done.
 */
export class FeatureCache implements DataSource<VqtCachedBatch> {
  private constructor(
    private readonly store: RowStore,
    /** Final CLS per image [size, D]. */
    readonly cls: Float32Array,
    readonly labels: Int32Array,
    /** Tokens per block (the backbone's 1 + N, plus whatever adapting hooks insert, e.g. prompts). */
    readonly blockTokens: readonly number[],
    readonly dim: number,
  ) {}

  /**
   * Runs the frozen backbone once over `source` (off any gradient tape), chunk by chunk: peak
   * memory is one chunk's activations plus what the budget allows.
   */
  static async build(vit: VisionTransformer, source: HostImageBatches, options: FeatureCacheOptions = {}): Promise<FeatureCache> {
    const { depth, dim, imageSize } = vit.config;
    const budgetBytes = options.budgetBytes ?? DEFAULT_CACHE_BUDGET_BYTES;
    // Made at the first batch, once each block's token count is known.
    let store: RowStore | undefined;
    let blockTokens: number[] = [];
    const cls: Float32Array[] = [];
    const labels: Int32Array[] = [];
    try {
      for await (const batch of source) {
        const rows = checkBatch(batch, imageSize);
        const { ln1, finalCls } = await frozenFeatures(vit, batch, rows, options.hooks ?? []);
        if (!store) {
          blockTokens = ln1.map((data) => data.length / (rows * dim));
          const rowFloats = blockTokens.map((t) => t * dim);
          const projected = (options.expectedImages ?? 0) * rowFloats.reduce((a, b) => a + b, 0) * 4;
          store = new RowStore(depth, rowFloats, {
            // A cache known not to fit skips the memory phase instead of writing it out later.
            budgetBytes: projected > budgetBytes ? 0 : budgetBytes,
            dir: options.dir,
            spillDtype: options.spillDtype ?? 'float32',
            keepFiles: options.keepFiles,
          });
        }
        store.append(ln1, rows);
        cls.push(finalCls);
        labels.push(Int32Array.from(batch.labels));
      }
      if (!store) throw new Error('FeatureCache.build: the source yielded no images');
      await store.finish();
    } catch (error) {
      await store?.close();
      throw error;
    }
    return new FeatureCache(store, concat(cls, Float32Array), concat(labels, Int32Array), blockTokens, dim);
  }

  get size(): number {
    return this.store.rows;
  }

  get depth(): number {
    return this.store.depth;
  }

  /** True when the LN1 rows live on disk. */
  get spilled(): boolean {
    return this.store.spilled;
  }

  get directory(): string | undefined {
    return this.store.directory;
  }

  /** LN1 bytes in memory and on disk (the CLS and labels are always in memory). */
  get bytes(): { memory: number; disk: number } {
    return { memory: this.store.memoryBytes, disk: this.store.diskBytes };
  }

  /** The cached examples at `indices`, as tensors (the caller, e.g. the trainer, disposes them). */
  async batch(indices: ArrayLike<number>): Promise<VqtCachedBatch> {
    return this.toTensors(await this.readHost(indices));
  }

  async *batches(batchSize: number, order: { shuffle: boolean; seed: number; epoch: number }): AsyncGenerator<VqtCachedBatch> {
    if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new Error(`FeatureCache: batchSize must be a positive integer (got ${batchSize})`);
    const indices = epochOrder(this.size, order);
    const starts = Array.from({ length: Math.ceil(this.size / batchSize) }, (_, i) => i * batchSize);
    const read = (start: number) => this.readHost(indices.subarray(start, Math.min(this.size, start + batchSize)));
    // Read the next batch while the current one trains: file reads run on libuv's threads.
    let next = starts.length > 0 ? read(starts[0]) : undefined;
    try {
      for (let i = 0; i < starts.length; i++) {
        const current = await next!;
        next = i + 1 < starts.length ? read(starts[i + 1]) : undefined;
        yield this.toTensors(current);
      }
    } finally {
      next?.catch(() => undefined); // a consumer that stops early leaves one read in flight
    }
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  private async readHost(indices: ArrayLike<number>): Promise<HostCachedBatch> {
    const rows = indices.length;
    const ln1 = this.blockTokens.map((tokens) => new Float32Array(rows * tokens * this.dim));
    await Promise.all(ln1.map((out, m) => this.store.read(m, indices, out)));
    const cls = new Float32Array(rows * this.dim);
    const labels = new Int32Array(rows);
    for (let i = 0; i < rows; i++) {
      const row = indices[i];
      cls.set(this.cls.subarray(row * this.dim, (row + 1) * this.dim), i * this.dim);
      labels[i] = this.labels[row];
    }
    return { ln1, cls, labels };
  }

  private toTensors(host: HostCachedBatch): VqtCachedBatch {
    const rows = host.labels.length;
    return {
      ln1: host.ln1.map((data, m) => tf.tensor3d(data, [rows, this.blockTokens[m], this.dim])),
      cls: tf.tensor2d(host.cls, [rows, this.dim]),
      labels: host.labels,
    };
  }
}

/** A read-only hook that keeps every block's LN1 output. */
function ln1Tap(depth: number): Hook & { ln1: tf.Tensor3D[] } {
  const ln1: tf.Tensor3D[] = new Array(depth);
  return {
    name: 'vqt-cache',
    ln1,
    tapPoints: ['ln1'],
    trainableVariables: () => [],
    tap(point, value, ctx: HookContext) {
      if (point === 'ln1') ln1[ctx.block] = ctx.keep(value as tf.Tensor3D);
    },
  };
}

async function frozenFeatures(vit: VisionTransformer, batch: HostImageBatch, rows: number, hooks: readonly Hook[]): Promise<{ ln1: Float32Array[]; finalCls: Float32Array }> {
  const size = vit.config.imageSize;
  const tap = ln1Tap(vit.config.depth);
  const tensors = untaped(() =>
    tf.tidy(() => {
      const images = tf.tensor4d(batch.images, [rows, 3, size, size]);
      const { cls } = vit.forward(images, { hooks: [...hooks, tap] });
      return [...tap.ln1, cls];
    }),
  );
  try {
    const values = await Promise.all(tensors.map(async (t) => ownBuffer((await t.data()) as Float32Array)));
    return { ln1: values.slice(0, -1), finalCls: values[values.length - 1] };
  } finally {
    tf.dispose(tensors);
  }
}

function checkBatch(batch: HostImageBatch, imageSize: number): number {
  const rows = batch.labels.length;
  if (batch.images.length !== rows * 3 * imageSize * imageSize) {
    throw new Error(`FeatureCache.build: a batch of ${rows} labels has ${batch.images.length} image values, expected [${rows}, 3, ${imageSize}, ${imageSize}]`);
  }
  return rows;
}

/** The memory store keeps these arrays: never keep a view into someone else's (e.g. the wasm heap's) buffer. */
function ownBuffer(values: Float32Array): Float32Array {
  return values.byteOffset === 0 && values.byteLength === values.buffer.byteLength ? values : values.slice();
}

function concat<T extends Float32Array | Int32Array>(parts: T[], Type: { new (length: number): T }): T {
  const out = new Type(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
