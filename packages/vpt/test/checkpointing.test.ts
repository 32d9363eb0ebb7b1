import * as tf from '@tensorflow/tfjs';
import { HookedClassifier, initBackend, peakNewBufferBytes, randomVit, type VisionTransformer } from '@vqt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VptHook, type VptConfig } from '../src/index.js';
import { crossEntropy, maxAbsDiff, TINY } from './helpers.js';

// VPT under core's per-block gradient checkpointing (VisionTransformer.checkpointing, core from the
// commit that adds it on): the recomputed blocks must redo the same prompt insertion and the same
// seeded dropout, including blocks whose token count changes (shallow: in at the first, out at the last).

type Checkpointing = 'on' | 'off';
let vit: VisionTransformer & { checkpointing?: Checkpointing | 'auto' };
let images: tf.Tensor4D;
const labels = [0, 1, 2];

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  vit = randomVit(TINY, 4);
  images = tf.randomNormal([3, 3, 32, 32], 0, 1, 'float32', 12) as tf.Tensor4D;
});
afterAll(() => {
  images.dispose();
  vit.dispose();
});

async function step(config: Partial<VptConfig>, mode: Checkpointing) {
  vit.checkpointing = mode;
  const hook = new VptHook({ depth: TINY.depth, dim: TINY.dim, patchSize: TINY.patchSize }, { prompts: 2, dropout: 0.1, seed: 3, ...config });
  const classifier = new HookedClassifier(vit, [hook], 3);
  tf.tidy(() => classifier.head.weight.assign(tf.randomNormal([TINY.dim, 3], 0, 0.3, 'float32', 5)));
  let result!: { loss: number; grads: tf.Tensor[] };
  const bytes = await peakNewBufferBytes(() => {
    const { value, grads } = tf.variableGrads(
      () => crossEntropy(classifier.logits({ images, labels: Int32Array.from(labels) }, { training: true, seed: 8 }), labels),
      classifier.trainableVariables(),
    );
    result = { loss: value.dataSync()[0], grads: classifier.trainableVariables().map((v) => grads[v.name]) };
    value.dispose();
  });
  classifier.dispose();
  hook.dispose();
  return { ...result, bytes };
}

describe('VPT with per-block gradient checkpointing', () => {
  it.for<{ name: string; config: Partial<VptConfig> }>([
    { name: 'deep', config: { deep: true } },
    { name: 'shallow', config: { deep: false } },
    { name: 'deep, last 2 blocks', config: { deep: true, lastBlocks: 2 } },
  ])('$name: same loss and gradients (dropout on) with checkpointing on and off, less step memory', async ({ config }, ctx) => {
    if (!('checkpointing' in vit)) ctx.skip(); // core without gradient checkpointing
    const before = tf.memory().numTensors;
    const off = await step(config, 'off');
    const on = await step(config, 'on');
    vit.checkpointing = 'auto';
    expect(Math.abs(on.loss - off.loss)).toBeLessThan(1e-6);
    on.grads.forEach((g, i) => expect(maxAbsDiff(g, off.grads[i])).toBeLessThan(1e-5));
    expect(Math.max(...off.grads.map((g) => tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0])))).toBeGreaterThan(1e-3);
    console.log(`checkpointing ${JSON.stringify(config)}: step new-buffer peak off ${off.bytes} B, on ${on.bytes} B`);
    if (!config.lastBlocks) expect(on.bytes).toBeLessThan(off.bytes);
    tf.dispose([...on.grads, ...off.grads]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
