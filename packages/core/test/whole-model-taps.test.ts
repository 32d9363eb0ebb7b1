import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, layerNorm, randomVit, type Hook, type TapPoint, type VisionTransformer } from '../src/index.js';
import { images, maxAbsDiff, TINY } from './helpers.js';

/** Keeps every tap it asks for, keyed by `${block}.${point}`. */
function tapHook(points: TapPoint[]): Hook & { seen: Map<string, tf.Tensor> } {
  const seen = new Map<string, tf.Tensor>();
  return {
    name: 'taps',
    seen,
    tapPoints: points,
    trainableVariables: () => [],
    tap(point, value, ctx) {
      seen.set(`${ctx.block}.${point}`, ctx.keep(value));
    },
  };
}

let vit: VisionTransformer;
let x: tf.Tensor4D;
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  vit = randomVit(TINY, 7);
  x = images(2, TINY.imageSize, 4);
});
afterAll(() => {
  vit.dispose();
  x.dispose();
});

describe('whole-model taps (Head2Toe root_output_with_cls and encoded_sequence)', () => {
  it('patchEmbed is the embedding before the position embedding; finalSequence the final-normed tokens', () => {
    const hook = tapHook(['patchEmbed', 'embed', 'finalSequence', 'finalCls']);
    tf.tidy(() => {
      const { cls, blocks } = vit.forward(x, { hooks: [hook], returnBlocks: true });
      const L = vit.numTokens;
      const root = hook.seen.get('-1.patchEmbed')!;
      expect(root.shape).toEqual([2, L, TINY.dim]);
      expect(maxAbsDiff(tf.add(root, vit.params.posEmbed), hook.seen.get('-1.embed')!)).toBe(0);
      // Row 0 of every image is the CLS token itself.
      const clsRow = tf.reshape(tf.slice(root, [0, 0, 0], [2, 1, TINY.dim]), [2, TINY.dim]);
      expect(maxAbsDiff(clsRow, tf.tile(tf.reshape(vit.params.clsToken, [1, TINY.dim]), [2, 1]))).toBe(0);

      const sequence = hook.seen.get(`${TINY.depth}.finalSequence`)!;
      expect(sequence.shape).toEqual([2, L, TINY.dim]);
      expect(maxAbsDiff(sequence, layerNorm(blocks![TINY.depth - 1], vit.params.norm!))).toBe(0);
      const first = tf.reshape(tf.slice(sequence, [0, 0, 0], [2, 1, TINY.dim]), [2, TINY.dim]);
      expect(maxAbsDiff(first, cls)).toBeLessThan(1e-6);
    });
  });

  it('leaves the forward unchanged and computes nothing extra when no hook asks', async () => {
    const plain = tf.tidy(() => vit.forward(x).cls);
    const hook = tapHook(['patchEmbed', 'finalSequence']);
    const tapped = tf.tidy(() => vit.forward(x, { hooks: [hook] }).cls);
    expect(maxAbsDiff(plain, tapped)).toBe(0);
    tf.dispose([...hook.seen.values()]);
    const before = tf.memory().numTensors;
    const kernels = async (hooks: Hook[]) => (await tf.profile(() => tf.tidy(() => void vit.forward(x, { hooks }).cls.dataSync()))).kernels.length;
    const plainKernels = await kernels([]);
    expect(await kernels([tapHook(['embed', 'finalCls'])])).toBe(plainKernels);
    expect(await kernels([tapHook(['patchEmbed', 'finalSequence'])])).toBeGreaterThan(plainKernels);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([plain, tapped]);
  });
});
