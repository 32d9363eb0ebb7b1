import * as tf from '@tensorflow/tfjs';
import { epochOrder, mixSeed, type DataSource } from '@vqt/core';
import type { VqtImageBatch } from './model.js';

/** Images on the host, NCHW float32 [B, 3, S, S] (already normalised), with their labels. */
export interface HostImageBatch {
  images: Float32Array;
  labels: Int32Array;
}

export type HostImageBatches = Iterable<HostImageBatch> | AsyncIterable<HostImageBatch>;

/** Anything that streams host image batches with a seeded order, e.g. @vqt/vtab-datasets' VtabSplit. */
export interface HostImageSplit {
  readonly size: number;
  /** Side of the square images; a VtabSplit has it. */
  readonly imageSize?: number;
  batches(batchSize: number, options?: { shuffle?: boolean; seed?: number }): AsyncIterable<HostImageBatch>;
}

/** Images held in memory as one NCHW array: a DataSource for the uncached path (augmentation, evaluation, tests). */
export class ImageArraySource implements DataSource<VqtImageBatch> {
  readonly size: number;
  private readonly imageFloats: number;

  constructor(
    readonly images: Float32Array,
    readonly labels: Int32Array,
    readonly imageSize: number,
  ) {
    this.size = labels.length;
    this.imageFloats = 3 * imageSize * imageSize;
    if (images.length !== this.size * this.imageFloats) {
      throw new Error(`ImageArraySource: ${images.length} values are not ${this.size} images of [3, ${imageSize}, ${imageSize}]`);
    }
  }

  async *batches(batchSize: number, order: { shuffle: boolean; seed: number; epoch: number }): AsyncGenerator<VqtImageBatch> {
    const indices = epochOrder(this.size, order);
    for (let start = 0; start < this.size; start += batchSize) {
      const rows = indices.subarray(start, Math.min(this.size, start + batchSize));
      const data = new Float32Array(rows.length * this.imageFloats);
      const labels = new Int32Array(rows.length);
      rows.forEach((row, i) => {
        data.set(this.images.subarray(row * this.imageFloats, (row + 1) * this.imageFloats), i * this.imageFloats);
        labels[i] = this.labels[row];
      });
      yield { images: tf.tensor4d(data, [rows.length, 3, this.imageSize, this.imageSize]), labels };
    }
  }
}

/** A host image split as a DataSource of image tensors; each epoch's order is seeded by (seed, epoch). */
export function splitImageSource(split: HostImageSplit, imageSize = split.imageSize): DataSource<VqtImageBatch> {
  if (!imageSize) throw new Error('splitImageSource: the split has no imageSize; pass it');
  return {
    size: split.size,
    async *batches(batchSize, order) {
      for await (const batch of split.batches(batchSize, { shuffle: order.shuffle, seed: mixSeed(order.seed, order.epoch) })) {
        yield { images: tf.tensor4d(batch.images, [batch.labels.length, 3, imageSize, imageSize]), labels: batch.labels };
      }
    },
  };
}
