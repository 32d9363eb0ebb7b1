import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  arrayImageSplit,
  evaluateFitted,
  fitHookedClassifier,
  fitMethod,
  initBackend,
  linearMethod,
  openHookedClassifier,
  predict,
  randomVit,
  type DisposableHook,
  type FitContext,
  type LoadedVit,
} from '../src/index.js';
import { TINY } from './helpers.js';

let backbone: LoadedVit;
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  const model = randomVit(TINY, 3);
  backbone = { model, sha256: 'a'.repeat(64), name: 'random', file: 'random', info: { format: 'safetensors', config: TINY, checkpointImageSize: 32, hasHead: false } } as unknown as LoadedVit;
});
afterAll(() => backbone.model.dispose());

/** Three classes told apart by which colour channel is bright; 12 images, few enough for a linear head to fit exactly. */
function channelImages(n: number): { images: Float32Array; labels: Int32Array } {
  const side = TINY.imageSize;
  const images = new Float32Array(n * 3 * side * side);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  for (let i = 0; i < n; i++) images.fill(2, (i * 3 + labels[i]) * side * side, (i * 3 + labels[i] + 1) * side * side);
  return { images, labels };
}

describe('arrayImageSplit', () => {
  it('streams the given images in order, or shuffled by seed, and takes the class count from the labels', async () => {
    const { images, labels } = channelImages(5);
    const split = arrayImageSplit(images, labels, TINY.imageSize, { labelNames: ['red', 'green', 'blue'] });
    expect(split).toMatchObject({ size: 5, numClasses: 3, imageSize: 32, labelNames: ['red', 'green', 'blue'] });
    const seen: number[] = [];
    for await (const batch of split.batches(2)) seen.push(...batch.labels);
    expect(seen).toEqual([0, 1, 2, 0, 1]);
    const shuffled: number[] = [];
    for await (const batch of split.batches(4, { shuffle: true, seed: 3 })) {
      expect(batch.images.length).toBe(batch.labels.length * 3 * 32 * 32);
      shuffled.push(...batch.labels);
    }
    expect(shuffled.slice().sort()).toEqual([0, 0, 1, 1, 2]);
    expect(arrayImageSplit(images, [0, 1, 4, 0, 1], 32).numClasses).toBe(5);
  });

  it('refuses a size mismatch and out-of-range labels, naming the numbers', () => {
    const { images } = channelImages(2);
    expect(() => arrayImageSplit(images, [0, 1], 64)).toThrow(/2 labels need 2 x 3 x 64 x 64 = 24576 image values, got 6144/);
    expect(() => arrayImageSplit(images, [0, 3], 32, { numClasses: 3 })).toThrow(/label 3 of image 1 is outside 0\.\.2/);
  });
});

describe('fitMethod', () => {
  it('fits a registered method by name with default recipe, evaluates and predicts; unknown options are refused', async () => {
    expect(linearMethod.name).toBe('linear');
    const { images, labels } = channelImages(12);
    const data = arrayImageSplit(images, labels, TINY.imageSize, { labelNames: ['red', 'green', 'blue'] });
    const before = tf.memory().numTensors;
    const fitted = await fitMethod('linear', backbone, data, { epochs: 30, batchSize: 12, lr: 0.1, weightDecay: 0 });
    expect(fitted.method).toBe('linear');
    const { top1 } = await evaluateFitted(fitted, data, 6);
    expect(top1).toBe(1);
    const x = tf.tensor4d(images.subarray(0, 3 * 3 * 32 * 32), [3, 3, 32, 32]);
    const predictions = await predict(fitted, x, { topK: 2, labelNames: data.labelNames });
    x.dispose();
    expect(predictions.map((p) => p.top[0].label)).toEqual(['red', 'green', 'blue']);
    expect(predictions[0].top).toHaveLength(2);
    fitted.dispose();
    expect(tf.memory().numTensors).toBe(before);
    await expect(fitMethod('linear', backbone, data, { config: { queries: 2 } })).rejects.toThrow(/method "linear" has no option "queries"/);
    await expect(fitMethod('nope', backbone, data)).rejects.toThrow(/unknown method "nope"/);
  });

  it("passes the trainer's per-epoch log and first-step memory profile to the caller", async () => {
    const { images, labels } = channelImages(6);
    const data = arrayImageSplit(images, labels, TINY.imageSize);
    const epochs: number[] = [];
    const profiles: number[] = [];
    const fitted = await fitMethod('linear', backbone, data, {
      epochs: 3,
      batchSize: 3,
      onEpochEnd: (log) => void epochs.push(log.epoch),
      onFirstStepProfile: (profile) => void profiles.push(profile.newBufferBytes),
    });
    fitted.dispose();
    expect(epochs).toEqual([0, 1, 2]);
    expect(profiles).toHaveLength(1);
    expect(profiles[0]).toBeGreaterThan(0);
  });
});

