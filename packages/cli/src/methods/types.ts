import type * as tf from '@tensorflow/tfjs';
import type { Adapter, EvalResult, HyperParameters, LoadedVit, TrainOptions } from '@vqt/core';
import type { VtabSplit } from '@vqt/vtab-datasets';

/** What `vqt train` passes to a method; options not used by a method are ignored by it. */
export interface MethodOptions {
  queries: number;
  featureNorm: 'l2' | 'none' | 'mean';
  dropout: number;
  /** VQT + group lasso: keep this fraction of head-input features (after training the queries). */
  select?: number;
  /** Group-lasso lambda, absolute; when absent `lassoRatio` x lambda_max is used. */
  lasso?: number;
  lassoRatio: number;
  targetSize: number;
  /** Head2Toe taps and token pooling (default 'official'). */
  pooling?: 'official' | 'adaptive';
  keep: number;
  cacheBudgetBytes: number;
  cacheDir?: string;
  spillFloat16: boolean;
}

export interface FitContext {
  backbone: LoadedVit;
  /** Called with the trainable parameter count once the model exists, before training. */
  announce?(trainableParameters: number): void;
  options: MethodOptions;
  /** Everything but lr and weight decay, which come from the hyper-parameters. */
  train: Omit<TrainOptions, 'lr' | 'weightDecay'>;
  log(line: string): void;
}

export interface TrainedMethod {
  readonly method: string;
  readonly numClasses: number;
  trainableParameters(): number;
  evaluate(split: VtabSplit, batchSize: number): Promise<EvalResult>;
  /** The exact vector fed to the head, [B, features]. */
  headFeatures(images: tf.Tensor4D): tf.Tensor2D;
  save(dir: string, training: Record<string, unknown>, labelNames?: string[]): void;
  dispose(): void;
}

export interface Method {
  readonly name: string;
  fit(context: FitContext, hp: HyperParameters, split: VtabSplit): Promise<TrainedMethod>;
  open(adapterDir: string, adapter: Adapter, backbone: LoadedVit): TrainedMethod;
  /** Frees caches kept across fits (the VTAB protocol fits many times on the same split). */
  close?(): Promise<void>;
}
