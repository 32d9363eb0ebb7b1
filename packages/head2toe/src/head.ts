import * as tf from '@tensorflow/tfjs';
import { linear } from '@vqt/core';

let headCount = 0;

/**
 * A trainable linear classifier: weight [features, classes] (input-major), bias [classes], zeros.
 * (Like core's LinearHead, but its initial zeros are freed: that one keeps two tensors alive per head.)
 */
export class KeptFeatureHead {
  readonly weight: tf.Variable<tf.Rank.R2>;
  readonly bias: tf.Variable<tf.Rank.R1>;

  constructor(
    readonly features: number,
    readonly classes: number,
  ) {
    const name = `head2toe.head${headCount++}`;
    this.weight = tf.tidy(() => tf.variable(tf.zeros<tf.Rank.R2>([features, classes]), true, `${name}.weight`));
    this.bias = tf.tidy(() => tf.variable(tf.zeros<tf.Rank.R1>([classes]), true, `${name}.bias`));
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    return linear(x, this.weight, this.bias);
  }

  variables(): tf.Variable[] {
    return [this.weight, this.bias];
  }

  /** Torch/PEFT convention in files: weight [classes, features]. */
  exportWeights(): { weight: { shape: number[]; data: Float32Array }; bias: { shape: number[]; data: Float32Array } } {
    const transposed = tf.tidy(() => tf.transpose(this.weight));
    const weight = { shape: [this.classes, this.features], data: Float32Array.from(transposed.dataSync()) };
    transposed.dispose();
    return { weight, bias: { shape: [this.classes], data: Float32Array.from(this.bias.dataSync()) } };
  }

  /** From torch-convention weight [classes, features] and bias [classes]. */
  importWeights(weight: { shape: number[]; data: Float32Array }, bias: { shape: number[]; data: Float32Array }): void {
    if (weight.shape[0] !== this.classes || weight.shape[1] !== this.features || bias.shape[0] !== this.classes) {
      throw new Error(`head2toe: head weights [${weight.shape}] / [${bias.shape}] do not fit [${this.classes}, ${this.features}] / [${this.classes}]`);
    }
    tf.tidy(() => {
      this.weight.assign(tf.transpose(tf.tensor2d(weight.data, [this.classes, this.features])));
      this.bias.assign(tf.tensor1d(bias.data));
    });
  }

  dispose(): void {
    tf.dispose([this.weight, this.bias]);
  }
}
