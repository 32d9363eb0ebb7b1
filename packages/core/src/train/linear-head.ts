import * as tf from '@tensorflow/tfjs';
import { FileFormatError } from '../io/errors.js';
import type { HostTensor } from '../io/types.js';
import { linear } from '../ops/linear.js';
import { epochOrder } from './rng.js';
import type { DataSource, LabeledBatch, TrainableModel } from './types.js';

/** A trainable linear classifier, weight [features, classes] (input-major), zero-initialised. */
export class LinearHead {
  readonly weight: tf.Variable<tf.Rank.R2>;
  readonly bias: tf.Variable<tf.Rank.R1>;

  constructor(
    readonly features: number,
    readonly classes: number,
    name = 'head',
  ) {
    const unique = `${name}.${Math.random().toString(36).slice(2, 8)}`;
    // tf.variable keeps its initial tensor alive as a separate tensor: make it inside tidy.
    this.weight = tf.tidy(() => tf.variable(tf.zeros([features, classes]), true, `${unique}.weight`));
    this.bias = tf.tidy(() => tf.variable(tf.zeros([classes]), true, `${unique}.bias`));
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    return linear(x, this.weight, this.bias);
  }

  variables(): tf.Variable[] {
    return [this.weight, this.bias];
  }

  /** Torch/PEFT convention in files: weight [classes, features]. New tensors, the caller disposes them. */
  exportTensors(prefix = 'head'): Record<string, tf.Tensor> {
    return { [`${prefix}.weight`]: tf.transpose(this.weight), [`${prefix}.bias`]: tf.clone(this.bias) };
  }

  /** From torch-convention weight [classes, features] and bias [classes]. */
  importTensors(weight: { shape: number[]; data: Float32Array }, bias: { shape: number[]; data: Float32Array }): void {
    if (weight.shape[0] !== this.classes || weight.shape[1] !== this.features || bias.shape[0] !== this.classes) {
      throw new Error(`head weights [${weight.shape}] / [${bias.shape}] do not fit [${this.classes}, ${this.features}] / [${this.classes}]`);
    }
    tf.tidy(() => {
      this.weight.assign(tf.transpose(tf.tensor2d(weight.data, [this.classes, this.features])));
      this.bias.assign(tf.tensor1d(bias.data));
    });
  }

  /**
   * The head an adapter file holds: `head.weight` [classes, features] and `head.bias` [classes]
   * (torch layout). A missing or misshapen tensor is a one-line error naming `file`.
   */
  importFromAdapter(tensors: ReadonlyMap<string, HostTensor>, file: string): void {
    const weight = tensors.get('head.weight');
    const bias = tensors.get('head.bias');
    if (!weight) throw new FileFormatError(file, 'missing tensor head.weight');
    if (!bias) throw new FileFormatError(file, 'missing tensor head.bias');
    try {
      this.importTensors(weight, bias);
    } catch (error) {
      throw new FileFormatError(file, (error as Error).message);
    }
  }

  dispose(): void {
    tf.dispose([this.weight, this.bias]);
  }
}

export interface FeatureBatch extends LabeledBatch {
  features: tf.Tensor2D;
}

/** Fixed feature vectors held on the host (linear probes, Head2Toe heads): a DataSource for the trainer. */
export class FeatureDataSource implements DataSource<FeatureBatch> {
  readonly size: number;

  constructor(
    readonly features: Float32Array,
    readonly width: number,
    readonly labels: Int32Array,
  ) {
    if (features.length !== labels.length * width) {
      throw new Error(`FeatureDataSource: ${features.length} values are not ${labels.length} rows of width ${width}`);
    }
    this.size = labels.length;
  }

  async *batches(batchSize: number, order: { shuffle: boolean; seed: number; epoch: number }): AsyncIterable<FeatureBatch> {
    const indices = epochOrder(this.size, order);
    for (let start = 0; start < this.size; start += batchSize) {
      const rows = indices.subarray(start, Math.min(this.size, start + batchSize));
      const values = new Float32Array(rows.length * this.width);
      const labels = new Int32Array(rows.length);
      rows.forEach((row, i) => {
        values.set(this.features.subarray(row * this.width, (row + 1) * this.width), i * this.width);
        labels[i] = this.labels[row];
      });
      yield { features: tf.tensor2d(values, [rows.length, this.width]), labels };
    }
  }
}

/** A linear classifier on fixed features: the linear probe, and the head of feature-based methods. */
export class LinearProbe implements TrainableModel<FeatureBatch> {
  constructor(readonly head: LinearHead) {}

  trainableVariables(): tf.Variable[] {
    return this.head.variables();
  }

  logits(batch: FeatureBatch): tf.Tensor2D {
    return this.head.apply(batch.features);
  }
}
