import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loraMethod, type FittedLora } from '../src/index.js';
import { expectReferenceForward, FIXTURE_DIR, maxAbsDiff, openParityFixture, type ParityFixture } from './helpers.js';

// The fixture is an adapter directory written by tools/reference/peft_ref.py (PyTorch, float64):
// rank 4, alpha 6 (scaling 1.5) on all six Linears of blocks 1 and 2; block 0 plain.
let fixture: ParityFixture<FittedLora>;
beforeAll(async () => void (fixture = await openParityFixture(FIXTURE_DIR)));
afterAll(() => fixture.dispose());

describe('LoRA forward parity with the PyTorch reference', () => {
  it('opens the reference adapter directory through the registry', () => {
    const { fitted } = fixture;
    expect(fitted.method).toBe(loraMethod.name);
    expect(fitted.options()).toEqual({ rank: 4, alpha: 6, targets: ['q', 'k', 'v', 'proj', 'fc1', 'fc2'], dropout: 0, blocks: [1, 2] });
    expect(fitted.hook.scaling).toBe(1.5);
    const perBlock = 4 * (4 * (48 + 48)) + 4 * (48 + 192) + 4 * (192 + 48);
    expect(fitted.trainableParameters()).toBe(2 * perBlock + 48 * 5 + 5);
  });

  it('gives the reference block outputs, final CLS, head features and logits (<= 1e-4)', () => {
    expectReferenceForward(fixture);
  });

  it('merged weights give the reference outputs with no hooks', () => {
    const { fitted, input } = fixture;
    const merged = fitted.merge();
    tf.tidy(() => {
      const { cls } = merged.forward(input);
      expect(maxAbsDiff(cls, fixture.tensor('cls.npy'))).toBeLessThan(1e-4);
      expect(maxAbsDiff(fitted.classifier.head.apply(cls), fixture.tensor('logits.npy'))).toBeLessThan(1e-4);
    });
    merged.dispose();
    // The original backbone is untouched by merging and disposing the merged copy.
    tf.tidy(() => {
      expect(maxAbsDiff(fitted.headFeatures(input), fixture.tensor('cls.npy'))).toBeLessThan(1e-4);
    });
  });

  it('writes back exactly the tensors it read, in PEFT layout', () => {
    const exported = fixture.fitted.exportTensors();
    expect(Object.keys(exported).length).toBe(2 * 6 * 2 + 2);
    expect(exported['lora.blocks.1.fc1.lora_A'].shape).toEqual([4, 48]);
    expect(exported['lora.blocks.1.fc1.lora_B'].shape).toEqual([192, 4]);
    expect(exported['lora.blocks.2.fc2.lora_A'].shape).toEqual([4, 192]);
    expect(exported['lora.blocks.2.fc2.lora_B'].shape).toEqual([48, 4]);
    expect(exported['lora.blocks.0.q.lora_A']).toBeUndefined();
    tf.dispose(Object.values(exported));
  });
});
