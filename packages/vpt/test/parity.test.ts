import * as tf from '@tensorflow/tfjs';
import { HookedClassifier, frozenHook, initBackend, loadVit, type Hook, type HookContext, type LoadedVit } from '@vqt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VptHook, resolveVptConfig, vptFromTensors, type VptConfig } from '../src/index.js';
import { crossEntropy, fixtureArray, fixtureConfig, maxAbsDiff, tapeLength } from './helpers.js';

// Parity with the independent float64 PyTorch reference (tools/reference/vpt_ref.py), fixture test/fixtures/vpt_tiny.

const TOLERANCE = 1e-4;
const fixture = fixtureConfig();
let loaded: LoadedVit;
let images: tf.Tensor4D;

const CASES: { name: 'deep' | 'shallow' | 'last2'; config: Partial<VptConfig> }[] = [
  { name: 'deep', config: { deep: true } },
  { name: 'shallow', config: { deep: false } },
  { name: 'last2', config: { deep: true, lastBlocks: fixture.lastBlocks } },
];

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  loaded = loadVit(fixture.checkpointPath, { heads: fixture.heads });
  const input = fixtureArray('input.npy');
  images = tf.tensor4d(input.data, input.shape as [number, number, number, number]);
});
afterAll(() => {
  images.dispose();
  loaded.model.dispose();
});

function configOf(partial: Partial<VptConfig>): VptConfig {
  return resolveVptConfig({ prompts: fixture.numPrompts, dropout: 0.1, ...partial });
}

/** A hook and classifier around the fixture's prompts and head. */
function classifierFor(name: string, config: VptConfig): { hook: VptHook; classifier: HookedClassifier } {
  const { depth, dim, patchSize } = loaded.model.config;
  const hook = new VptHook({ depth, dim, patchSize }, config);
  hook.setPrompts(fixtureArray(`prompts_${name}.npy`));
  const classifier = new HookedClassifier(loaded.model, [hook], fixture.numClasses);
  classifier.head.importTensors(fixtureArray('head_weight.npy'), fixtureArray('head_bias.npy'));
  return { hook, classifier };
}

