import type { LoadedVit } from '../checkpoint.js';
import { epochOrder } from '../train/rng.js';
import type { OptimizerName, TrainOptions } from '../train/types.js';
import { resolveMethodConfig } from './registry.js';
import { methodSpec, resolveAnyConfig } from './stack.js';
import { DEFAULT_RUNTIME, type FitContext, type FittedMethod, type ImageSplit, type MethodSpec, type RuntimeConfig } from './spec.js';

/** Options of `fitMethod`: the method's own options plus the training recipe, every one with a default. */
export interface FitMethodOptions {
  /** The method's options (`{ queries: 2 }` for VQT; `{ vqt: {...} }` per part for a stack); the rest take the spec's defaults. */
  config?: Record<string, unknown>;
  /** Default 20. */
  epochs?: number;
  /** Default 32. */
  batchSize?: number;
  /** Peak learning rate, default 0.01 (Adam). */
  lr?: number;
  /** Default 1e-4. */
  weightDecay?: number;
  /** Default 'adam'. */
  optimizer?: OptimizerName;
  /** Default: a tenth of the epochs, at most 5. */
  warmupEpochs?: number;
  /** Seeds the shuffling, dropout and the method's init. Default 0. */
  seed?: number;
  /** Default 'none' (a library call stays quiet). */
  progress?: TrainOptions['progress'];
  /** Cache budget, spill directory, gradient checkpointing; defaults as `DEFAULT_RUNTIME`. */
  runtime?: Partial<RuntimeConfig>;
  /** A fitted adapting method to stack on (two-stage). */
  base?: FittedMethod;
  /** The method's progress lines (feature cache, selection); default: none. */
  log?(line: string): void;
  /** After every epoch, with its loss, learning rate and time (the trainer's `onEpochEnd`). */
  onEpochEnd?: TrainOptions['onEpochEnd'];
  /** The first training step's memory figures (the trainer's `onFirstStepProfile`). */
  onFirstStepProfile?: TrainOptions['onFirstStepProfile'];
}

/**
 * Fits a registered method (by name, 'base+top' for a stack, or a spec) on a split with one call:
 * resolves the method's options strictly (an unknown option is an error naming it), fills the
 * training recipe's defaults and builds the FitContext. `method.fit` is the same thing spelled out.
 */
export async function fitMethod(method: string | MethodSpec<object>, backbone: LoadedVit, data: ImageSplit, options: FitMethodOptions = {}): Promise<FittedMethod> {
  const spec = typeof method === 'string' ? methodSpec(method) : method;
  const config = spec.name.includes('+') ? resolveAnyConfig(spec, options.config ?? {}) : resolveMethodConfig(spec, options.config ?? {});
  const epochs = options.epochs ?? 20;
  const context: FitContext = {
    backbone,
    hp: { lr: options.lr ?? 0.01, weightDecay: options.weightDecay ?? 1e-4 },
    train: {
      epochs,
      batchSize: options.batchSize ?? 32,
      optimizer: options.optimizer ?? 'adam',
      warmupEpochs: options.warmupEpochs ?? Math.min(5, Math.floor(epochs / 10)),
      seed: options.seed ?? 0,
      progress: options.progress ?? 'none',
      ...(options.onEpochEnd ? { onEpochEnd: options.onEpochEnd } : {}),
      ...(options.onFirstStepProfile ? { onFirstStepProfile: options.onFirstStepProfile } : {}),
    },
    runtime: { ...DEFAULT_RUNTIME, ...options.runtime },
    ...(options.base ? { base: options.base } : {}),
    log: options.log ?? (() => {}),
  };
  return spec.fit(config, context, data);
}

let nextSplitId = 0;

/**
 * Images already in memory as an ImageSplit: `images` is [N, 3, S, S] float32, normalised as the
 * backbone expects (e.g. by vtab-datasets' preprocessImage), `labels` [N] in 0..numClasses-1.
 * The class count is the largest label + 1 unless given (or the number of label names).
 */
export function arrayImageSplit(
  images: Float32Array,
  labels: Int32Array | readonly number[],
  imageSize: number,
  options: { numClasses?: number; labelNames?: readonly string[]; id?: string } = {},
): ImageSplit {
  const perImage = 3 * imageSize * imageSize;
  const n = labels.length;
  if (!Number.isInteger(imageSize) || imageSize < 1) throw new Error(`arrayImageSplit: imageSize must be a positive integer (got ${imageSize})`);
  if (images.length !== n * perImage) {
    throw new Error(`arrayImageSplit: ${n} labels need ${n} x 3 x ${imageSize} x ${imageSize} = ${n * perImage} image values, got ${images.length}`);
  }
  const labelArray = Int32Array.from(labels);
  const numClasses = options.numClasses ?? options.labelNames?.length ?? labelArray.reduce((m, l) => Math.max(m, l), -1) + 1;
  const bad = labelArray.findIndex((l) => l < 0 || l >= numClasses);
  if (bad >= 0) throw new Error(`arrayImageSplit: label ${labelArray[bad]} of image ${bad} is outside 0..${numClasses - 1}`);
  if (numClasses < 1) throw new Error('arrayImageSplit: no images');
  return {
    id: options.id ?? `memory:${nextSplitId++}`,
    size: n,
    numClasses,
    imageSize,
    ...(options.labelNames ? { labelNames: options.labelNames } : {}),
    async *batches(batchSize, order = {}) {
      const indices = epochOrder(n, { shuffle: order.shuffle ?? false, seed: order.seed ?? 0, epoch: 0 });
      for (let start = 0; start < n; start += batchSize) {
        const chunk = indices.subarray(start, Math.min(n, start + batchSize));
        const batchImages = new Float32Array(chunk.length * perImage);
        chunk.forEach((index, row) => batchImages.set(images.subarray(index * perImage, (index + 1) * perImage), row * perImage));
        yield { images: batchImages, labels: Int32Array.from(chunk, (index) => labelArray[index]) };
      }
    },
  };
}
