import * as tf from '@tensorflow/tfjs';
import { untaped, type DataSource, type Hook, type LabeledBatch, type VisionTransformer, type VitConfig } from '@vqt/core';
import { DEFAULT_POOLING, DEFAULT_TARGET_SIZE, validatePooling, type Head2ToePooling } from './config.js';
import { tokenPoolingFor, type TokenPooling } from './pooling.js';
import { Head2ToeTapHook } from './tap-hook.js';
import { featureLayout, geometryOf, isTokenTap, layoutWidth, tapTokenRanges, type TapGeometry, type TapLayout } from './taps.js';

/** A batch of images: [B, 3, S, S] NCHW float32 (normalised), as a host array or a tensor. */
export interface ImageBatch extends LabeledBatch {
  images: Float32Array | tf.Tensor4D;
}

/**
 * Where extractAll reads images: any (async) iterable of batches (e.g. a VTAB split's batches(32)),
 * or a DataSource (read once in order; its batch tensors are disposed after use, as the trainer does).
 */
export type ImageSource = AsyncIterable<ImageBatch> | Iterable<ImageBatch> | DataSource<ImageBatch>;

/** Cached features: row-major [count, width] on the host, one row per image. */
export interface ExtractedFeatures {
  features: Float32Array;
  labels: Int32Array;
  count: number;
  width: number;
  /** Target size they were pooled with. */
  targetSize: number;
  /** Taps and pooling rule they were extracted with. */
  pooling: Head2ToePooling;
  /** When extracted with `columns`: the full-feature index of each stored column. */
  columns?: Int32Array;
}

export interface ExtractAllOptions {
  /** Batch size when reading a DataSource (default 32); iterables keep their own batches. */
  batchSize?: number;
  /** Store only these feature columns (e.g. a trained model's kept indices for an evaluation set). */
  columns?: Int32Array;
  /** Called after every batch with the images done so far (and the total when known). */
  onBatch?: (done: number, total?: number) => void;
}

export interface ExtractorOptions {
  /** Target size S per token tap (default DEFAULT_TARGET_SIZE). */
  targetSize?: number;
  /** Taps and pooling rule (default 'official'; 'adaptive' for adapters written before it existed). */
  pooling?: Head2ToePooling;
  /**
   * Extra hooks run in the same forward, e.g. a tuned AdaptFormer or LoRA whose adapted features
   * Head2Toe then reads. They must keep the token count (prompt tokens would change every tap's L).
   */
  hooks?: readonly Hook[];
}

/**
 * Head2Toe features of a frozen ViT: taps pooled over tokens, L2-normalised per tap, concatenated.
 * Inference only: it runs off the gradient tape, so features can be computed once and cached.
 */
export class Head2ToeExtractor {
  readonly targetSize: number;
  readonly pooling: Head2ToePooling;
  readonly geometry: TapGeometry;
  /** Which columns of the feature vector come from which tap. */
  readonly layout: readonly TapLayout[];
  private readonly poolings = new Map<string, TokenPooling>();
  private readonly extraHooks: readonly Hook[];

  constructor(config: VitConfig, options: ExtractorOptions = {}) {
    this.targetSize = options.targetSize ?? DEFAULT_TARGET_SIZE;
    this.pooling = options.pooling ?? DEFAULT_POOLING;
    validatePooling(this.pooling);
    this.geometry = geometryOf(config);
    this.layout = featureLayout(this.geometry, this.targetSize, this.pooling);
    this.extraHooks = options.hooks ?? [];
    // Taps with the same token ranges (same channel count) share one pooling matrix.
    const shared = new Map<string, TokenPooling>();
    for (const entry of this.layout) {
      if (!isTokenTap(entry.point)) continue;
      const ranges = tapTokenRanges(entry, this.geometry.tokens);
      const key = JSON.stringify(ranges);
      let pooling = shared.get(key);
      if (!pooling) {
        pooling = tokenPoolingFor(this.geometry.tokens, ranges);
        if (pooling instanceof tf.Tensor) tf.keep(pooling);
        shared.set(key, pooling);
      }
      this.poolings.set(entry.name, pooling);
    }
  }

  /** Feature width F. */
  get width(): number {
    return layoutWidth(this.layout);
  }

  /** Each tap's name, slice of the feature vector and pooling. */
  featureLayout(): TapLayout[] {
    return this.layout.map((entry) => ({ ...entry }));
  }

  /** A fresh hook for one forward of your own (read hook.features() in the same tf.tidy). */
  createHook(): Head2ToeTapHook {
    return new Head2ToeTapHook(this.layout, this.poolings, this.pooling);
  }

  /** [B, F] features of images [B, 3, S, S]. The caller owns the result. */
  extract(vit: VisionTransformer, images: tf.Tensor4D): tf.Tensor2D {
    this.checkBackbone(vit);
    return untaped(() =>
      tf.tidy(() => {
        const hook = this.createHook();
        vit.forward(images, { hooks: [...this.extraHooks, hook] });
        return hook.features();
      }),
    );
  }

