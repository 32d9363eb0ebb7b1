import * as tf from '@tensorflow/tfjs';
import { evaluateModel, loadAdapter, randomVit, trainModel, type VisionTransformer } from '@vqt/core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fitHead2Toe,
  Head2ToeExtractor,
  Head2ToeModel,
  loadExtractedFeatures,
  loadHead2ToeAdapter,
  saveExtractedFeatures,
  saveHead2ToeAdapter,
  type ExtractedFeatures,
  type Head2ToeFit,
  type ImageBatch,
} from '../src/index.js';
import { maxAbsDiff, TINY, useWasm } from './helpers.js';

const CLASSES = 4;
const TRAIN = 96;
const TEST = 64;
const PIXELS = 3 * TINY.imageSize * TINY.imageSize;

/**
 * Images = noise + a faint class template: the class is a direction in pixel space that the
 * (random, frozen) backbone's intermediate taps carry. Chance is 25 %.
 */
function syntheticSplit(count: number, seed: number, templates: Float32Array): { images: Float32Array; labels: Int32Array } {
  const noise = tf.tidy(() => tf.randomNormal([count, PIXELS], 0, 1, 'float32', seed).dataSync() as Float32Array);
  const labels = Int32Array.from({ length: count }, (_, i) => (i * 7 + seed) % CLASSES);
  for (let i = 0; i < count; i++) {
    for (let p = 0; p < PIXELS; p++) noise[i * PIXELS + p] += 0.25 * templates[labels[i] * PIXELS + p];
  }
  return { images: noise, labels };
}

function* batchesOf(split: { images: Float32Array; labels: Int32Array }, size: number): Iterable<ImageBatch> {
  for (let start = 0; start < split.labels.length; start += size) {
    const end = Math.min(split.labels.length, start + size);
    yield { images: split.images.subarray(start * PIXELS, end * PIXELS), labels: split.labels.subarray(start, end) };
  }
}

let vit: VisionTransformer;
let extractor: Head2ToeExtractor;
let train: ExtractedFeatures;
let test: ExtractedFeatures;
let testSplit: { images: Float32Array; labels: Int32Array };
let fit: Head2ToeFit;
let dir: string;

