import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adaptformerMethod, type FittedAdaptFormer } from '../src/index.js';
import { expectReferenceForward, FIXTURE_DIR, openParityFixture, type ParityFixture } from './helpers.js';

// The fixture is an adapter directory written by tools/reference/peft_ref.py (PyTorch, float64):
// adapters on blocks 0 and 2 only, bottleneck 8, s 0.1, random up weights and biases.
let fixture: ParityFixture<FittedAdaptFormer>;
beforeAll(async () => void (fixture = await openParityFixture(FIXTURE_DIR)));
afterAll(() => fixture.dispose());

describe('AdaptFormer forward parity with the PyTorch reference', () => {
  it('opens the reference adapter directory through the registry', () => {
    const { fitted } = fixture;
    expect(fitted.method).toBe(adaptformerMethod.name);
    expect(fitted.options()).toEqual({ bottleneck: 8, scale: 0.1, dropout: 0.1, blocks: [0, 2] });
    expect([...fitted.hook.modules.keys()]).toEqual([0, 2]);
    expect(fitted.trainableParameters()).toBe(2 * (48 * 8 + 8 + 8 * 48 + 48) + 48 * 5 + 5);
  });

  it('gives the reference block outputs, final CLS and logits (<= 1e-4)', () => {
    expectReferenceForward(fixture);
  });

  it('writes back exactly the tensors it read', () => {
    const exported = fixture.fitted.exportTensors();
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
