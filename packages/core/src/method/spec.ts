import type * as tf from '@tensorflow/tfjs';
import type { LoadedVit } from '../checkpoint.js';
import type { Hook } from '../hooks.js';
import type { HostTensor } from '../io/types.js';
import type { HyperParameters } from '../train/protocol.js';
import type { EvalResult, TrainOptions } from '../train/types.js';

/**
 * A method plugin (PEFT's "tuner"): everything the CLI and the benchmarks need to fit, save and open
 * one method. Each method package exports one spec and registers it (`registerMethod`); nothing
 * outside the package knows the method's options or tensors.
 */
export interface MethodSpec<C extends object = Record<string, unknown>> {
  /** `--method` value and adapter_config.json's `method`: 'vqt', 'vpt', 'lora', ... */
  readonly name: string;
  /** One line for `vqt train --help`. */
  readonly description: string;
  /**
   * Prefix of this method's tensors in adapter files ('vqt.', 'lora.'); `head.*` is the classifier's.
   * Stacks use it to hand each part its own tensors.
   */
  readonly prefix: string;
  /**
   * 'adapt': changes the backbone's tokens (VPT, AdaptFormer, LoRA, full fine-tuning); can be the
   * base of a stack. 'read': reads frozen features (VQT, Head2Toe, linear probing); can top a stack
   * when it accepts `FitContext.base`.
   */
  readonly role: 'adapt' | 'read';
  /** Whether the method can sit on top of an adapting method (reads through its frozen hooks). */
  readonly stackable?: boolean;
  /** For an adapting method: whether another can stack on it (default true; false when it replaces the backbone). */
  readonly stackBase?: boolean;
  /** Every option with its default: what adapter_config.json's `options` holds. */
  readonly defaults: Readonly<C>;
  /** Options as CLI flags and docs. Every key of `defaults` appears here once. */
  readonly options: readonly MethodOption[];
  /** Extra validation beyond the option kinds (cross-field checks); throw Error naming the field. */
  validate?(config: C): void;
  fit(config: C, context: FitContext, data: ImageSplit): Promise<FittedMethod>;
  /**
   * Rebuilds a fitted method from its saved config and tensors: only this part's tensors (its
   * prefix) plus `head.*` when it owns the head. Unknown or missing tensors are errors naming them.
   */
  open(config: C, tensors: ReadonlyMap<string, HostTensor>, context: OpenContext): FittedMethod;
  /** Frees what the method keeps across fits (feature caches); the VTAB protocol fits many times on one split. */
  close?(): Promise<void>;
}

/** How a method option is parsed from the command line and validated. */
/** 'json': state a method saves (hidden options only), any JSON value. */
export type OptionKind = 'int' | 'number' | 'fraction' | 'boolean' | 'string' | 'intList' | 'stringList' | 'choice' | 'json';

/** One option of a method: its config key, its CLI flag, kind, bounds and help line. */
export interface MethodOption {
  /** Key in the method's config. */
  readonly key: string;
  /** CLI flag in kebab case without dashes ('queries' -> `--queries <n>`). Several methods may share a flag of the same kind. */
  readonly flag: string;
  readonly kind: OptionKind;
  readonly description: string;
  /** For 'choice' and 'stringList': the allowed values. */
  readonly choices?: readonly string[];
  /** Inclusive bounds for numbers. */
  readonly min?: number;
  readonly max?: number;
  /** Whether `undefined` is a valid value (the default may then be undefined). */
  readonly optional?: boolean;
  /** State the method saves (e.g. kept feature indices), not a command-line flag. */
  readonly hidden?: boolean;
}

/** Host image batches with a seeded order: a VTAB split, an image folder, images in memory. */
export interface ImageSplit {
  /** Stable identity for caches ('<task dir>:<split>'). */
  readonly id: string;
  readonly size: number;
  readonly numClasses: number;
  /** Side of the square, already resized and normalised images. */
  readonly imageSize: number;
  readonly labelNames?: readonly string[];
  batches(batchSize: number, options?: { shuffle?: boolean; seed?: number }): AsyncIterable<{ images: Float32Array; labels: Int32Array }>;
}

/** Settings of this run that are never saved with an adapter. */
export interface RuntimeConfig {
  /** Feature cache memory before spilling to disk (VQT). */
  cacheBudgetBytes: number;
  cacheDir?: string;
  spillDtype: 'float32' | 'float16';
  /** Per-block gradient checkpointing for methods that backpropagate through the backbone. */
  checkpointing: 'auto' | 'on' | 'off';
}

/** 1 GiB of cache in memory before spilling, float32 spill files, checkpointing 'auto'. */
export const DEFAULT_RUNTIME: RuntimeConfig = { cacheBudgetBytes: 1024 * 2 ** 20, spillDtype: 'float32', checkpointing: 'auto' };

/** What `MethodSpec.fit` gets besides its own config and the data (`fitMethod` builds one with defaults). */
export interface FitContext {
  backbone: LoadedVit;
  hp: HyperParameters;
  /** Everything but lr and weight decay, which come from `hp`. */
  train: Omit<TrainOptions, 'lr' | 'weightDecay'>;
  runtime: RuntimeConfig;
  /** The frozen, already fitted adapting method this one stacks on (two-stage stacking). */
  base?: FittedMethod;
  /**
   * Joint stacking: `base` is untrained and trains together with this method (its
   * `trainableHooks`), with the backbone on the tape as the adapting method needs.
   */
  joint?: boolean;
  /** Called once with the trainable parameter count, before training. */
  announce?(trainableParameters: number): void;
  log(line: string): void;
}

/** What `MethodSpec.open` gets besides its saved config and tensors (`openFitted` builds it). */
export interface OpenContext {
  backbone: LoadedVit;
  runtime: RuntimeConfig;
  numClasses: number;
  /** The adapter file, for error messages. */
  file: string;
  base?: FittedMethod;
  /** Set for the base of a stack: its own head was not saved, and its logits are never used. */
  headless?: boolean;
}

/** A trained method around its frozen backbone. */
export interface FittedMethod {
  readonly method: string;
  readonly numClasses: number;
  /** The resolved config: saved as adapter_config.json's `options` (plus any state such as kept indices). */
  options(): Record<string, unknown>;
  trainableParameters(): number;
  /** Logits [B, classes] for normalised images [B, 3, S, S] (inference: no dropout). */
  logits(images: tf.Tensor4D): tf.Tensor2D;
  /** The exact vector the head reads, [B, F]. */
  headFeatures(images: tf.Tensor4D): tf.Tensor2D;
  /** Top-1 on a split; methods with caches override the generic image-by-image loop. */
  evaluate?(data: ImageSplit, batchSize: number): Promise<EvalResult>;
  /** Frozen hooks that adapt the backbone's tokens, for a method stacked on this one. */
  adaptingHooks?(): Hook[];
  /** The same hooks with their trainable variables, for joint training of a stack. */
  trainableHooks?(): Hook[];
  /** Tensors to save, named under the spec's prefix, plus `head.weight` [classes, F] and `head.bias`. New tensors: the caller disposes them. */
  exportTensors(): Record<string, tf.Tensor>;
  dispose(): void;
}