  /** Features of every image in a source, one batch at a time; only the [B, F] rows are kept. */
  async extractAll(vit: VisionTransformer, source: ImageSource, options: ExtractAllOptions = {}): Promise<ExtractedFeatures> {
    this.checkBackbone(vit);
    const columns = options.columns;
    if (columns) validateColumns(columns, this.width);
    const width = columns ? columns.length : this.width;
    const size = vit.config.imageSize;
    const total = isDataSource(source) ? source.size : undefined;
    const rows = new RowCollector(width, total);
    const labels: Int32Array[] = [];
    let done = 0;
    for await (const batch of batchesOf(source, options.batchSize ?? 32)) {
      const count = batch.labels.length;
      const images = batch.images instanceof tf.Tensor ? batch.images : imagesTensor(batch.images, count, size);
      try {
        const features = this.extract(vit, images);
        const values = (await features.data()) as Float32Array;
        features.dispose();
        rows.add(columns ? selectColumns(values, this.width, columns) : values);
        labels.push(Int32Array.from(batch.labels));
      } finally {
        if (images !== batch.images) images.dispose();
        if (isDataSource(source)) tf.dispose(batch as unknown as tf.TensorContainer);
      }
      done += count;
      options.onBatch?.(done, total);
    }
    return { features: rows.finish(done), labels: concatInt32(labels, done), count: done, width, targetSize: this.targetSize, pooling: this.pooling, ...(columns ? { columns: Int32Array.from(columns) } : {}) };
  }

  /** Frees the pooling matrices. */
  dispose(): void {
    tf.dispose([...new Set(this.poolings.values())].filter((p): p is tf.Tensor2D => p instanceof tf.Tensor));
    this.poolings.clear();
  }

  private checkBackbone(vit: VisionTransformer): void {
    const g = geometryOf(vit.config);
    const mine = this.geometry;
    if (g.dim !== mine.dim || g.depth !== mine.depth || g.mlpRatio !== mine.mlpRatio || g.tokens !== mine.tokens) {
      throw new Error(
        `head2toe: extractor built for dim ${mine.dim}, depth ${mine.depth}, mlpRatio ${mine.mlpRatio}, ${mine.tokens} tokens; ` +
          `the backbone has dim ${g.dim}, depth ${g.depth}, mlpRatio ${g.mlpRatio}, ${g.tokens} tokens`,
      );
    }
  }
}

function isDataSource(source: ImageSource): source is DataSource<ImageBatch> {
  return typeof (source as DataSource<ImageBatch>).batches === 'function' && typeof (source as DataSource<ImageBatch>).size === 'number';
}

function batchesOf(source: ImageSource, batchSize: number): AsyncIterable<ImageBatch> | Iterable<ImageBatch> {
  return isDataSource(source) ? source.batches(batchSize, { shuffle: false, seed: 0, epoch: 0 }) : source;
}

function imagesTensor(images: Float32Array, count: number, size: number): tf.Tensor4D {
  if (images.length !== count * 3 * size * size) {
    throw new Error(`head2toe: a batch of ${count} labels has ${images.length} image values, expected ${count} x 3 x ${size} x ${size}`);
  }
  return tf.tensor4d(images, [count, 3, size, size]);
}

function validateColumns(columns: Int32Array, width: number): void {
  for (const c of columns) if (!Number.isInteger(c) || c < 0 || c >= width) throw new Error(`head2toe: column ${c} is outside [0, ${width})`);
}

/** rows[:, columns] of a row-major [n, width] matrix, on the host (tf.gather is slow on wasm). */
export function selectColumns(values: Float32Array, width: number, columns: Int32Array): Float32Array {
  const n = values.length / width;
  if (!Number.isInteger(n)) throw new Error(`selectColumns: ${values.length} values are not rows of width ${width}`);
  const k = columns.length;
  const out = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    const row = i * width;
    for (let j = 0; j < k; j++) out[i * k + j] = values[row + columns[j]];
  }
  return out;
}

/** Accumulates rows: straight into one array when the row count is known (no 2x peak), else in chunks. */
class RowCollector {
  private readonly preallocated?: Float32Array;
  private readonly chunks: Float32Array[] = [];
  /** Values written into `preallocated`; later rows (more than expected) go to chunks. */
  private preFilled = 0;

  constructor(
    private readonly width: number,
    expectedRows?: number,
  ) {
    if (expectedRows !== undefined) this.preallocated = new Float32Array(expectedRows * width);
  }

  add(values: Float32Array): void {
    if (this.preallocated && this.chunks.length === 0 && this.preFilled + values.length <= this.preallocated.length) {
      this.preallocated.set(values, this.preFilled);
      this.preFilled += values.length;
    } else {
      this.chunks.push(values);
    }
  }

  finish(rows: number): Float32Array {
    const length = rows * this.width;
    if (this.preallocated && this.chunks.length === 0) return this.preallocated.length === length ? this.preallocated : this.preallocated.slice(0, length);
    if (!this.preallocated && this.chunks.length === 1) return this.chunks[0];
    const out = new Float32Array(length);
    let at = 0;
    if (this.preallocated) {
      out.set(this.preallocated.subarray(0, this.preFilled));
      at = this.preFilled;
    }
    for (const chunk of this.chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }
}

function concatInt32(parts: Int32Array[], length: number): Int32Array {
  const out = new Int32Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