describe('VPT parity with the PyTorch reference', () => {
  it('uses the checkpoint the fixture names', () => {
    expect(loaded.sha256).toBe(fixture.checkpointSha256);
  });

  it.each(CASES)('$name: final CLS and logits', ({ name, config }) => {
    const before = tf.memory().numTensors;
    const fitted = vptFromTensors(loaded.model, configOf(config), fixtureArray(`prompts_${name}.npy`), {
      weight: fixtureArray('head_weight.npy'),
      bias: fixtureArray('head_bias.npy'),
    });
    const errors = tf.tidy(() => ({
      cls: maxAbsDiff(fitted.headFeatures(images), fixtureArray(`cls_${name}.npy`)),
      logits: maxAbsDiff(fitted.logits(images), fixtureArray(`logits_${name}.npy`)),
    }));
    fitted.dispose();
    console.log(`vpt ${name} parity max abs errors`, errors);
    expect(errors.cls).toBeLessThanOrEqual(TOLERANCE);
    expect(errors.logits).toBeLessThanOrEqual(TOLERANCE);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('training mode with dropout 0 equals inference (the fixture CLS)', () => {
    const { hook, classifier } = classifierFor('deep', configOf({ deep: true, dropout: 0 }));
    const error = tf.tidy(() => maxAbsDiff(classifier.features(images, { training: true, seed: 3 }), fixtureArray('cls_deep.npy')));
    expect(error).toBeLessThanOrEqual(TOLERANCE);
    classifier.dispose();
    hook.dispose();
  });

  it.each(CASES)('$name: gradient of the loss w.r.t. the prompts equals torch autograd (float64, gradchecked)', ({ name, config }) => {
    const { hook, classifier } = classifierFor(name, configOf(config));
    const { value, grads } = tf.variableGrads(
      () => crossEntropy(classifier.logits({ images, labels: Int32Array.from(fixture.labels) }, { training: false, seed: 0 }), fixture.labels),
      hook.prompts,
    );
    const gradient = tf.stack(hook.prompts.map((P) => grads[P.name]));
    const expected = fixtureArray(`grad_prompts_${name}.npy`);
    const error = maxAbsDiff(gradient, expected);
    const scale = Math.max(...Array.from(expected.data, Math.abs));
    const lossError = Math.abs(value.dataSync()[0] - fixtureArray(`loss_${name}.npy`).data[0]);
    console.log(`vpt ${name} gradient: max abs error ${error.toExponential(2)} (max |grad| ${scale.toFixed(3)}), loss error ${lossError.toExponential(2)}`);
    expect(scale).toBeGreaterThan(0.1);
    expect(error).toBeLessThanOrEqual(TOLERANCE);
    expect(lossError).toBeLessThanOrEqual(TOLERANCE);
    tf.dispose([value, gradient, ...Object.values(grads)]);
    classifier.dispose();
    hook.dispose();
  });
});

/** A minimal reading method: side queries per block (as VQT's), outputs collected. */
function sideQueryReader(queries: tf.Tensor3D): Hook & { outputs: tf.Tensor3D[]; ln1Lengths: number[] } {
  const reader = {
    name: 'reader',
    outputs: [] as tf.Tensor3D[],
    ln1Lengths: [] as number[],
    tapPoints: ['ln1'] as const,
    trainableVariables: () => [],
    sideQueries: (ctx: HookContext) => tf.reshape(tf.slice(queries, [ctx.block, 0, 0], [1, -1, -1]), [queries.shape[1], queries.shape[2]]) as tf.Tensor2D,
    sideQueryOutput(output: tf.Tensor3D, ctx: HookContext) {
      reader.outputs[ctx.block] = ctx.keep(output);
    },
    tap(_point: string, value: tf.Tensor) {
      reader.ln1Lengths.push(value.shape[1]!);
    },
  };
  return reader;
}

/** The frozen hooks a fitted VPT (deep, fixture prompts, dropout 0.1) hands to a method stacked on it. */
function hookFromFitted(): Hook[] {
  const fitted = vptFromTensors(loaded.model, configOf({ deep: true }), fixtureArray('prompts_deep.npy'), {
    weight: fixtureArray('head_weight.npy'),
    bias: fixtureArray('head_bias.npy'),
  });
  disposeAfter.push(fitted);
  return fitted.adaptingHooks!();
}
const disposeAfter: { dispose(): void }[] = [];
afterAll(() => disposeAfter.forEach((d) => d.dispose()));

describe('stacking: a method on top of a frozen VPT', () => {
  it("the fitted method's adaptingHooks are deterministic: no prompt dropout in a training forward", () => {
    const hooks = hookFromFitted();
    expect(hooks.flatMap((h) => h.trainableVariables())).toEqual([]);
    const { hook, classifier } = classifierFor('deep', configOf({ deep: true, dropout: 0.1 }));
    tf.tidy(() => {
      const training = loaded.model.forward(images, { hooks, training: true, seed: 9 }).cls;
      expect(maxAbsDiff(training, fixtureArray('cls_deep.npy'))).toBeLessThanOrEqual(TOLERANCE);
      // core's generic frozenHook runs in inference mode too; the live hook in a training step applies its dropout.
      const generic = loaded.model.forward(images, { hooks: [frozenHook(hook)], training: true, seed: 9 }).cls;
      expect(maxAbsDiff(generic, training)).toBe(0);
      const live = loaded.model.forward(images, { hooks: [hook], training: true, seed: 9 }).cls;
      expect(maxAbsDiff(live, training)).toBeGreaterThan(1e-3);
    });
    classifier.dispose();
    hook.dispose();
  });

  it('side queries read LN1 of the prompt-extended sequence [CLS, P_m, patches] (reference VQT-on-VPT outputs)', () => {
    const { hook, classifier } = classifierFor('deep', configOf({ deep: true }));
    const q = fixtureArray('vqt_queries.npy');
    const queries = tf.tensor3d(q.data, q.shape as [number, number, number]);
    const reader = sideQueryReader(queries);
    const error = tf.tidy(() => {
      const { cls } = loaded.model.forward(images, { hooks: [frozenHook(hook), reader] });
      expect(maxAbsDiff(cls, fixtureArray('cls_deep.npy'))).toBeLessThanOrEqual(TOLERANCE);
      return maxAbsDiff(tf.stack(reader.outputs), fixtureArray('vqt_on_deep_query_outputs.npy'));
    });
    console.log(`VQT-on-VPT query outputs: max abs error ${error.toExponential(2)}`);
    expect(error).toBeLessThanOrEqual(TOLERANCE);
    // 1 + T + N tokens in every block's LN1.
    expect(reader.ln1Lengths).toEqual([1, 2, 3].map(() => 1 + fixture.numPrompts + 16));
    tf.dispose([queries, ...reader.outputs]);
    classifier.dispose();
    hook.dispose();
  });

  it("the frozen view (core's frozenHook) puts no VPT variable and no backbone op on the tape", () => {
    const { hook, classifier } = classifierFor('deep', configOf({ deep: true }));
    const frozen = frozenHook(hook);
    expect(frozen.trainableVariables()).toEqual([]);
    const head = classifier.head;
    const labels = Int32Array.from(fixture.labels);
    // The same head loss with and without the frozen VPT in the forward: identical tapes (head ops only).
    const tapeWith = (hooks: Hook[]): number => {
      let recorded = -1;
      const { value, grads } = tf.variableGrads(() => {
        const cls = loaded.model.forward(images, { hooks, training: true, seed: 1 }).cls;
        const loss = crossEntropy(head.apply(cls), Array.from(labels));
        recorded = tapeLength();
        return loss;
      }, head.variables());
      expect(Object.keys(grads).sort()).toEqual(head.variables().map((v) => v.name).sort());
      tf.dispose([value, ...Object.values(grads)]);
      return recorded;
    };
    const plain = tapeWith([]);
    const withFrozen = tapeWith([frozen]);
    const [view] = hookFromFitted();
    const withView = tapeWith([view]);
    console.log(`tape nodes: head only ${plain}, with the frozen VPT hook ${withFrozen}, with the fitted method's adaptingHooks ${withView}`);
    expect(withFrozen).toBe(plain);
    expect(withView).toBe(plain);
    // With its variables the same hook records the backbone.
    let live = -1;
    const { value, grads } = tf.variableGrads(() => {
      const loss = crossEntropy(head.apply(loaded.model.forward(images, { hooks: [hook] }).cls), Array.from(labels));
      live = tapeLength();
      return loss;
    }, [...hook.prompts, ...head.variables()]);
    expect(live).toBeGreaterThan(plain + 100);
    tf.dispose([value, ...Object.values(grads)]);
    classifier.dispose();
    hook.dispose();
  });
});
