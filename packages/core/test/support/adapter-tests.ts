/**
 * Test helpers shared by the token-adapting plugins (adaptformer, lora), which re-export them from
 * their test/helpers.ts. Like those plugins it imports the built @vqt/core, so core's own tsconfig
 * leaves this file out (core's tests import src); the plugins' tsconfigs typecheck it.
 */
import * as tf from '@tensorflow/tfjs';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  arrayImageSplit,
  expectFloat32,
  HookedClassifier,
  imageSplitSource,
  initBackend,
  loadVit,
  openFitted,
  randomVit,
  readNpy,
  readSafetensors,
  trainModel,
  writeSafetensors,
  type FitContext,
  type FittedMethod,
  type Hook,
  type HostTensor,
  type ImageSplit,
  type LoadedVit,
  type VisionTransformer,
  type VitConfig,
} from '@vqt/core';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { tapeShapes } from './tape.js';

export { tapeShapes };

export const TINY: VitConfig = { imageSize: 32, patchSize: 8, dim: 48, depth: 3, heads: 3, mlpRatio: 4, eps: 1e-6 };

/** The shared tiny checkpoint the plugins' PyTorch fixtures were computed on (core's tiny_f32). */
export const TINY_CHECKPOINT = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tiny_f32', 'model.safetensors');

/** A float32 .npy file of a fixture directory as a tensor. */
function fixtureTensorIn(dir: string, name: string): tf.Tensor {
  const file = join(dir, name);
  const array = expectFloat32(readNpy(file), file, name);
  return tf.tensor(array.data, array.shape);
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

export function images(batch: number, size: number, seed = 1): tf.Tensor4D {
  return tf.randomNormal([batch, 3, size, size], 0, 1, 'float32', seed) as tf.Tensor4D;
}

/** Images in memory as an ImageSplit; labels follow the images' mean brightness so a tiny fit can learn something. */
export function memorySplit(count: number, numClasses: number, size: number, seed = 1): ImageSplit & { labels: Int32Array } {
  const floats = 3 * size * size;
  const data = tf.tidy(() => tf.randomNormal([count, 3, size, size], 0, 1, 'float32', seed).dataSync() as Float32Array);
  const labels = Int32Array.from({ length: count }, (_, i) => i % numClasses);
  for (let i = 0; i < count; i++) {
    for (let j = 0; j < floats; j++) data[i * floats + j] += labels[i];
  }
  return { ...arrayImageSplit(data, labels, size, { numClasses, id: `memory:${seed}` }), labels };
}

/** A hook test file's model: a random tiny ViT (seed 3) and two images (seed 7), on the wasm backend. */
export async function hookTestModel(): Promise<{ vit: VisionTransformer; x: tf.Tensor4D }> {
  await initBackend({ backend: 'wasm' });
  return { vit: randomVit(TINY, 3), x: images(2, TINY.imageSize, 7) };
}

/**
 * The gradient of sum(CLS * W) (W random, seed 31) through `hook` against central finite differences
 * along random directions of unit total norm: each variable of `singles` alone (seeds 100, 110, ...),
 * then all the hook's variables together (seed `togetherSeed`).
 */
export function expectGradientsMatchFiniteDifferences(vit: VisionTransformer, x: tf.Tensor4D, hook: Hook, singles: tf.Variable[], togetherSeed: number): void {
  const vars = hook.trainableVariables();
  const weights = tf.randomNormal([2, TINY.dim], 0, 1, 'float32', 31);
  const loss = () => tf.sum(tf.mul(vit.forward(x, { hooks: [hook] }).cls, weights)) as tf.Scalar;
  const { grads, value } = tf.variableGrads(loss, vars);
  const eps = 1e-2;
  const check = (subset: tf.Variable[], seed: number) => {
    // Random directions of unit total norm, so eps bounds the step whatever the variable count.
    const raw = subset.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', seed + i));
    const norm = Math.sqrt(tf.tidy(() => raw.reduce((n, d) => n + tf.sum(tf.square(d)).dataSync()[0], 0)));
    const directions = raw.map((d) => tf.div(d, norm));
    tf.dispose(raw);
    const originals = subset.map((v) => tf.clone(v));
    const at = (sign: number) => {
      subset.forEach((v, i) => v.assign(tf.tidy(() => tf.add(originals[i], tf.mul(directions[i], sign * eps)))));
      return tf.tidy(() => loss().dataSync()[0]);
    };
    const numeric = (at(1) - at(-1)) / (2 * eps);
    subset.forEach((v, i) => v.assign(originals[i]));
    const analytic = tf.tidy(() => subset.reduce((sum, v, i) => sum + tf.sum(tf.mul(grads[v.name], directions[i])).dataSync()[0], 0));
    tf.dispose([...directions, ...originals]);
    expect(Math.abs(analytic)).toBeGreaterThan(1e-2);
    expect(Math.abs(numeric - analytic)).toBeLessThan(1e-2 * Math.abs(analytic) + 1e-3);
  };
  singles.forEach((v, i) => check([v], 100 + 10 * i));
  check(vars, togetherSeed);
  tf.dispose([weights, value, ...Object.values(grads)]);
}

/**
 * What the gradient tape records for sum(final CLS) through `hook` (w.r.t. its variables): every
 * shape, and how many are a block's MLP hidden layer [B * L, 4D] (the same count for each taped block).
 */
export function clsTape(vit: VisionTransformer, x: tf.Tensor4D, hook: Hook): { shapes: string[]; mlpHidden: number } {
  const shapes = tapeShapes(() => tf.sum(vit.forward(x, { hooks: [hook] }).cls) as tf.Scalar, hook.trainableVariables());
  const hidden = `${x.shape[0] * vit.numTokens}x${vit.config.dim * vit.config.mlpRatio}`;
  return { shapes, mlpHidden: shapes.filter((s) => s === hidden).length };
}

/**
 * A hook's dropout (built with a nonzero rate): seeded by the step seed in training, absent in
 * inference, and absent from its frozen view even in a training step.
 */
export function expectDropoutInTrainingOnly(vit: VisionTransformer, x: tf.Tensor4D, hook: Hook & { frozen(): Hook }): void {
  tf.tidy(() => {
    const run = (training: boolean, seed: number) => vit.forward(x, { hooks: [hook], training, seed }).cls;
    expect(maxAbsDiff(run(false, 1), run(false, 2))).toBe(0);
    expect(maxAbsDiff(run(true, 1), run(true, 1))).toBe(0);
    expect(maxAbsDiff(run(true, 1), run(true, 2))).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(run(true, 1), run(false, 1))).toBeGreaterThan(1e-4);
    // The frozen view a stacked method reads through: no variables, no dropout even in training.
    const frozen = hook.frozen();
    expect(frozen.trainableVariables()).toEqual([]);
    expect(maxAbsDiff(vit.forward(x, { hooks: [frozen], training: true, seed: 1 }).cls, run(false, 1))).toBe(0);
  });
}

