import * as tf from '@tensorflow/tfjs';
import { linear, type DataSource, type Hook, type LabeledBatch, type TrainableModel, type VisionTransformer } from '@vqt/core';
import { FeatureCache, type FeatureCacheOptions } from './cache.js';
import type { VqtConfig } from './config.js';
import { assembleFeatures, featureDim } from './features.js';
import { VqtHook } from './hook.js';
import type { HostImageBatches } from './sources.js';
import { namedVariable } from './variables.js';

/** Images [B, 3, H, W] (normalised): the uncached path runs the frozen backbone every step. */
export interface VqtImageBatch extends LabeledBatch {
  images: tf.Tensor4D;
}

/** Cached frozen features: LN1 output per block [B, L, D] and the final CLS [B, D]. */
export interface VqtCachedBatch extends LabeledBatch {
  ln1: tf.Tensor3D[];
  cls: tf.Tensor2D;
}

export type VqtBatch = VqtImageBatch | VqtCachedBatch;

export interface VqtModelOptions extends Partial<VqtConfig> {
  numClasses: number;
  /** Head weight init: zeros (default), or normal with this std (seeded by `headSeed`). */
  headInitStd?: number;
  headSeed?: number;
  /** Record the frozen backbone for gradients, as the PyTorch reference does. Only for measuring the saving. */
  tapeBackbone?: boolean;
  /**
   * Frozen hooks of another, already trained method that VQT stacks on (AdaptFormer, LoRA, ...): they
   * run before VQT's queries, which then read the tokens they adapted. They must not have trainable
   * variables; their own weights are saved by their own method, not in the VQT adapter.
   */
  baseHooks?: readonly Hook[];
  /**
   * Joint stacking: the base hooks train together with the queries (their variables join this
   * model's), so the backbone from their first adapted block is on the tape and no cache applies.
   */
  trainBaseHooks?: boolean;
}

export interface StepInfo {
  training: boolean;
  seed: number;
}

export function isCachedBatch(batch: VqtBatch): batch is VqtCachedBatch {
  return 'ln1' in batch;
}

/**
 * VQT around a frozen ViT: per-block queries (the hook) and one linear head over
 * [CLS, Z'_1, ..., Z'_M]. Trains from images or from a FeatureCache; the backbone never enters the tape.
 */
export class VqtModel implements TrainableModel<VqtBatch> {
  readonly hook: VqtHook;
  readonly numClasses: number;
  readonly featureDim: number;
  /** [head inputs, classes], input-major as core's linear wants; the adapter file stores it transposed. */
  headWeight: tf.Variable;
  headBias: tf.Variable;
  /** After group-lasso selection: the kept head-input features (ascending); the queries are then frozen. */
  keptIndices?: Int32Array;
  private keptTensor?: tf.Tensor1D;
  private readonly tapeBackbone: boolean;
  readonly baseHooks: readonly Hook[];
  readonly trainBaseHooks: boolean;

  constructor(
    readonly vit: VisionTransformer,
    options: VqtModelOptions,
  ) {
    const { numClasses, headInitStd, headSeed, tapeBackbone, baseHooks, trainBaseHooks, ...vqt } = options;
    if (!Number.isInteger(numClasses) || numClasses < 1) throw new Error(`vqt: numClasses must be a positive integer (got ${numClasses})`);
    this.trainBaseHooks = trainBaseHooks ?? false;
    const trainable = (baseHooks ?? []).find((h) => h.trainableVariables().length > 0);
    if (trainable && !this.trainBaseHooks) throw new Error(`vqt: base hook "${trainable.name}" has trainable variables; VQT stacks on frozen hooks (train that method first)`);
    this.baseHooks = baseHooks ?? [];
    const { depth, dim, patchSize } = vit.config;
    this.hook = new VqtHook({ depth, dim, patchSize }, vqt);
    this.numClasses = numClasses;
    this.featureDim = featureDim(dim, depth, this.hook.numQueries, this.hook.config.featureNorm);
    const weight = headInitStd ? tf.randomNormal([this.featureDim, numClasses], 0, headInitStd, 'float32', headSeed ?? 0) : tf.zeros([this.featureDim, numClasses]);
    this.headWeight = namedVariable(weight, 'vqt.head.weight');
    this.headBias = namedVariable(tf.zeros([numClasses]), 'vqt.head.bias');
    this.tapeBackbone = tapeBackbone ?? false;
  }

  get config(): VqtConfig {
    return this.hook.config;
  }

  trainableVariables(): tf.Variable[] {
    // Selection freezes the queries (paper sec. 3.2): only the head over kept features trains.
    if (this.keptIndices) return [this.headWeight, this.headBias];
    const base = this.trainBaseHooks ? this.baseHooks.flatMap((h) => h.trainableVariables()) : [];
    return [...base, ...this.hook.trainableVariables(), this.headWeight, this.headBias];
  }

  /** Width of the head's input: featureDim, or the kept count after selection. */
  get headInputs(): number {
    return this.keptIndices?.length ?? this.featureDim;
  }

