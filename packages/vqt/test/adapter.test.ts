import * as tf from '@tensorflow/tfjs';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, initBackend, loadVit, readSafetensors, type LoadedVit } from '@vqt/core';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadVqtAdapter, saveVqtAdapter, VqtModel } from '../src/index.js';
import { fixtureConfig, hostImages, maxAbsDiff } from './helpers.js';

const CLASSES = 6;
let loaded: LoadedVit;
let dir: string;
const fixture = fixtureConfig();

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  loaded = loadVit(fixture.checkpointPath, { heads: fixture.heads });
  dir = mkdtempSync(join(tmpdir(), 'vqt-adapter-'));
});
afterAll(() => {
  loaded.model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('adapter', () => {
  it('round trip: same logits; file holds vqt.queries, head.weight [out, in], head.bias', () => {
    const model = new VqtModel(loaded.model, { numClasses: CLASSES, queries: 3, featureNorm: 'mean', dropout: 0.2, seed: 9, headInitStd: 0.05 });
    tf.tidy(() => model.headBias.assign(tf.randomNormal([CLASSES], 0, 1, 'float32', 3)));
    const adapterDir = join(dir, 'roundtrip');
    saveVqtAdapter(adapterDir, model, loaded, { labelNames: ['a', 'b', 'c', 'd', 'e', 'f'], training: { task: 'unit-test' } });

    const config = JSON.parse(readFileSync(join(adapterDir, ADAPTER_CONFIG_FILE), 'utf8'));
    expect(config).toMatchObject({
      method: 'vqt',
      formatVersion: 1,
      numClasses: CLASSES,
      backbone: { name: 'model.safetensors', sha256: fixture.checkpointSha256, config: loaded.model.config },
      options: { queries: 3, featureNorm: 'mean', dropout: 0.2 },
      labelNames: ['a', 'b', 'c', 'd', 'e', 'f'],
    });
    const { tensors } = readSafetensors(join(adapterDir, ADAPTER_WEIGHTS_FILE));
    expect([...tensors.keys()].sort()).toEqual(['head.bias', 'head.weight', 'vqt.queries']);
    expect(tensors.get('vqt.queries')!.shape).toEqual([3, 3, 48]);
    expect(tensors.get('head.weight')!.shape).toEqual([CLASSES, model.featureDim]);
    expect(tensors.get('head.bias')!.shape).toEqual([CLASSES]);
    // [out, in] in the file: row c is class c's weights.
    const fileWeight = tensors.get('head.weight')!.data;
    const modelWeight = model.headWeight.dataSync();
    expect(fileWeight[1 * model.featureDim + 5]).toBe(modelWeight[5 * CLASSES + 1]);

    const { model: restored, config: restoredConfig } = loadVqtAdapter(adapterDir, loaded);
    expect(restoredConfig.training).toEqual({ task: 'unit-test' });
    expect(restored.config).toMatchObject({ queries: 3, featureNorm: 'mean', dropout: 0.2 });
    tf.tidy(() => {
      const images = tf.tensor4d(hostImages(2, 32, 4), [2, 3, 32, 32]);
      const batch = { images, labels: new Int32Array(2) };
      expect(maxAbsDiff(restored.logits(batch, { training: false, seed: 0 }), model.logits(batch, { training: false, seed: 0 }))).toBe(0);
      expect(maxAbsDiff(restored.hook.stackedQueries(), model.hook.stackedQueries())).toBe(0);
    });
    restored.dispose();
    model.dispose();
  });

  it('always checks the backbone: another checkpoint of the same shape is refused in one line', () => {
    const model = new VqtModel(loaded.model, { numClasses: CLASSES });
    const adapterDir = join(dir, 'sha');
    saveVqtAdapter(adapterDir, model, loaded);
    model.dispose();
    // The same architecture with one weight byte changed: only the sha256 tells them apart.
    const bytes = readFileSync(fixture.checkpointPath);
    bytes[bytes.length - 1] ^= 0x01;
    const otherFile = join(dir, 'other.safetensors');
    writeFileSync(otherFile, bytes);
    const other = loadVit(otherFile, { heads: fixture.heads });
    expect(other.model.config).toEqual(loaded.model.config);
    let message = '';
    try {
      loadVqtAdapter(adapterDir, other);
    } catch (error) {
      message = (error as Error).message;
    }
    other.model.dispose();
    expect(message).toMatch(/adapter_config\.json: trained on backbone model\.safetensors \(sha256 [0-9a-f]{12}\.\.\.\), but the checkpoint given has sha256/);
    expect(message).not.toContain('\n');
    // A bare VisionTransformer (the old signature) carries no sha256: refused, not trusted.
    expect(() => loadVqtAdapter(adapterDir, loaded.model as unknown as LoadedVit)).toThrow(/pass the backbone as loadVit\(\) returns it/);
    const { model: restored } = loadVqtAdapter(adapterDir, loaded);
    restored.dispose();
  });

  it('names the tensor when a shape is wrong, and refuses other methods', () => {
    const model = new VqtModel(loaded.model, { numClasses: CLASSES, queries: 2 });
    const adapterDir = join(dir, 'bad');
    saveVqtAdapter(adapterDir, model, loaded);
    model.dispose();
    const configFile = join(adapterDir, ADAPTER_CONFIG_FILE);
    const config = JSON.parse(readFileSync(configFile, 'utf8'));
    writeFileSync(configFile, JSON.stringify({ ...config, options: { ...config.options, queries: 4 } }));
    expect(() => loadVqtAdapter(adapterDir, loaded)).toThrow(/vqt\.queries.*expected shape \[3, 4, 48\]/);
    writeFileSync(configFile, JSON.stringify({ ...config, method: 'head2toe' }));
    expect(() => loadVqtAdapter(adapterDir, loaded)).toThrow(/method is 'head2toe'/);
  });
});
