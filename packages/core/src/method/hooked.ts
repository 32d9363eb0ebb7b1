import * as tf from '@tensorflow/tfjs';
import type { HostTensor } from '../io/types.js';
import type { Hook, HookContext } from '../hooks.js';
import { LinearHead } from '../train/linear-head.js';
import { mixSeed } from '../train/rng.js';
import { evaluateModel, trainModel } from '../train/trainer.js';
import type { DataSource, EvalResult, LabeledBatch, TrainableModel } from '../train/types.js';
import type { VisionTransformer } from '../vit/vit.js';
import type { FitContext, FittedMethod, ImageSplit, OpenContext } from './spec.js';

/** Normalised images [B, 3, S, S] with their labels. */
export interface ImageBatch extends LabeledBatch {
  images: tf.Tensor4D;
}

/** An image split as a DataSource of image tensors; each epoch's order is seeded by (seed, epoch). */
export function imageSplitSource(split: Pick<ImageSplit, 'size' | 'imageSize' | 'batches'>): DataSource<ImageBatch> {
  const side = split.imageSize;
  return {
    size: split.size,
    async *batches(batchSize, order) {
      for await (const batch of split.batches(batchSize, { shuffle: order.shuffle, seed: mixSeed(order.seed, order.epoch) })) {
        yield { images: tf.tensor4d(batch.images, [batch.labels.length, 3, side, side]), labels: batch.labels };
      }
    },
  };
}

const HOOK_POINTS = new Set(['beforeBlock', 'afterBlock', 'linearDelta', 'mlpParallel', 'sideQueries', 'sideQueryOutput', 'tap']);

/**
 * The same hook, frozen: no trainable variables, and always in inference mode (no dropout), as a
 * fitted adapting method runs under a method stacked on it.
 */
export function frozenHook(hook: Hook): Hook {
  return new Proxy(hook, {
    get(target, property, receiver) {
      if (property === 'trainableVariables') return () => [];
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      if (!HOOK_POINTS.has(String(property))) return value.bind(target);
      // The context is the last argument of every hook point.
      return (...args: unknown[]) => {
        const ctx = args[args.length - 1] as HookContext;
        return value.apply(target, [...args.slice(0, -1), { ...ctx, training: false }]);
      };
    },
  });
}

/**
 * A linear head on the backbone's final CLS with token-adapting hooks (VPT, AdaptFormer, LoRA, full
 * fine-tuning): core records the backbone from the first adapted block on, and only from there.
 */
export class HookedClassifier implements TrainableModel<ImageBatch> {
  readonly head: LinearHead;

  constructor(
    readonly vit: VisionTransformer,
    readonly hooks: readonly Hook[],
    readonly numClasses: number,
  ) {
    if (!Number.isInteger(numClasses) || numClasses < 1) throw new Error(`numClasses must be a positive integer (got ${numClasses})`);
    this.head = new LinearHead(vit.config.dim, numClasses, 'head');
  }

  trainableVariables(): tf.Variable[] {
    return [...this.hooks.flatMap((h) => h.trainableVariables()), ...this.head.variables()];
  }

  /** The final normalised CLS of the adapted backbone, [B, D]. */
  features(images: tf.Tensor4D, step: { training: boolean; seed: number } = { training: false, seed: 0 }): tf.Tensor2D {
    return this.vit.forward(images, { hooks: this.hooks, training: step.training, seed: step.seed }).cls;
  }

  logits(batch: ImageBatch, step: { training: boolean; seed: number }): tf.Tensor2D {
    return tf.tidy(() => this.head.apply(this.features(batch.images, step)));
  }

  parameterCount(): number {
    return this.trainableVariables().reduce((n, v) => n + v.size, 0);
  }

  /** Chunks whose activations through the taped blocks fit the memory budget (the 4 GiB wasm heap). */
  microBatchSize(batchSize: number): number {
    return this.vit.trainingPlan(this.hooks, batchSize).microBatch;
  }

  dispose(): void {
    this.head.dispose();
  }
}

/** A hook that owns tensors: an adapting method's fit or open frees it when it fails. */
export type DisposableHook = Hook & { dispose(): void };

/** A HookedClassifier around `hook`; when it cannot be built the hook is freed. */
function classifierAround(hook: DisposableHook, vit: VisionTransformer, numClasses: number): HookedClassifier {
  try {
    return new HookedClassifier(vit, [hook], numClasses);
  } catch (error) {
    hook.dispose();
    throw error;
  }
}

