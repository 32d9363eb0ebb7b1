import * as tf from '@tensorflow/tfjs';
import { FeatureDataSource, LinearHead, type EvalResult, type FeatureBatch, type TrainableModel, type VisionTransformer } from '@vqt/core';
import { validatePooling, type Head2ToePooling } from './config.js';
import type { Head2ToeExtractor, ExtractAllOptions, ExtractedFeatures, ImageSource } from './extractor.js';
import { selectColumns } from './extractor.js';

/** Everything that defines a trained Head2Toe head besides its weights. */
export interface Head2ToeSpec {
  targetSize: number;
  /** Taps and pooling rule the features were extracted with (same width does not mean same features). */
  pooling: Head2ToePooling;
  /** Full feature width F the kept indices refer to. */
  featureWidth: number;
  /** Ascending indices of the kept features. */
  keptIndices: Int32Array;
  numClasses: number;
  /** Keep fraction used for the selection. */
  keep: number;
  /** Group-lasso lambda used for the selection (absolute). */
  lambda?: number;
  lambdaRatio?: number;
}

/**
 * The Head2Toe classifier: a linear head on the kept features. It is a TrainableModel over batches
 * of kept features, so the shared trainer can (re)train it on featureSource(...).
 */
export class Head2ToeModel implements TrainableModel<FeatureBatch> {
  readonly spec: Head2ToeSpec;
  /** weight [kept, classes] (input-major), bias [classes]. */
  readonly head: LinearHead;

  constructor(spec: Head2ToeSpec) {
    validateSpec(spec);
    this.spec = { ...spec, keptIndices: Int32Array.from(spec.keptIndices) };
    this.head = new LinearHead(spec.keptIndices.length, spec.numClasses, 'head2toe.head');
  }

  get keptIndices(): Int32Array {
    return this.spec.keptIndices;
  }

  get numKept(): number {
    return this.spec.keptIndices.length;
  }

  trainableVariables(): tf.Variable[] {
    return this.head.variables();
  }

  /** Logits [B, classes] from a batch of kept features [B, kept]. */
  logits(batch: FeatureBatch): tf.Tensor2D {
    return this.head.apply(batch.features);
  }

  /** Sets the head from weight [kept, classes] (input-major) and bias [classes]. */
  setHead(weight: tf.Tensor2D, bias: tf.Tensor1D): void {
    this.head.weight.assign(weight);
    this.head.bias.assign(bias);
  }

  /** The kept columns of cached features, [count, kept] row-major. */
  keptFeatures(extracted: ExtractedFeatures): Float32Array {
    if (extracted.pooling !== this.spec.pooling) {
      throw new Error(`head2toe: features were extracted with '${extracted.pooling}' pooling, the model was selected from '${this.spec.pooling}' features`);
    }
    if (extracted.columns) {
      if (!sameIndices(extracted.columns, this.keptIndices)) throw new Error('head2toe: the features were extracted with other columns than this model keeps');
      return extracted.features;
    }
    if (extracted.width !== this.spec.featureWidth) {
      throw new Error(`head2toe: features have width ${extracted.width}, the model was selected from ${this.spec.featureWidth}`);
    }
    return selectColumns(extracted.features, extracted.width, this.keptIndices);
  }

  /** A DataSource of kept-feature batches for the shared trainer (order from seed and epoch). */
  featureSource(extracted: ExtractedFeatures): FeatureDataSource {
    return new FeatureDataSource(this.keptFeatures(extracted), this.numKept, extracted.labels);
  }

  /** Logits [B, classes] from full features [B, F] (extractor output). */
  logitsFromFeatures(features: tf.Tensor2D): tf.Tensor2D {
    if (features.shape[1] !== this.spec.featureWidth) {
      throw new Error(`head2toe: features have width ${features.shape[1]}, the model expects ${this.spec.featureWidth}`);
    }
    const kept = selectColumns(features.dataSync() as Float32Array, this.spec.featureWidth, this.keptIndices);
    return tf.tidy(() => this.head.apply(tf.tensor2d(kept, [features.shape[0], this.numKept])));
  }

