import * as tf from '@tensorflow/tfjs';
import { expectFloat32, initBackend, loadAdapter, loadVit, openFitted, readNpy, type FittedMethod, type HostTensor, type LoadedVit } from '@vqt/core';
import '@vqt/adaptformer';
import '@vqt/lora';
import '@vqt/vpt';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyVqtTensors, FeatureCache, VqtModel, type VqtCachedBatch, type VqtMethodConfig } from '../src/index.js';
import { chunks, maxAbsDiff } from './helpers.js';

// Parity of VQT stacked on an adapting method (issue 12) with tools/reference/stack_ref.py (PyTorch,
// float64). Each fixture is a complete stacked adapter directory on the tiny_f32 checkpoint, T = 2
// queries per block; its base is AdaptFormer (blocks 0 and 2), LoRA (q, k, v, proj, fc1, fc2 on
// blocks 1 and 2, so the queries take LoRA's q/proj/fc deltas and the explicit k/v path), VPT-Deep
// or VPT-Shallow (2 prompts). The reference computes the queries as rows of the adapted sequence
// that nobody attends to.

const TOLERANCE = 1e-4;
const HERE = dirname(fileURLToPath(import.meta.url));
const FIXTURES = join(HERE, 'fixtures');
const TINY_CHECKPOINT = join(HERE, '..', '..', 'core', 'test', 'fixtures', 'tiny_f32', 'model.safetensors');
const CASES = [
  { folder: 'stack_adaptformer', method: 'adaptformer+vqt', base: 'adaptformer' },
  { folder: 'stack_lora', method: 'lora+vqt', base: 'lora' },
  { folder: 'stack_vpt', method: 'vpt+vqt', base: 'vpt' },
  { folder: 'stack_vpt_shallow', method: 'vpt-shallow+vqt', base: 'vpt-shallow' },
] as const;

let backbone: LoadedVit;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  backbone = loadVit(TINY_CHECKPOINT);
});
afterAll(() => backbone.model.dispose());

function fixtureArray(folder: string, name: string): { shape: number[]; data: Float32Array } {
  const file = join(FIXTURES, folder, name);
  return expectFloat32(readNpy(file), file, name);
}

function expected(folder: string, name: string): tf.Tensor {
  const array = fixtureArray(folder, name);
  return tf.tensor(array.data, array.shape);
}

describe.each(CASES)('$method: parity with the PyTorch reference', ({ folder, method, base }) => {
  const dir = join(FIXTURES, folder);
  let fitted: FittedMethod;
  /** The stack's VQT part rebuilt on the opened base's hooks: the hook and the cache path the stage-2 fit uses. */
  let top: VqtModel;
  let input: tf.Tensor4D;
  let inputHost: Float32Array;

  beforeAll(() => {
    fitted = openFitted(dir, backbone).fitted;
    const { config, tensors } = loadAdapter(dir, { backboneSha256: backbone.sha256 });
    const vqt = (config.options as Record<string, VqtMethodConfig>).vqt;
    top = new VqtModel(backbone.model, { numClasses: config.numClasses, queries: vqt.queries, featureNorm: vqt.featureNorm, dropout: vqt.dropout, baseHooks: fitted.adaptingHooks!() });
    const own = new Map<string, HostTensor>([...tensors].filter(([key]) => key.startsWith('vqt.') || key.startsWith('head.')));
    applyVqtTensors(top, own, join(dir, 'adapter_model.safetensors'));
    const array = fixtureArray(folder, 'input.npy');
    inputHost = array.data;
    input = tf.tensor4d(array.data, array.shape as [number, number, number, number]);
  });
  afterAll(() => {
    fitted.dispose();
    top.dispose();
    input.dispose();
  });

  it('opens the reference adapter directory as a stack through the registry', () => {
    expect(fitted.method).toBe(method);
    expect(Object.keys(fitted.options())).toEqual([base, 'vqt']);
    expect((fitted.options().vqt as VqtMethodConfig).queries).toBe(2);
    expect(fitted.numClasses).toBe(5);
  });

  it('head features and logits from images (<= 1e-4)', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const features = fitted.headFeatures(input);
      expect(features.shape).toEqual([2, 48 * (1 + 3 * 2)]);
      const errors = { features: maxAbsDiff(features, expected(folder, 'head_features.npy')), logits: maxAbsDiff(fitted.logits(input), expected(folder, 'logits.npy')) };
      console.log(`${method} from images, max abs errors`, errors);
      expect(errors.features).toBeLessThanOrEqual(TOLERANCE);
      expect(errors.logits).toBeLessThanOrEqual(TOLERANCE);
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('head features and logits from the feature cache built through the frozen base (<= 1e-4)', async () => {
    // One image per chunk: the cache assembles its rows from two host batches.
    const cache = await FeatureCache.build(backbone.model, chunks(inputHost, new Int32Array([1, 3]), 32, 1), { hooks: fitted.adaptingHooks!() });
    try {
      const before = tf.memory().numTensors;
      let batch: VqtCachedBatch | undefined;
      for await (const b of cache.batches(2, { shuffle: false, seed: 0, epoch: 0 })) batch = b;
      tf.tidy(() => {
        const errors = {
          features: maxAbsDiff(top.headInput(batch!), expected(folder, 'head_features.npy')),
          logits: maxAbsDiff(top.logits(batch!, { training: false, seed: 0 }), expected(folder, 'logits.npy')),
        };
        console.log(`${method} from the cache, max abs errors`, errors);
        expect(errors.features).toBeLessThanOrEqual(TOLERANCE);
        expect(errors.logits).toBeLessThanOrEqual(TOLERANCE);
      });
      tf.dispose([batch!.ln1, batch!.cls]);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      await cache.close();
    }
  });

  it('the queries leave every original token unchanged; the adapted tokens and query outputs match the reference', () => {
    tf.tidy(() => {
      const vit = backbone.model;
      const hooks = fitted.adaptingHooks!();
      const alone = vit.forward(input, { hooks, returnBlocks: true });
      const withQueries = vit.forward(input, { hooks: [...hooks, top.hook], returnBlocks: true });
      const outputs = top.hook.takeOutputs();
      expect(withQueries.blocks!.length).toBe(3);
      withQueries.blocks!.forEach((block, m) => {
        expect(maxAbsDiff(block, alone.blocks![m]), `block ${m}`).toBe(0);
        expect(maxAbsDiff(block, expected(folder, `block_${m}.npy`)), `block ${m} vs reference`).toBeLessThanOrEqual(TOLERANCE);
      });
      expect(maxAbsDiff(withQueries.cls, alone.cls)).toBe(0);
      expect(maxAbsDiff(withQueries.cls, expected(folder, 'cls.npy'))).toBeLessThanOrEqual(TOLERANCE);
      expect(maxAbsDiff(tf.stack(outputs), expected(folder, 'query_outputs.npy'))).toBeLessThanOrEqual(TOLERANCE);
      // The base is live: the adapted CLS is not the frozen backbone's.
      expect(maxAbsDiff(alone.cls, vit.forward(input).cls)).toBeGreaterThan(1e-2);
    });
  });
});
