import * as tf from '@tensorflow/tfjs';
import { initBackend, loadVit, type LoadedVit } from '@vqt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleFeatures, featureDim, VqtModel, type FeatureNorm } from '../src/index.js';
import { fixtureArray, fixtureConfig } from './helpers.js';

// Parity with an independent PyTorch reference (tools/reference, float64), fixture test/fixtures/vqt_tiny.

const TOLERANCE = 1e-4;
let loaded: LoadedVit;
let model: VqtModel;
const fixture = fixtureConfig();

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  loaded = loadVit(fixture.checkpointPath, { heads: fixture.heads });
  model = new VqtModel(loaded.model, { numClasses: 2, queries: fixture.numQueries });
  model.hook.setQueries(fixtureArray('queries.npy'));
});
afterAll(() => {
  model.dispose();
  loaded.model.dispose();
});

const errors: Record<string, number> = {};

describe('parity with the PyTorch reference', () => {
  it('checkpoint is the one the fixture names', () => {
    expect(loaded.sha256).toBe(fixture.checkpointSha256);
  });

  it('query outputs, final CLS and head features for l2, none and mean', () => {
    const input = fixtureArray('input.npy');
    tf.tidy(() => {
      const images = tf.tensor4d(input.data, input.shape as [number, number, number, number]);
      const { cls, outputs } = model.queryOutputs({ images, labels: new Int32Array(2) }, { training: false, seed: 0 });
      const expectedZ = fixtureArray('query_outputs.npy');
      const z = tf.stack(outputs);
      errors.queryOutputs = maxAbs(z, expectedZ);
      errors.cls = maxAbs(cls, fixtureArray('cls.npy'));
      for (const norm of ['l2', 'none', 'mean'] as FeatureNorm[]) {
        const features = assembleFeatures(cls, outputs, norm);
        expect(features.shape).toEqual([2, featureDim(48, 3, fixture.numQueries, norm)]);
        errors[`features_${norm}`] = maxAbs(features, fixtureArray(`features_${norm}.npy`));
      }
      // The model's own path (default 'l2') gives the same head input.
      errors.modelFeatures = maxAbs(model.features({ images, labels: new Int32Array(2) }), fixtureArray('features_l2.npy'));
    });
    console.log('vqt parity max abs errors', errors);
    for (const [name, error] of Object.entries(errors)) expect(error, name).toBeLessThanOrEqual(TOLERANCE);
  });

  it('training mode with dropout 0 equals inference', () => {
    const input = fixtureArray('input.npy');
    const noDropout = new VqtModel(loaded.model, { numClasses: 2, queries: fixture.numQueries, dropout: 0 });
    noDropout.hook.setQueries(fixtureArray('queries.npy'));
    tf.tidy(() => {
      const batch = { images: tf.tensor4d(input.data, input.shape as [number, number, number, number]), labels: new Int32Array(2) };
      expect(maxAbs(noDropout.features(batch, { training: true, seed: 5 }), fixtureArray('features_l2.npy'))).toBeLessThanOrEqual(TOLERANCE);
    });
    noDropout.dispose();
  });
});

function maxAbs(actual: tf.Tensor, expected: { shape: number[]; data: Float32Array }): number {
  expect(actual.shape).toEqual(expected.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(actual, tf.tensor(expected.data, expected.shape)))).dataSync()[0]);
}
