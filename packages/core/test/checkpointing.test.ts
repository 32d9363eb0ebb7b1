import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blockActivationBytes, initBackend, linear, peakNewBufferBytes, randomVit, type Hook, type VisionTransformer } from '../src/index.js';
import { images, maxAbsDiff, TINY } from './helpers.js';

// Hooks that adapt tokens in every way a block offers: prompts (before/after), a delta on q and fc1,
// and a branch beside the MLP, each with trainable variables, and dropout seeded per block.
function adaptingHooks(dim: number, depth: number) {
  const v = (shape: number[], seed: number) => tf.tidy(() => tf.variable(tf.randomNormal(shape, 0, 0.2, 'float32', seed)));
  const prompts = Array.from({ length: depth }, (_, m) => v([2, dim], 10 + m));
  const deltaQ = v([dim, dim], 30);
  const down = v([dim, 4], 31);
  const up = v([4, dim], 32);
  const hooks: Hook[] = [
    {
      name: 'prompts',
      trainableVariables: () => prompts,
      beforeBlock: (x, ctx) => {
        const [b] = x.shape;
        const p = tf.tile(tf.expandDims(prompts[ctx.block], 0), [b, 1, 1]) as tf.Tensor3D;
        const cls = tf.slice(x, [0, 0, 0], [b, 1, dim]);
        return tf.concat([cls, p, tf.slice(x, [0, 1, 0], [b, x.shape[1] - 1, dim])], 1) as tf.Tensor3D;
      },
      afterBlock: (x) => tf.concat([tf.slice(x, [0, 0, 0], [x.shape[0], 1, dim]), tf.slice(x, [0, 3, 0], [x.shape[0], x.shape[1] - 3, dim])], 1) as tf.Tensor3D,
    },
    {
      name: 'deltas',
      trainableVariables: () => [deltaQ],
      linearDelta: (layer, input) => (layer === 'q' ? linear(input, deltaQ as tf.Tensor2D) : undefined),
    },
    {
      name: 'branch',
      trainableVariables: () => [down, up],
      mlpParallel: (x1, ctx) => {
        const hidden = tf.relu(linear(x1, down as tf.Tensor2D));
        const kept = ctx.training ? tf.mul(hidden, tf.step(tf.randomUniform(hidden.shape, 0, 1, 'float32', ctx.seed + ctx.block), 0.5)) : hidden;
        return linear(kept as tf.Tensor2D, up as tf.Tensor2D);
      },
    },
  ];
  return { hooks, variables: [...prompts, deltaQ, down, up] };
}

let vit: VisionTransformer;
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  vit = randomVit(TINY, 5);
});
afterAll(() => vit.dispose());

function gradients(mode: 'on' | 'off', hooks: Hook[], variables: tf.Variable[], x: tf.Tensor4D) {
  return tf.variableGrads(() => tf.sum(tf.square(vit.forward(x, { hooks, training: true, seed: 9, checkpointing: mode }).cls)) as tf.Scalar, variables);
}

