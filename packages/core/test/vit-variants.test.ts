import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, randomVit, setAttentionKernel, setTapedAttentionKernel, type Hook, type HookContext, type TapPoint, type VitConfig } from '../src/index.js';
import { images, maxAbsDiff, TINY } from './helpers.js';

const VARIANT: VitConfig = { ...TINY, layerScale: true, registerTokens: 2, activation: 'quickGelu', noEmbedClass: true, qkNorm: true, preNorm: true };

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});
afterEach(() => setAttentionKernel(undefined));

function sideQueryHook(queries: tf.Tensor2D[]): Hook & { outputs: tf.Tensor3D[] } {
  const hook = {
    name: 'side-queries',
    outputs: [] as tf.Tensor3D[],
    trainableVariables: () => [],
    sideQueries: (ctx: HookContext) => queries[ctx.block],
    sideQueryOutput(out: tf.Tensor3D, ctx: HookContext) {
      hook.outputs[ctx.block] = ctx.keep(out);
    },
  };
  return hook;
}

describe('one attention head', () => {
  it('forward and side queries run (no oneHot of depth 1), on both kernels', () => {
    const vit = randomVit({ ...TINY, heads: 1 }, 3);
    const queries = [0, 1, 2].map((m) => tf.randomNormal([2, TINY.dim], 0, 0.3, 'float32', m) as tf.Tensor2D);
    const results = (['perHead', 'batched'] as const).map((kernel) => {
      setAttentionKernel(kernel);
      return tf.tidy(() => {
        const hook = sideQueryHook(queries);
        const { cls } = vit.forward(images(2, 32), { hooks: [hook] });
        expect(hook.outputs).toHaveLength(3);
        return [cls, tf.stack(hook.outputs)];
      });
    });
    expect(maxAbsDiff(results[0][0], results[1][0])).toBeLessThan(1e-5);
    expect(maxAbsDiff(results[0][1], results[1][1])).toBeLessThan(1e-5);
    tf.dispose([...results.flat(), ...queries]);
    vit.dispose();
  });
});

describe('variants in one model (registers, LayerScale, qk-norm, norm_pre, QuickGELU, no_embed_class)', () => {
  it('hooks see [CLS, registers, patches]; returned blocks drop the registers; both kernels agree', () => {
    const vit = randomVit(VARIANT, 4);
    expect(vit.numTokens).toBe(1 + 2 + 16);
    expect(vit.params.posEmbed.shape).toEqual([16, TINY.dim]);
    const seen: { point: TapPoint; shape: number[]; prefix?: number }[] = [];
    const tapHook: Hook = {
      name: 'taps',
      trainableVariables: () => [],
      tapPoints: ['embed', 'ln1'],
      tap: (point, value, ctx) => void seen.push({ point, shape: value.shape, prefix: ctx.prefixTokens }),
    };
    const outs = (['perHead', 'batched'] as const).map((kernel) => {
      setAttentionKernel(kernel);
      return tf.tidy(() => {
        const { cls, blocks } = vit.forward(images(2, 32), { hooks: [tapHook], returnBlocks: true });
        expect(blocks![0].shape).toEqual([2, 17, TINY.dim]);
        return [cls, ...blocks!];
      });
    });
    expect(seen[0]).toEqual({ point: 'embed', shape: [2, 19, TINY.dim], prefix: 3 });
    expect(seen[1]).toEqual({ point: 'ln1', shape: [2, 19, TINY.dim], prefix: 3 });
    outs[0].forEach((t, i) => expect(maxAbsDiff(t, outs[1][i])).toBeLessThan(1e-5));
    tf.dispose(outs.flat());
    vit.dispose();
  });

  it('side queries attend to the registers', () => {
    const vit = randomVit({ ...TINY, registerTokens: 2 }, 5);
    const queries = [0, 1, 2].map((m) => tf.randomNormal([1, TINY.dim], 0, 0.3, 'float32', 10 + m) as tf.Tensor2D);
    const run = () =>
      tf.tidy(() => {
        const hook = sideQueryHook(queries);
        vit.forward(images(1, 32), { hooks: [hook] });
        return tf.stack(hook.outputs);
      });
    const before = run();
    const shifted = tf.add(vit.params.regTokens!, tf.randomNormal(vit.params.regTokens!.shape, 0, 1, 'float32', 7)) as tf.Tensor2D;
    vit.params.regTokens!.dispose();
    vit.params.regTokens = shifted;
    const after = run();
    expect(maxAbsDiff(before, after)).toBeGreaterThan(1e-3);
    tf.dispose([before, after, ...queries]);
    vit.dispose();
  });

  it('10 forwards with side queries keep tf.memory().numTensors flat', () => {
    const vit = randomVit(VARIANT, 6);
    const queries = [0, 1, 2].map((m) => tf.randomNormal([2, TINY.dim], 0, 0.3, 'float32', m) as tf.Tensor2D);
    const x = images(1, 32);
    const step = () => tf.tidy(() => void vit.forward(x, { hooks: [sideQueryHook(queries)] }));
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 10; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, ...queries]);
    vit.dispose();
  });
});

describe('full fine-tuning: backbone parameters made trainable', () => {
  for (const config of [TINY, VARIANT]) {
    it(`${config === TINY ? 'original ViT' : 'variant ViT'}: a gradient reaches q, k, v (every kernel agrees) and a step changes the features`, () => {
      const kernels = [['perHead', 'projectFirst'], ['perHead', 'perHeadWeights'], ['batched', undefined]] as const;
      const grads = kernels.map(([kernel, taped]) => {
        setAttentionKernel(kernel);
        setTapedAttentionKernel(taped);
        const vit = randomVit(config, 7);
        const variables = vit.makeTrainable();
        expect(variables.size).toBe(vit.namedParameters().size);
        const names = ['blocks.0.attn.q.weight', 'blocks.0.attn.k.weight', 'blocks.0.attn.v.weight', 'blocks.2.mlp.fc1.bias', 'patch_embed.proj.weight', 'cls_token'];
        const x = images(2, 32);
        const target = tf.randomNormal([2, TINY.dim], 0, 1, 'float32', 3);
        const { grads: g, value } = tf.variableGrads(
          () => tf.tidy(() => tf.mean(tf.square(tf.sub(vit.forward(x).cls, target))) as tf.Scalar),
          names.map((n) => variables.get(n)!),
        );
        const gradOf = (n: string) => g[variables.get(n)!.name];
        const norms = Object.fromEntries(names.map((n) => [n, gradOf(n) ? tf.tidy(() => tf.norm(gradOf(n)).dataSync()[0]) : 0]));
        for (const n of names) expect(norms[n], n).toBeGreaterThan(0);
        // The model runs with the parameters as they are now: change q and the features change.
        const before = tf.tidy(() => vit.forward(x).cls);
        const q = variables.get('blocks.0.attn.q.weight')!;
        q.assign(tf.tidy(() => tf.sub(q, tf.mul(gradOf('blocks.0.attn.q.weight'), 10))));
        const after = tf.tidy(() => vit.forward(x).cls);
        expect(maxAbsDiff(before, after)).toBeGreaterThan(1e-4);
        const snapshot = tf.tidy(() => names.map((n) => tf.clone(gradOf(n))));
        tf.dispose([x, target, value, before, after, ...Object.values(g)]);
        vit.dispose();
        return snapshot;
      });
      setTapedAttentionKernel(undefined);
      for (const other of grads.slice(1)) grads[0].forEach((g, i) => expect(maxAbsDiff(g, other[i])).toBeLessThan(1e-4 * Math.max(1, tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]))));
      tf.dispose(grads.flat());
    });
  }
});
