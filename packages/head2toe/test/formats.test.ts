import * as tf from '@tensorflow/tfjs';
import { randomVit, type VisionTransformer } from '@vqt/core';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADAPTIVE_TAP_POINTS,
  featureLayout,
  geometryOf,
  Head2ToeExtractor,
  Head2ToeModel,
  HEAD2TOE_TAP_POINTS,
  layoutWidth,
  loadExtractedFeatures,
  loadHead2ToeAdapter,
  saveExtractedFeatures,
  saveHead2ToeAdapter,
  type Head2ToePooling,
} from '../src/index.js';
import { maxAbsDiff, randomImages, TINY, useWasm } from './helpers.js';

const S = 96;
const CLASSES = 3;
const backbone = { name: 'tiny_random.safetensors', sha256: 'ab'.repeat(32), config: TINY };

let vit: VisionTransformer;
let images: tf.Tensor4D;
let dir: string;
const extractors = new Map<Head2ToePooling, Head2ToeExtractor>();

beforeAll(async () => {
  await useWasm();
  vit = randomVit(TINY, 8);
  images = randomImages(4, TINY.imageSize, 12);
  for (const pooling of ['official', 'adaptive'] as const) extractors.set(pooling, new Head2ToeExtractor(TINY, { targetSize: S, pooling }));
  dir = mkdtempSync(join(tmpdir(), 'h2t-formats-'));
});
afterAll(() => {
  for (const extractor of extractors.values()) extractor.dispose();
  tf.dispose([images]);
  vit.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** A model with a random head on every 5th feature of the given pooling's layout. */
function randomModel(pooling: Head2ToePooling, seed: number): Head2ToeModel {
  const width = layoutWidth(featureLayout(geometryOf(TINY), S, pooling));
  const keptIndices = Int32Array.from({ length: Math.floor(width / 5) }, (_, i) => 5 * i);
  const model = new Head2ToeModel({ targetSize: S, pooling, featureWidth: width, keptIndices, numClasses: CLASSES, keep: 0.2, lambdaRatio: 0.1 });
  tf.tidy(() => model.setHead(tf.randomNormal([keptIndices.length, CLASSES], 0, 1, 'float32', seed), tf.randomNormal([CLASSES], 0, 1, 'float32', seed + 1)));
  return model;
}

const configFile = (folder: string) => join(folder, 'adapter_config.json');
function editOptions(folder: string, edit: (options: Record<string, unknown>) => void): void {
  const config = JSON.parse(readFileSync(configFile(folder), 'utf8'));
  edit(config.options);
  writeFileSync(configFile(folder), JSON.stringify(config));
}

describe('pooling rules', () => {
  it('official is the default; the rules read different taps and give different features', () => {
    expect(new Head2ToeExtractor(TINY).pooling).toBe('official');
    const official = extractors.get('official')!;
    const adaptive = extractors.get('adaptive')!;
    expect(official.createHook().tapPoints).toEqual(HEAD2TOE_TAP_POINTS);
    // The adaptive rule does not ask core for the extra whole-model taps.
    expect(adaptive.createHook().tapPoints).toEqual(ADAPTIVE_TAP_POINTS);
    expect(official.width).toBe(1776);
    expect(adaptive.width).toBe(1584);
    expect(() => new Head2ToeExtractor(TINY, { pooling: 'max' as Head2ToePooling })).toThrow(/unknown pooling "max"/);
  });

  it('keeps tf.memory().numTensors flat for both rules', () => {
    for (const extractor of extractors.values()) {
      extractor.extract(vit, images).dispose();
      const before = tf.memory().numTensors;
      for (let i = 0; i < 5; i++) extractor.extract(vit, images).dispose();
      expect(tf.memory().numTensors).toBe(before);
    }
  });

  it('a model refuses an extractor or features of the other rule, even at equal width', async () => {
    const model = randomModel('official', 1);
    // Same width, other rule: the width check alone would not notice.
    const official = extractors.get('official')!;
    const lookalike = Object.assign(Object.create(Object.getPrototypeOf(official)) as Head2ToeExtractor, official, { pooling: 'adaptive' });
    expect(lookalike.width).toBe(official.width);
    expect(() => model.logitsForImages(lookalike, vit, images)).toThrow(/'adaptive' pooling.*'official' pooling/);
    expect(() => model.logitsForImages(extractors.get('adaptive')!, vit, images)).toThrow(/does not match the model/);
    const features = await extractors.get('official')!.extractAll(vit, [{ images, labels: Int32Array.from([0, 1, 2, 0]) }]);
    expect(() => model.evaluateFeatures({ ...features, pooling: 'adaptive' })).toThrow(/extracted with 'adaptive' pooling/);
    expect(model.evaluateFeatures(features).count).toBe(4);
    model.dispose();
  });
});

describe('adapter files', () => {
  it('records the pooling and the feature layout, and reproduces predictions', () => {
    const model = randomModel('official', 2);
    const folder = join(dir, 'official');
    saveHead2ToeAdapter(folder, model, backbone);
    const saved = JSON.parse(readFileSync(configFile(folder), 'utf8')).options;
    expect(saved.pooling).toBe('official');
    expect(saved.featureLayout[0]).toEqual({ name: 'root_output_with_cls', offset: 0, width: 96, channels: 48, groups: 2, poolSize: 8 });
    expect(saved.featureLayout.at(-1)).toEqual({ name: 'cls_embedded', offset: 1728, width: 48, channels: 48, groups: 1 });
    const loaded = loadHead2ToeAdapter(folder, { backboneSha256: backbone.sha256 });
    expect(loaded.options.pooling).toBe('official');
    expect(loaded.model.spec.pooling).toBe('official');
    const a = model.logitsForImages(extractors.get('official')!, vit, images);
    const b = loaded.model.logitsForImages(extractors.get('official')!, vit, images);
    expect(maxAbsDiff(a, b)).toBe(0);
    tf.dispose([a, b]);
    model.dispose();
    loaded.model.dispose();
  });

  it('loads an adapter written before pooling existed as adaptive, with its old layout', () => {
    const model = randomModel('adaptive', 3);
    const folder = join(dir, 'old');
    saveHead2ToeAdapter(folder, model, backbone);
    // What the earlier version wrote: no pooling, no featureLayout.
    editOptions(folder, (options) => {
      delete options.pooling;
      delete options.featureLayout;
    });
    const loaded = loadHead2ToeAdapter(folder);
    expect(loaded.options.pooling).toBe('adaptive');
    expect(loaded.layout[0].name).toBe('embed');
    expect(loaded.layout.at(-1)!.name).toBe('final_cls');
    const a = model.logitsForImages(extractors.get('adaptive')!, vit, images);
    const b = loaded.model.logitsForImages(extractors.get('adaptive')!, vit, images);
    expect(maxAbsDiff(a, b)).toBe(0);
    expect(() => loaded.model.logitsForImages(extractors.get('official')!, vit, images)).toThrow(/does not match the model/);
    tf.dispose([a, b]);
    model.dispose();
    loaded.model.dispose();
  });

  it('refuses an old adapter whose width fits no old layout, saying it was written by an older version', () => {
    const model = randomModel('official', 4);
    const folder = join(dir, 'old-misfit');
    saveHead2ToeAdapter(folder, model, backbone);
    editOptions(folder, (options) => {
      delete options.pooling;
      delete options.featureLayout;
    });
    let message = '';
    try {
      loadHead2ToeAdapter(folder);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain(configFile(folder));
    expect(message).toMatch(/written by an older version/);
    expect(message).not.toContain('\n');
    model.dispose();
  });

  it('refuses an unknown pooling and a feature layout this version would not compute', () => {
    const model = randomModel('official', 5);
    const folder = join(dir, 'tampered');
    saveHead2ToeAdapter(folder, model, backbone);
    editOptions(folder, (options) => {
      options.pooling = 'median';
    });
    expect(() => loadHead2ToeAdapter(folder)).toThrow(/adapter_config\.json: unknown pooling "median"/);
    saveHead2ToeAdapter(folder, model, backbone);
    editOptions(folder, (options) => {
      (options.featureLayout as { name: string }[])[2].name = 'encoder_0_something';
    });
    expect(() => loadHead2ToeAdapter(folder)).toThrow(/saved feature layout has encoder_0_something \[192, 288\) at tap 2, 'official' pooling here gives encoder_0_pre_attn/);
    model.dispose();
  });
});

describe('feature caches', () => {
  it('record the pooling; a cache written before pooling existed reads as adaptive', async () => {
    const labels = Int32Array.from([0, 1, 2, 0]);
    const features = await extractors.get('adaptive')!.extractAll(vit, [{ images, labels }]);
    const folder = join(dir, 'cache');
    saveExtractedFeatures(folder, features);
    expect(loadExtractedFeatures(folder, { pooling: 'adaptive' }).pooling).toBe('adaptive');
    expect(() => loadExtractedFeatures(folder, { pooling: 'official' })).toThrow(/'adaptive' pooling, not 'official'/);
    const meta = JSON.parse(readFileSync(join(folder, 'features.json'), 'utf8'));
    delete meta.pooling;
    writeFileSync(join(folder, 'features.json'), JSON.stringify(meta));
    const old = loadExtractedFeatures(folder);
    expect(old.pooling).toBe('adaptive');
    expect(maxAbsDiff(old.features, features.features)).toBe(0);
    expect(() => loadExtractedFeatures(folder, { pooling: 'official' })).toThrow(/written by an older version/);
  });
});