describe('per-block gradient checkpointing', () => {
  it('gives the same loss and gradients as the plain backward, with dropout, and leaks nothing', () => {
    const { hooks, variables } = adaptingHooks(TINY.dim, TINY.depth);
    const x = images(2, TINY.imageSize, 3);
    const before = tf.memory().numTensors;
    for (let repeat = 0; repeat < 2; repeat++) {
      const plain = gradients('off', hooks, variables, x);
      const checkpointed = gradients('on', hooks, variables, x);
      expect(Math.abs(plain.value.dataSync()[0] - checkpointed.value.dataSync()[0])).toBeLessThan(1e-5);
      for (const v of variables) expect(maxAbsDiff(plain.grads[v.name], checkpointed.grads[v.name])).toBeLessThan(1e-5);
      expect(tf.tidy(() => tf.sum(tf.abs(checkpointed.grads[variables[0].name])).dataSync()[0])).toBeGreaterThan(0);
      tf.dispose([plain.value, checkpointed.value, ...Object.values(plain.grads), ...Object.values(checkpointed.grads)]);
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, ...variables]);
  });

  it('keeps less alive during a step: only each block input, not its activations', async () => {
    const { hooks, variables } = adaptingHooks(TINY.dim, TINY.depth);
    const x = images(8, TINY.imageSize, 4);
    const step = (mode: 'on' | 'off') =>
      peakNewBufferBytes(() => {
        const { value, grads } = gradients(mode, hooks, variables, x);
        tf.dispose([value, ...Object.values(grads)]);
      });
    const plain = await step('off');
    const checkpointed = await step('on');
    expect(checkpointed).toBeLessThan(0.7 * plain);
    tf.dispose([x, ...variables]);
  });

  it("'auto' checkpoints only past the byte budget", () => {
    const { hooks, variables } = adaptingHooks(TINY.dim, TINY.depth);
    const x = images(2, TINY.imageSize, 5);
    const nodes = (budget: number) => {
      vit.checkpointBudgetBytes = budget;
      let count = 0;
      const { value, grads } = tf.variableGrads(() => {
        const out = tf.sum(vit.forward(x, { hooks, training: false, seed: 0 }).cls) as tf.Scalar;
        count = ((tf.engine() as unknown as { state: { activeTape: unknown[] } }).state.activeTape ?? []).length;
        return out;
      }, variables);
      tf.dispose([value, ...Object.values(grads)]);
      return count;
    };
    const small = nodes(1);
    const large = nodes(2 ** 40);
    vit.checkpointBudgetBytes = undefined;
    // Checkpointed: one tape node per block instead of every op of the block.
    expect(small).toBeLessThan(large / 5);
    tf.dispose([x, ...variables]);
  });

  it('plans a training step: whole batch within the budget, else checkpointed blocks and chunks that fit one block', () => {
    const { hooks, variables } = adaptingHooks(TINY.dim, TINY.depth);
    vit.checkpointBudgetBytes = 2 ** 40;
    expect(vit.trainingPlan(hooks, 8)).toEqual({ tapedBlocks: TINY.depth, checkpointed: false, microBatch: 8 });
    const perImageBlock = blockActivationBytes(1, vit.numTokens, TINY.dim, TINY.heads, TINY.mlpRatio);
    vit.checkpointBudgetBytes = 2.5 * perImageBlock;
    expect(vit.trainingPlan(hooks, 8)).toEqual({ tapedBlocks: TINY.depth, checkpointed: true, microBatch: 2 });
    vit.checkpointing = 'off';
    expect(vit.trainingPlan(hooks, 8)).toEqual({ tapedBlocks: TINY.depth, checkpointed: false, microBatch: 1 });
    vit.checkpointing = 'auto';
    // One taped block (an adapter on the last block only): chunks, but no checkpointing, which would
    // recompute the block and save nothing.
    const lastOnly: Hook = { name: 'last', trainableVariables: () => [variables[0]], firstAdaptedBlock: () => TINY.depth - 1, linearDelta: () => undefined };
    expect(vit.trainingPlan([lastOnly], 8)).toEqual({ tapedBlocks: 1, checkpointed: false, microBatch: 2 });
    vit.checkpointBudgetBytes = undefined;
    expect(vit.trainingPlan([], 8).tapedBlocks).toBe(0);
    tf.dispose(variables);
  });

  it('full fine-tuning, checkpointed: each block returns gradients for its own weights only (no zeros for the others)', async () => {
    const tuned = randomVit(TINY, 5);
    const variables = [...tuned.makeTrainable().values()];
    const hooks: Hook[] = [{ name: 'full', trainableVariables: () => variables }];
    const x = images(2, TINY.imageSize, 7);
    const step = (checkpointing: 'on' | 'off') =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(tuned.forward(x, { hooks, training: true, seed: 1, checkpointing }).cls) as tf.Scalar, variables);
        return [value, ...variables.map((v) => grads[v.name])];
      });
    // A plain backward makes no zeros either (the count is the same without checkpointing).
    const zeros = async (mode: 'on' | 'off') => (await tf.profile(() => void tf.dispose(step(mode)))).kernels.filter((k) => k.name === 'ZerosLike').length;
    expect(await zeros('on')).toBe(await zeros('off'));
    // The same gradients as without checkpointing.
    const [plain, checkpointedRun] = [step('off'), step('on')];
    plain.forEach((g, i) => expect(maxAbsDiff(g, checkpointedRun[i])).toBeLessThan(1e-5));
    tf.dispose([...plain, ...checkpointedRun, x]);
    tuned.dispose();
  });

  it('leaves room for the gradients of trainable backbone weights (full fine-tuning) before sizing chunks', () => {
    const tuned = randomVit(TINY, 3);
    const trained = tuned.makeTrainable();
    const gradientBytes = 2 * 4 * [...trained.values()].reduce((n, v) => n + v.size, 0);
    const perImageBlock = blockActivationBytes(1, tuned.numTokens, TINY.dim, TINY.heads, TINY.mlpRatio);
    // The same activation room as the hooks above once the gradients are set aside: chunks of 2.
    tuned.checkpointBudgetBytes = gradientBytes + 2.5 * perImageBlock;
    expect(tuned.trainingPlan([], 8)).toEqual({ tapedBlocks: TINY.depth, checkpointed: true, microBatch: 2 });
    // The frozen model with the same budget has the gradients' room for activations too.
    vit.checkpointBudgetBytes = gradientBytes + 2.5 * perImageBlock;
    const { hooks, variables } = adaptingHooks(TINY.dim, TINY.depth);
    expect(vit.trainingPlan(hooks, 8).microBatch).toBeGreaterThan(2);
    vit.checkpointBudgetBytes = undefined;
    tf.dispose(variables);
    tuned.dispose();
  });
});