  /**
   * Switches the head to a subset of head-input features with a given head (weight [kept, classes]).
   * Afterwards the queries are frozen and logits read only the kept features.
   */
  applySelection(keptIndices: Int32Array, weight: tf.Tensor2D, bias: tf.Tensor1D): void {
    if (weight.shape[0] !== keptIndices.length || weight.shape[1] !== this.numClasses) {
      throw new Error(`vqt: selected head must be [${keptIndices.length}, ${this.numClasses}], got [${weight.shape.join(', ')}]`);
    }
    for (let i = 0; i < keptIndices.length; i++) {
      const index = keptIndices[i];
      if (!(index >= 0 && index < this.featureDim) || (i > 0 && index <= keptIndices[i - 1])) {
        throw new Error(`vqt: kept indices must be ascending and within [0, ${this.featureDim})`);
      }
    }
    tf.dispose([this.headWeight, this.headBias, this.keptTensor]);
    this.keptIndices = Int32Array.from(keptIndices);
    this.keptTensor = tf.tensor1d(this.keptIndices, 'int32');
    this.headWeight = namedVariable(tf.clone(weight), 'vqt.head.weight');
    this.headBias = namedVariable(tf.clone(bias), 'vqt.head.bias');
  }

  /** Trained parameters: queries plus head. */
  parameterCount(): number {
    return this.trainableVariables().reduce((n, v) => n + v.size, 0);
  }

  /** Caches the frozen features of `source` for this backbone; spilled rows use the config's spillDtype. */
  buildCache(source: HostImageBatches, options: FeatureCacheOptions = {}): Promise<FeatureCache> {
    if (this.trainBaseHooks) throw new Error('vqt: base hooks that train with the queries change the features every step; a cache cannot hold them');
    return FeatureCache.build(this.vit, source, { spillDtype: this.config.spillDtype, hooks: this.baseHooks, ...options });
  }

  /** The final CLS and every block's query outputs Z'_m [B, T, D] (in the caller's scope). */
  queryOutputs(batch: VqtBatch, step: StepInfo): { cls: tf.Tensor2D; outputs: tf.Tensor3D[] } {
    // Base hooks run first, and act on the queries' own path too (e.g. an adapter beside the MLP).
    const hooks = [...this.baseHooks, this.hook];
    if (isCachedBatch(batch)) {
      this.vit.replaySideQueries(batch.ln1, { hooks, training: step.training, seed: step.seed });
      return { cls: batch.cls, outputs: this.hook.takeOutputs() };
    }
    // The hooks only read or are frozen, so core runs the backbone off the tape: its CLS is a constant here.
    const { cls } = this.vit.forward(batch.images, { hooks, training: step.training, seed: step.seed, tapeBackbone: this.tapeBackbone });
    return { cls, outputs: this.hook.takeOutputs() };
  }

  /** The head input [B, featureDim]. */
  features(batch: VqtBatch, step: StepInfo = { training: false, seed: 0 }): tf.Tensor2D {
    return tf.tidy(() => {
      const { cls, outputs } = this.queryOutputs(batch, step);
      return assembleFeatures(cls, outputs, this.config.featureNorm);
    });
  }

  /** What the head reads: the features, or their kept columns after selection. */
  headInput(batch: VqtBatch, step: StepInfo = { training: false, seed: 0 }): tf.Tensor2D {
    return tf.tidy(() => {
      const features = this.features(batch, step);
      // A forward-only gather: the queries are frozen after selection, so no gradient flows through it.
      return this.keptTensor ? (tf.gather(features, this.keptTensor, 1) as tf.Tensor2D) : features;
    });
  }

  logits(batch: VqtBatch, step: StepInfo): tf.Tensor2D {
    return tf.tidy(() => linear(this.headInput(batch, step), this.headWeight as tf.Tensor2D, this.headBias as tf.Tensor1D));
  }

  /**
   * Head inputs of a whole data source in data order (e.g. for group-lasso feature selection with
   * the queries frozen). Disposes each batch, as the trainer does.
   */
  async collectFeatures(data: DataSource<VqtBatch>, batchSize: number): Promise<{ features: Float32Array; labels: Int32Array; dim: number }> {
    const features = new Float32Array(data.size * this.featureDim);
    const labels = new Int32Array(data.size);
    let row = 0;
    for await (const batch of data.batches(batchSize, { shuffle: false, seed: 0, epoch: 0 })) {
      const f = this.features(batch);
      features.set(await f.data(), row * this.featureDim);
      labels.set(batch.labels, row);
      row += batch.labels.length;
      tf.dispose([f, batch as unknown as tf.TensorContainer]);
    }
    return { features: features.subarray(0, row * this.featureDim), labels: labels.subarray(0, row), dim: this.featureDim };
  }

  dispose(): void {
    this.hook.dispose();
    tf.dispose([this.headWeight, this.headBias, this.keptTensor]);
  }
}
