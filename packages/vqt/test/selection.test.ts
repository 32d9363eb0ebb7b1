import * as tf from '@tensorflow/tfjs';
import { ADAPTER_CONFIG_FILE, initBackend, loadVit, trainModel, type LoadedVit } from '@vqt/core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeatureCache, loadVqtAdapter, saveVqtAdapter, selectHeadFeatures, VqtModel } from '../src/index.js';
import { chunks, fixtureConfig, hostImages, hostLabels, maxAbsDiff } from './helpers.js';

const fixture = fixtureConfig();
let loaded: LoadedVit;
let dir: string;
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  loaded = loadVit(fixture.checkpointPath, { heads: fixture.heads });
  dir = mkdtempSync(join(tmpdir(), 'vqt-select-'));
});
afterAll(() => {
  loaded.model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('VQT + group-lasso selection', () => {
  it('keeps a fraction of head inputs, freezes the queries, and round-trips through the adapter', async () => {
    const n = 48;
    const images = hostImages(n, 32, 5);
    const labels = hostLabels(n, 3);
    const model = new VqtModel(loaded.model, { numClasses: 3, queries: 2, seed: 1 });
    const cache = await FeatureCache.build(loaded.model, chunks(images, labels, 32, 16));
    await trainModel(model, cache, { epochs: 3, batchSize: 16, lr: 0.01, weightDecay: 0, optimizer: 'adam', warmupEpochs: 0, seed: 1, progress: 'none' });
    const queriesBefore = model.hook.stackedQueries();

    const before = tf.memory().numTensors;
    const result = await selectHeadFeatures(model, cache, { keepFraction: 0.5, batchSize: 16 });
    expect(tf.memory().numTensors).toBe(before + 1); // head variables replaced, plus the kept-index tensor
    expect(result.keptIndices.length).toBe(Math.round(0.5 * model.featureDim));
    expect(model.headInputs).toBe(result.keptIndices.length);
    expect(model.trainableVariables()).toEqual([model.headWeight, model.headBias]);

    // Retraining after selection moves only the head.
    await trainModel(model, cache, { epochs: 1, batchSize: 16, lr: 0.01, weightDecay: 0, optimizer: 'adam', warmupEpochs: 0, seed: 2, progress: 'none' });
    expect(maxAbsDiff(model.hook.stackedQueries(), queriesBefore)).toBe(0);

    const adapterDir = join(dir, 'selected');
    saveVqtAdapter(adapterDir, model, loaded);
    const config = JSON.parse(readFileSync(join(adapterDir, ADAPTER_CONFIG_FILE), 'utf8'));
    expect(config.options.keptIndices).toEqual(Array.from(result.keptIndices));
    const reloaded = loadVqtAdapter(adapterDir, loaded).model;
    tf.tidy(() => {
      const x = tf.tensor4d(images.slice(0, 4 * 3 * 32 * 32), [4, 3, 32, 32]);
      const batch = { images: x, labels: labels.slice(0, 4) };
      expect(maxAbsDiff(reloaded.logits(batch, { training: false, seed: 0 }), model.logits(batch, { training: false, seed: 0 }))).toBe(0);
    });
    tf.dispose(queriesBefore);
    reloaded.dispose();
    model.dispose();
    await cache.close();
  });
});