beforeAll(async () => {
  await useWasm();
  vit = randomVit(TINY, 21);
  extractor = new Head2ToeExtractor(TINY, { targetSize: 96 });
  const templates = tf.tidy(() => tf.randomNormal([CLASSES, PIXELS], 0, 1, 'float32', 99).dataSync() as Float32Array);
  const trainSplit = syntheticSplit(TRAIN, 1, templates);
  testSplit = syntheticSplit(TEST, 2, templates);
  const started = performance.now();
  train = await extractor.extractAll(vit, batchesOf(trainSplit, 16));
  const seconds = (performance.now() - started) / 1000;
  console.log(`extraction: ${TRAIN} images in ${seconds.toFixed(2)} s (${(TRAIN / seconds).toFixed(0)} images/s, F = ${train.width})`);
  test = await extractor.extractAll(vit, batchesOf(testSplit, 16));
  dir = mkdtempSync(join(tmpdir(), 'h2t-adapter-'));
});
afterAll(() => {
  fit?.model.dispose();
  extractor.dispose();
  vit.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('Head2Toe end to end on a synthetic task', () => {
  it('selects features with the group lasso, retrains and beats chance clearly', () => {
    const before = tf.memory().numTensors;
    fit = fitHead2Toe(train, CLASSES, { keep: 0.2, lambdaRatio: 0.1, maxIterations: 300 });
    expect(tf.memory().numTensors).toBe(before + 2); // the model's weight and bias variables
    const { model } = fit;
    expect(model.numKept).toBe(Math.round(0.2 * train.width));
    expect(fit.numNonzeroGroups).toBeGreaterThan(0);
    expect(fit.lambda).toBeCloseTo(0.1 * fit.lambdaMax, 6);
    const trainTop1 = model.evaluateFeatures(train).top1;
    const testTop1 = model.evaluateFeatures(test).top1;
    console.log(
      `group lasso: lambda ${fit.lambda.toExponential(2)} (${fit.numNonzeroGroups}/${train.width} groups nonzero), kept ${model.numKept}; ` +
        `top-1 train ${(100 * trainTop1).toFixed(1)} %, test ${(100 * testTop1).toFixed(1)} % (chance 25 %)`,
    );
    expect(testTop1).toBeGreaterThan(0.5);
  });

  it('evaluates from images with only the kept columns extracted, as from cached features', async () => {
    const fromImages = await fit.model.evaluateImages(extractor, vit, batchesOf(testSplit, 32));
    const fromCache = fit.model.evaluateFeatures(test);
    expect(Array.from(fromImages.predictions)).toEqual(Array.from(fromCache.predictions));
  });

  it('trains as a TrainableModel with the shared trainer on kept-feature batches', async () => {
    const model = new Head2ToeModel({ ...fit.model.spec });
    const data = model.featureSource(train);
    const result = await trainModel(model, data, { epochs: 30, batchSize: 32, lr: 0.5, weightDecay: 0, optimizer: 'sgd', warmupEpochs: 2, seed: 3, progress: 'none' });
    expect(result.history.at(-1)!.loss).toBeLessThan(result.history[0].loss);
    const top1 = (await evaluateModel(model, model.featureSource(test), 64)).top1;
    console.log(`shared trainer (SGD, 30 epochs) on the kept features: test top-1 ${(100 * top1).toFixed(1)} %`);
    expect(top1).toBeGreaterThan(0.5);
    model.dispose();
  });

  it('feature batches are deterministic from seed and epoch', async () => {
    const data = fit.model.featureSource(train);
    const order = async (seed: number, epoch: number) => {
      const labels: number[] = [];
      for await (const batch of data.batches(32, { shuffle: true, seed, epoch })) {
        labels.push(...batch.labels);
        batch.features.dispose();
      }
      return labels;
    };
    expect(await order(1, 2)).toEqual(await order(1, 2));
    expect(await order(1, 2)).not.toEqual(await order(1, 3));
  });

  it('caches features on disk and reads them back exactly', () => {
    const cacheDir = join(dir, 'train-features');
    saveExtractedFeatures(cacheDir, train, { backboneSha256: 'ef'.repeat(32) });
    const back = loadExtractedFeatures(cacheDir, { targetSize: 96, backboneSha256: 'ef'.repeat(32) });
    expect(back.count).toBe(train.count);
    expect(back.width).toBe(train.width);
    expect(maxAbsDiff(back.features, train.features)).toBe(0);
    expect(Array.from(back.labels)).toEqual(Array.from(train.labels));
    expect(() => loadExtractedFeatures(cacheDir, { targetSize: 2048 })).toThrow(/target size 96/);
  });

  it('round-trips through the adapter format and reproduces predictions', () => {
    const backbone = { name: 'tiny_random.safetensors', sha256: 'ab'.repeat(32), config: TINY };
    saveHead2ToeAdapter(dir, fit.model, backbone, { training: { task: 'synthetic' } });
    const raw = loadAdapter(dir);
    expect(raw.config.method).toBe('head2toe');
    expect(raw.tensors.get('head.weight')!.shape).toEqual([CLASSES, fit.model.numKept]);
    expect(raw.tensors.get('head.bias')!.shape).toEqual([CLASSES]);
    expect(raw.config.options).toMatchObject({ targetSize: 96, keep: 0.2, featureWidth: train.width });

    const loaded = loadHead2ToeAdapter(dir, { backboneSha256: backbone.sha256 });
    expect(Array.from(loaded.model.keptIndices)).toEqual(Array.from(fit.model.keptIndices));
    const images = tf.tensor4d(testSplit.images.subarray(0, 16 * PIXELS), [16, 3, TINY.imageSize, TINY.imageSize]);
    const a = fit.model.logitsForImages(extractor, vit, images);
    const b = loaded.model.logitsForImages(extractor, vit, images);
    expect(maxAbsDiff(a, b)).toBe(0);
    expect(Array.from(loaded.model.predict(extractor, vit, images))).toEqual(Array.from(fit.model.predict(extractor, vit, images)));
    expect(() => loadHead2ToeAdapter(dir, { backboneSha256: 'cd'.repeat(32) })).toThrow(/sha256/);
    tf.dispose([images, a, b]);
    loaded.model.dispose();
  });
});