describe('fitHookedClassifier and openHookedClassifier (the adapting methods\' fit and open)', () => {
  /** A token-adapting hook: a trainable bias added to block 0's input; `dispose` frees it. */
  const biasHook = (): DisposableHook & { bias: tf.Variable } => {
    const bias = tf.tidy(() => tf.variable(tf.zeros([TINY.dim]), true));
    return { name: 'bias', bias, trainableVariables: () => [bias], beforeBlock: (x, ctx) => (ctx.block === 0 ? tf.add(x, bias) : x), dispose: () => bias.dispose() };
  };
  const context = (logs: string[], announced: number[]): FitContext => ({
    backbone,
    hp: { lr: 0.1, weightDecay: 0 },
    train: { epochs: 2, batchSize: 6, optimizer: 'adam', warmupEpochs: 0, seed: 1, progress: 'none' },
    runtime: { cacheBudgetBytes: 2 ** 20, spillDtype: 'float32', checkpointing: 'off' },
    log: (line) => void logs.push(line),
    announce: (n) => void announced.push(n),
  });

  it('fit announces, logs and trains the hook with the head; open restores the head from the file', async () => {
    const { images, labels } = channelImages(6);
    const data = arrayImageSplit(images, labels, TINY.imageSize);
    const before = tf.memory().numTensors;
    const logs: string[] = [];
    const announced: number[] = [];
    const hook = biasHook();
    const classifier = await fitHookedClassifier(hook, context(logs, announced), data, 'bias: block 0');
    expect(logs).toEqual(['bias: block 0']);
    expect(announced).toEqual([TINY.dim + TINY.dim * 3 + 3]);
    expect(tf.tidy(() => tf.max(tf.abs(hook.bias)).dataSync()[0])).toBeGreaterThan(0);
    const exported = classifier.head.exportTensors('head');
    const tensors = new Map(Object.entries(exported).map(([name, t]) => [name, { shape: t.shape, data: t.dataSync() as Float32Array }]));
    tf.dispose(Object.values(exported));
    const opened = openHookedClassifier(hook, tensors, { backbone, runtime: context([], []).runtime, numClasses: 3, file: 'a.safetensors' });
    expect(Array.from(classifier.head.bias.dataSync()).some((v) => v !== 0)).toBe(true);
    expect(Array.from(opened.head.bias.dataSync())).toEqual(Array.from(classifier.head.bias.dataSync()));
    const headless = openHookedClassifier(hook, new Map(), { backbone, runtime: context([], []).runtime, numClasses: 3, file: 'a.safetensors', headless: true });
    expect(Array.from(headless.head.bias.dataSync())).toEqual([0, 0, 0]);
    [classifier, opened, headless].forEach((c) => c.dispose());
    hook.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a failing fit or open frees the head and the hook before rethrowing', async () => {
    const { images, labels } = channelImages(6);
    const good = arrayImageSplit(images, labels, TINY.imageSize);
    const broken = { ...good, async *batches() { throw new Error('unreadable image 3'); } };
    const before = tf.memory().numTensors;
    const fitHook = biasHook();
    await expect(fitHookedClassifier(fitHook, context([], []), broken, 'bias')).rejects.toThrow('unreadable image 3');
    expect(fitHook.bias.isDisposed).toBe(true);
    const noClassesHook = biasHook();
    await expect(fitHookedClassifier(noClassesHook, context([], []), { ...good, numClasses: 0 }, 'bias')).rejects.toThrow(/numClasses must be a positive integer/);
    expect(noClassesHook.bias.isDisposed).toBe(true);
    const openHook = biasHook();
    const runtime = context([], []).runtime;
    expect(() => openHookedClassifier(openHook, new Map(), { backbone, runtime, numClasses: 3, file: 'a.safetensors' })).toThrow('a.safetensors: missing tensor head.weight');
    expect(openHook.bias.isDisposed).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });
});
