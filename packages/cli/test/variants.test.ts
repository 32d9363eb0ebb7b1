import * as tf from '@tensorflow/tfjs';
import { arrayImageSplit, fitMethod, initBackend, openFitted, randomVit, saveFitted, type LoadedVit } from '@vqt/core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../src/methods.js';

// Every method on a ViT variant that breaks "CLS + patches" assumptions: LayerScale, two register
// tokens (attended to, dropped from the outputs) and QuickGELU, as DINOv2-with-registers and OpenAI CLIP have.
const VARIANT = { imageSize: 32, patchSize: 8, dim: 48, depth: 3, heads: 3, mlpRatio: 4, eps: 1e-6, layerScale: true, registerTokens: 2, activation: 'quickGelu' as const };
let backbone: LoadedVit;
let images: tf.Tensor4D;
const side = VARIANT.imageSize;

beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
  backbone = { model: randomVit(VARIANT, 4), sha256: 'c'.repeat(64), name: 'variant', file: 'variant' } as unknown as LoadedVit;
  images = tf.randomNormal([8, 3, side, side], 0, 1, 'float32', 2) as tf.Tensor4D;
});
afterAll(() => {
  images.dispose();
  backbone.model.dispose();
});

const methods: [string, Record<string, unknown>][] = [
  ['linear', {}],
  ['head2toe', { targetSize: 96 }],
  ['vqt', { queries: 2 }],
  ['vpt', { prompts: 2 }],
  ['adaptformer', { bottleneck: 4 }],
  ['lora', { rank: 2, targets: ['q', 'k', 'v', 'proj', 'fc1', 'fc2'] }],
  ['full', { lastBlocks: 1 }],
  ['vpt+vqt', { vpt: { prompts: 2 }, vqt: {} }],
  ['lora+vqt', { lora: { rank: 2 }, vqt: {} }],
];

describe('every method on a LayerScale + registers + QuickGELU ViT', () => {
  it.each(methods)('%s fits, predicts and reopens exactly', async (method, config) => {
    const data = arrayImageSplit(images.dataSync() as Float32Array, Int32Array.from({ length: 8 }, (_, i) => i % 2), side);
    const fitted = await fitMethod(method, backbone, data, { epochs: 1, batchSize: 4, config });
    const dir = mkdtempSync(join(tmpdir(), `variant-${method}-`));
    saveFitted(dir, fitted, backbone);
    const { fitted: reopened } = openFitted(dir, backbone);
    const [a, b] = tf.tidy(() => [fitted.logits(images), reopened.logits(images)]);
    expect(a.shape).toEqual([8, 2]);
    expect(Array.from(a.dataSync()).every(Number.isFinite)).toBe(true);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0])).toBeLessThan(1e-5);
    tf.dispose([a, b]);
    fitted.dispose();
    reopened.dispose();
  });
});
