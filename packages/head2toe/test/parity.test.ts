import * as tf from '@tensorflow/tfjs';
import { loadVit, readNpy, type LoadedVit } from '@vqt/core';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Head2ToeExtractor } from '../src/index.js';
import { maxAbsDiff, useWasm } from './helpers.js';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'h2t_tiny');

interface FixtureConfig {
  checkpoint: string;
  checkpointSha256: string;
  heads: number;
  runImageSize: number;
  targetSize: number;
  featureDim: number;
  batch: number;
}
interface FixtureTap {
  name: string;
  width: number;
  offset: number;
  channels?: number;
  groups?: number;
}

const config = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as FixtureConfig;
const taps = JSON.parse(readFileSync(join(FIXTURE, 'taps.json'), 'utf8')) as FixtureTap[];

let loaded: LoadedVit;
let extractor: Head2ToeExtractor;
beforeAll(async () => {
  await useWasm();
  loaded = loadVit(resolve(FIXTURE, config.checkpoint), { heads: config.heads, imageSize: config.runImageSize });
  extractor = new Head2ToeExtractor(loaded.model.config, { targetSize: config.targetSize });
});
afterAll(() => {
  extractor.dispose();
  loaded.model.dispose();
});

describe('parity with the PyTorch reference (h2t_tiny)', () => {
  it('uses the checkpoint the reference used', () => {
    expect(loaded.sha256).toBe(config.checkpointSha256);
  });

  it('lays out the taps as taps.json', () => {
    const layout = extractor.featureLayout();
    expect(layout.map(({ name, width, offset }) => ({ name, width, offset }))).toEqual(taps.map(({ name, width, offset }) => ({ name, width, offset })));
    for (const [i, tap] of taps.entries()) {
      if (tap.channels !== undefined) expect(layout[i].channels).toBe(tap.channels);
      if (tap.groups !== undefined) expect(layout[i].groups).toBe(tap.groups);
    }
    expect(extractor.width).toBe(config.featureDim);
  });

  it('extracts the reference features within 1e-4', () => {
    const input = readNpy(join(FIXTURE, 'input.npy'));
    const expected = readNpy(join(FIXTURE, 'features.npy'));
    expect(expected.shape).toEqual([config.batch, config.featureDim]);
    const images = tf.tensor4d(input.data as Float32Array, input.shape as [number, number, number, number]);
    const features = extractor.extract(loaded.model, images);
    expect(features.shape).toEqual([config.batch, config.featureDim]);
    const error = maxAbsDiff(features, expected.data as Float32Array);
    console.log(`h2t_tiny parity: max abs error ${error.toExponential(2)}`);
    expect(error).toBeLessThanOrEqual(1e-4);
    tf.dispose([images, features]);
  });
});