  /** Logits [B, classes] for images [B, 3, S, S]. */
  logitsForImages(extractor: Head2ToeExtractor, vit: VisionTransformer, images: tf.Tensor4D): tf.Tensor2D {
    this.checkExtractor(extractor);
    const features = extractor.extract(vit, images);
    try {
      return this.logitsFromFeatures(features);
    } finally {
      features.dispose();
    }
  }

  /** Predicted class per image. */
  predict(extractor: Head2ToeExtractor, vit: VisionTransformer, images: tf.Tensor4D): Int32Array {
    const logits = this.logitsForImages(extractor, vit, images);
    const predicted = tf.tidy(() => tf.argMax(logits, 1));
    const values = Int32Array.from(predicted.dataSync());
    tf.dispose([logits, predicted]);
    return values;
  }

  /** Top-1 on cached features (full width, or extracted with columns = keptIndices). */
  evaluateFeatures(extracted: ExtractedFeatures, batchSize = 256): EvalResult {
    const kept = this.keptFeatures(extracted);
    const predictions = new Int32Array(extracted.count);
    for (let start = 0; start < extracted.count; start += batchSize) {
      const rows = Math.min(batchSize, extracted.count - start);
      const predicted = tf.tidy(() =>
        tf.argMax(this.head.apply(tf.tensor2d(kept.subarray(start * this.numKept, (start + rows) * this.numKept), [rows, this.numKept])), 1),
      );
      predictions.set(predicted.dataSync() as Int32Array, start);
      predicted.dispose();
    }
    return scorePredictions(predictions, extracted.labels);
  }

  /** Top-1 on images: extracts only the kept columns, one batch at a time. */
  async evaluateImages(extractor: Head2ToeExtractor, vit: VisionTransformer, source: ImageSource, options: Omit<ExtractAllOptions, 'columns'> = {}): Promise<EvalResult> {
    this.checkExtractor(extractor);
    const extracted = await extractor.extractAll(vit, source, { ...options, columns: this.keptIndices });
    return this.evaluateFeatures(extracted);
  }

  dispose(): void {
    this.head.dispose();
  }

  private checkExtractor(extractor: Head2ToeExtractor): void {
    if (extractor.targetSize !== this.spec.targetSize || extractor.width !== this.spec.featureWidth || extractor.pooling !== this.spec.pooling) {
      throw new Error(
        `head2toe: extractor ('${extractor.pooling}' pooling, target size ${extractor.targetSize}, width ${extractor.width}) does not match the model ` +
          `('${this.spec.pooling}' pooling, target size ${this.spec.targetSize}, width ${this.spec.featureWidth})`,
      );
    }
  }
}

export function scorePredictions(predictions: Int32Array, labels: Int32Array): EvalResult {
  let correct = 0;
  for (let i = 0; i < labels.length; i++) if (predictions[i] === labels[i]) correct++;
  return { top1: labels.length ? correct / labels.length : 0, correct, count: labels.length, predictions };
}

function validateSpec(spec: Head2ToeSpec): void {
  const { keptIndices, featureWidth, numClasses } = spec;
  validatePooling(spec.pooling, 'head2toe: model spec');
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new Error(`head2toe: numClasses must be a positive integer (got ${numClasses})`);
  if (keptIndices.length === 0) throw new Error('head2toe: no kept features');
  for (let i = 0; i < keptIndices.length; i++) {
    const index = keptIndices[i];
    if (!Number.isInteger(index) || index < 0 || index >= featureWidth) throw new Error(`head2toe: kept index ${index} is outside [0, ${featureWidth})`);
    if (i > 0 && index <= keptIndices[i - 1]) throw new Error('head2toe: kept indices must be strictly ascending');
  }
}

function sameIndices(a: Int32Array, b: Int32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