/** Four epochs of `hook` with a 3-class head on six images keep tf.memory().numTensors flat after the first. */
export async function expectTrainingKeepsTensorsFlat(vit: VisionTransformer, hook: Hook): Promise<void> {
  const classifier = new HookedClassifier(vit, [hook], 3);
  const counts: number[] = [];
  await trainModel(classifier, imageSplitSource(memorySplit(6, 3, TINY.imageSize)), {
    epochs: 4, batchSize: 2, lr: 0.01, weightDecay: 1e-4, optimizer: 'adam', warmupEpochs: 0, seed: 3, progress: 'none',
    onEpochEnd: () => void counts.push(tf.memory().numTensors),
  });
  expect(counts.length).toBe(4);
  // Epoch 1 creates the optimiser's slots; after that nothing accumulates.
  expect(new Set(counts.slice(1)).size).toBe(1);
  classifier.dispose();
}

/** A method test file's bench: the tiny checkpoint, a scratch directory, the fit context and broken copies of the fixture adapter. */
export interface MethodTestBench {
  readonly backbone: LoadedVit;
  readonly dir: string;
  /** Adam at lr 0.05, batch 4, seed 7, no weight decay or warmup; the method's log lines go to `logs`. */
  context(epochs: number, logs?: string[]): FitContext;
  /** A copy of the fixture adapter with its tensors changed by `edit`, and a call that opens it (for toThrow). */
  edited(edit: (tensors: Map<string, HostTensor>) => void): () => unknown;
  /** The same with its adapter_config.json changed by `edit`. */
  editedConfig(edit: (config: { options: Record<string, unknown> }) => void): () => unknown;
  dispose(): void;
}