/**
 * An adapting method's fit: `hook` and a new linear head on the context's backbone, trained with the
 * context's recipe after announcing the trainable count and logging `description`. On failure the
 * head and the hook are freed before the error is rethrown.
 */
export async function fitHookedClassifier(hook: DisposableHook, context: FitContext, data: ImageSplit, description: string): Promise<HookedClassifier> {
  const classifier = classifierAround(hook, context.backbone.model, data.numClasses);
  try {
    context.announce?.(classifier.parameterCount());
    context.log(description);
    await trainModel(classifier, imageSplitSource(data), { ...context.train, lr: context.hp.lr, weightDecay: context.hp.weightDecay });
  } catch (error) {
    classifier.dispose();
    hook.dispose();
    throw error;
  }
  return classifier;
}

/**
 * An adapting method's open: `hook` (already read from the adapter's tensors) and the file's head on
 * the context's backbone; the headless base of a stack keeps a fresh head. On failure the head and
 * the hook are freed before the error is rethrown.
 */
export function openHookedClassifier(hook: DisposableHook, tensors: ReadonlyMap<string, HostTensor>, context: OpenContext): HookedClassifier {
  const classifier = classifierAround(hook, context.backbone.model, context.numClasses);
  try {
    if (!context.headless) classifier.head.importFromAdapter(tensors, context.file);
  } catch (error) {
    classifier.dispose();
    hook.dispose();
    throw error;
  }
  return classifier;
}

/** The parts of an adapting method that `adaptingFitted` turns into a FittedMethod. */
export interface AdaptingFittedParts {
  method: string;
  classifier: HookedClassifier;
  options(): Record<string, unknown>;
  /** The method's own tensors under its prefix (new tensors). */
  exportTensors(): Record<string, tf.Tensor>;
  /** Frees the hooks' variables (the classifier's head is freed too). */
  dispose(): void;
}

/** A FittedMethod for an adapting method trained as a HookedClassifier. */
export function adaptingFitted(parts: AdaptingFittedParts): FittedMethod {
  const { classifier } = parts;
  return {
    method: parts.method,
    numClasses: classifier.numClasses,
    options: parts.options,
    trainableParameters: () => classifier.parameterCount(),
    logits: (images) => tf.tidy(() => classifier.head.apply(classifier.features(images))),
    headFeatures: (images) => classifier.features(images),
    evaluate: (data, batchSize) => evaluateModel(classifier, imageSplitSource(data), batchSize),
    adaptingHooks: () => classifier.hooks.map(frozenHook),
    trainableHooks: () => [...classifier.hooks],
    exportTensors: () => tf.tidy(() => ({ ...parts.exportTensors(), ...classifier.head.exportTensors('head') })),
    dispose: () => {
      classifier.dispose();
      parts.dispose();
    },
  };
}

/** Top-1 of any fitted method on a split: its own evaluate, else logits image batch by image batch. */
export function evaluateFitted(fitted: FittedMethod, data: ImageSplit, batchSize: number): Promise<EvalResult> {
  if (fitted.evaluate) return fitted.evaluate(data, batchSize);
  const model: TrainableModel<ImageBatch> = { trainableVariables: () => [], logits: (batch) => fitted.logits(batch.images) };
  return evaluateModel(model, imageSplitSource(data), batchSize);
}

/** What `predict` returns for one image. */
export interface Prediction {
  /** Classes by descending probability, at most topK. */
  top: { index: number; label: string; probability: number }[];
}

/**
 * Class probabilities and the top-k classes (default 5, with label names when given, else the class
 * index as text) for each image of a normalised batch [B, 3, S, S] (S = the backbone's imageSize).
 * Works for every method's FittedMethod; the caller keeps ownership of `images`.
 */
export async function predict(
  fitted: FittedMethod,
  images: tf.Tensor4D,
  options: { topK?: number; labelNames?: readonly string[] } = {},
): Promise<Prediction[]> {
  const probabilities = tf.tidy(() => tf.softmax(fitted.logits(images)));
  const [batch, classes] = probabilities.shape;
  const values = (await probabilities.data()) as Float32Array;
  probabilities.dispose();
  const k = Math.min(options.topK ?? 5, classes);
  const out: Prediction[] = [];
  for (let b = 0; b < batch; b++) {
    const row = values.subarray(b * classes, (b + 1) * classes);
    const order = Array.from(row.keys()).sort((x, y) => row[y] - row[x]).slice(0, k);
    out.push({ top: order.map((index) => ({ index, label: options.labelNames?.[index] ?? String(index), probability: row[index] })) });
  }
  return out;
}
