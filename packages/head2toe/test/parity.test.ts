import * as tf from '@tensorflow/tfjs';
import { loadVit, readNpy, type LoadedVit } from '@vqt/core';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Head2ToeExtractor, type Head2ToePooling } from '../src/index.js';
import { maxAbsDiff, useWasm } from './helpers.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
/** Official at S 96 and 336 (8 groups where adaptive gives 7); adaptive, the earlier rule, at both. */
const CASES = ['h2t_tiny', 'h2t_tiny_s336', 'h2t_tiny_adaptive', 'h2t_tiny_adaptive_s336'];

interface FixtureConfig {
  checkpoint: string;
  checkpointSha256: string;
  heads: number;
  runImageSize: number;
  input: string;
  pooling: Head2ToePooling;
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
  poolSize?: number;
}

const readJson = <T>(path: string) => JSON.parse(readFileSync(path, 'utf8')) as T;

describe.each(CASES)('parity with the PyTorch reference (%s)', (name) => {
  const folder = join(FIXTURES, name);
  const config = readJson<FixtureConfig>(join(folder, 'config.json'));
  const taps = readJson<FixtureTap[]>(join(folder, 'taps.json'));
  let loaded: LoadedVit;
  let extractor: Head2ToeExtractor;
  beforeAll(async () => {
    await useWasm();
    loaded = loadVit(resolve(folder, config.checkpoint), { heads: config.heads, imageSize: config.runImageSize });
    extractor = new Head2ToeExtractor(loaded.model.config, { targetSize: config.targetSize, pooling: config.pooling });
  });
  afterAll(() => {
    extractor.dispose();
    loaded.model.dispose();
  });

  it('uses the checkpoint the reference used', () => {
    expect(loaded.sha256).toBe(config.checkpointSha256);
  });

  it('lays out the taps as taps.json', () => {
    const layout = extractor.featureLayout();
    const pick = ({ name, width, offset, channels, groups, poolSize }: FixtureTap) => ({ name, width, offset, channels, groups, poolSize });
    const fromTs = layout.map((entry, i) =>
      pick({ ...entry, channels: taps[i]?.channels === undefined ? undefined : entry.channels, groups: taps[i]?.groups === undefined ? undefined : entry.groups }),
    );
    expect(fromTs).toEqual(taps.map(pick));
    expect(extractor.width).toBe(config.featureDim);
  });

  it('extracts the reference features within 1e-4', () => {
    const input = readNpy(resolve(folder, config.input));
    const expected = readNpy(join(folder, 'features.npy'));
    expect(expected.shape).toEqual([config.batch, config.featureDim]);
    const images = tf.tensor4d(input.data as Float32Array, input.shape as [number, number, number, number]);
    const features = extractor.extract(loaded.model, images);
    expect(features.shape).toEqual([config.batch, config.featureDim]);
    const error = maxAbsDiff(features, expected.data as Float32Array);
    console.log(`${name} parity ('${config.pooling}', S ${config.targetSize}, F ${config.featureDim}): max abs error ${error.toExponential(2)}`);
    expect(error).toBeLessThanOrEqual(1e-4);
    tf.dispose([images, features]);
  });
});

describe('the fixtures differ where the rules differ', () => {
  it('official and adaptive give different group counts at S 336 and different features at S 96', () => {
    const official = readJson<FixtureTap[]>(join(FIXTURES, 'h2t_tiny_s336', 'taps.json'));
    const adaptive = readJson<FixtureTap[]>(join(FIXTURES, 'h2t_tiny_adaptive_s336', 'taps.json'));
    expect(official.find((t) => t.name === 'encoder_0_pre_attn')!.groups).toBe(8);
    expect(adaptive.find((t) => t.name === 'block0.ln1')!.groups).toBe(7);
    const a = readNpy(join(FIXTURES, 'h2t_tiny', 'features.npy')).data as Float32Array;
    const b = readNpy(join(FIXTURES, 'h2t_tiny_adaptive', 'features.npy')).data as Float32Array;
    expect(a.length).not.toBe(b.length);
  });
});
