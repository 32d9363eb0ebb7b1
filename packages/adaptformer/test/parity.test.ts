import * as tf from '@tensorflow/tfjs';
import { initBackend, loadVit, openFitted, type LoadedVit } from '@vqt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adaptformerMethod, type FittedAdaptFormer } from '../src/index.js';
import { FIXTURE_DIR, fixtureTensor, maxAbsDiff, TINY_CHECKPOINT } from './helpers.js';

// The fixture is an adapter directory written by tools/reference/peft_ref.py (PyTorch, float64):
// adapters on blocks 0 and 2 only, bottleneck 8, s 0.1, random up weights and biases.
let backbone: LoadedVit;
let fitted: FittedAdaptFormer;
let input: tf.Tensor4D;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  backbone = loadVit(TINY_CHECKPOINT);
  fitted = openFitted(FIXTURE_DIR, backbone).fitted as FittedAdaptFormer;
  input = fixtureTensor('input.npy') as tf.Tensor4D;
});
afterAll(() => {
  fitted.dispose();
  backbone.model.dispose();
  input.dispose();
});

describe('AdaptFormer forward parity with the PyTorch reference', () => {
  it('opens the reference adapter directory through the registry', () => {
    expect(fitted.method).toBe(adaptformerMethod.name);
    expect(fitted.options()).toEqual({ bottleneck: 8, scale: 0.1, dropout: 0.1, blocks: [0, 2] });
    expect([...fitted.hook.modules.keys()]).toEqual([0, 2]);
    expect(fitted.trainableParameters()).toBe(2 * (48 * 8 + 8 + 8 * 48 + 48) + 48 * 5 + 5);
  });

  it('gives the reference block outputs, final CLS and logits (<= 1e-4)', () => {
    tf.tidy(() => {
      const { cls, blocks } = backbone.model.forward(input, { hooks: fitted.adaptingHooks!(), returnBlocks: true });
      const expectedBlocks = fixtureTensor('blocks.npy');
      blocks!.forEach((block, m) => expect(maxAbsDiff(block, tf.squeeze(tf.slice(expectedBlocks, [m], [1]), [0]))).toBeLessThan(1e-4));
      expect(maxAbsDiff(cls, fixtureTensor('cls.npy'))).toBeLessThan(1e-4);
      expect(maxAbsDiff(fitted.headFeatures(input), fixtureTensor('cls.npy'))).toBeLessThan(1e-4);
      expect(maxAbsDiff(fitted.logits(input), fixtureTensor('logits.npy'))).toBeLessThan(1e-4);
      // The adapters matter: the plain backbone is far from the reference.
      expect(maxAbsDiff(backbone.model.forward(input).cls, fixtureTensor('cls.npy'))).toBeGreaterThan(1e-2);
    });
  });

  it('writes back exactly the tensors it read', () => {
    const exported = fitted.exportTensors();
    const names = Object.keys(exported).sort();
    expect(names).toEqual([
      'adaptformer.blocks.0.down.bias', 'adaptformer.blocks.0.down.weight', 'adaptformer.blocks.0.up.bias', 'adaptformer.blocks.0.up.weight',
      'adaptformer.blocks.2.down.bias', 'adaptformer.blocks.2.down.weight', 'adaptformer.blocks.2.up.bias', 'adaptformer.blocks.2.up.weight',
      'head.bias', 'head.weight',
    ]);
    expect(exported['adaptformer.blocks.2.down.weight'].shape).toEqual([8, 48]);
    expect(exported['adaptformer.blocks.2.up.weight'].shape).toEqual([48, 8]);
    tf.dispose(Object.values(exported));
  });
});