export async function methodTestBench(scratchPrefix: string, fixtureDir: string): Promise<MethodTestBench> {
  await initBackend({ backend: 'wasm' });
  const backbone = loadVit(TINY_CHECKPOINT);
  const dir = mkdtempSync(join(tmpdir(), scratchPrefix));
  const copy = () => {
    const target = join(dir, `broken-${Math.random().toString(36).slice(2)}`);
    cpSync(fixtureDir, target, { recursive: true });
    return target;
  };
  return {
    backbone,
    dir,
    context: (epochs, logs = []) => ({
      backbone,
      hp: { lr: 0.05, weightDecay: 0 },
      train: { epochs, batchSize: 4, optimizer: 'adam', warmupEpochs: 0, seed: 7, progress: 'none' },
      runtime: { cacheBudgetBytes: 2 ** 20, spillDtype: 'float32', checkpointing: 'off' },
      log: (line) => void logs.push(line),
    }),
    edited(edit) {
      const target = copy();
      const file = join(target, ADAPTER_WEIGHTS_FILE);
      const { tensors } = readSafetensors(file);
      edit(tensors);
      writeSafetensors(file, Object.fromEntries(tensors));
      return () => openFitted(target, backbone);
    },
    editedConfig(edit) {
      const target = copy();
      const file = join(target, ADAPTER_CONFIG_FILE);
      const config = JSON.parse(readFileSync(file, 'utf8'));
      edit(config);
      writeFileSync(file, JSON.stringify(config));
      return () => openFitted(target, backbone);
    },
    dispose() {
      backbone.model.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A parity test file's fixture: the PyTorch reference adapter directory opened on the tiny checkpoint, and its input. */
export interface ParityFixture<F extends FittedMethod> {
  readonly backbone: LoadedVit;
  readonly fitted: F;
  readonly input: tf.Tensor4D;
  /** A float32 .npy of the fixture directory as a tensor. */
  tensor(name: string): tf.Tensor;
  dispose(): void;
}

export async function openParityFixture<F extends FittedMethod>(fixtureDir: string): Promise<ParityFixture<F>> {
  await initBackend({ backend: 'wasm' });
  const backbone = loadVit(TINY_CHECKPOINT);
  const fitted = openFitted(fixtureDir, backbone).fitted as F;
  const input = fixtureTensorIn(fixtureDir, 'input.npy') as tf.Tensor4D;
  return {
    backbone,
    fitted,
    input,
    tensor: (name) => fixtureTensorIn(fixtureDir, name),
    dispose() {
      fitted.dispose();
      backbone.model.dispose();
      input.dispose();
    },
  };
}

/**
 * The fixture's block outputs and final CLS through the fitted method's adapting hooks, its head
 * features and logits, all within 1e-4 of the reference; the plain backbone is far from it.
 */
export function expectReferenceForward(fixture: ParityFixture<FittedMethod>): void {
  const { backbone, fitted, input } = fixture;
  tf.tidy(() => {
    const { cls, blocks } = backbone.model.forward(input, { hooks: fitted.adaptingHooks!(), returnBlocks: true });
    const expectedBlocks = fixture.tensor('blocks.npy');
    blocks!.forEach((block, m) => expect(maxAbsDiff(block, tf.squeeze(tf.slice(expectedBlocks, [m], [1]), [0]))).toBeLessThan(1e-4));
    expect(maxAbsDiff(cls, fixture.tensor('cls.npy'))).toBeLessThan(1e-4);
    expect(maxAbsDiff(fitted.headFeatures(input), fixture.tensor('cls.npy'))).toBeLessThan(1e-4);
    expect(maxAbsDiff(fitted.logits(input), fixture.tensor('logits.npy'))).toBeLessThan(1e-4);
    // The adapters matter: the plain backbone is far from the reference.
    expect(maxAbsDiff(backbone.model.forward(input).cls, fixture.tensor('cls.npy'))).toBeGreaterThan(1e-2);
  });
}
