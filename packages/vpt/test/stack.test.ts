import * as tf from '@tensorflow/tfjs';
import {
  DEFAULT_RUNTIME,
  LinearHead,
  initBackend,
  loadAdapter,
  loadVit,
  methodSpec,
  openFitted,
  registerMethod,
  resolveAnyConfig,
  saveFitted,
  trainModel,
  imageSplitSource,
  type FittedMethod,
  type HostTensor,
  type ImageSplit,
  type LoadedVit,
  type MethodSpec,
  type VisionTransformer,
} from '@vqt/core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../src/index.js';
import { fixtureConfig, maxAbsDiff, memorySplit } from './helpers.js';

/**
 * A minimal reading method for the test: a linear head on the final CLS of the frozen base's
 * adapted backbone (a linear probe). It stands in for VQT (issue 12) to exercise core's two-stage
 * stack with VPT as the base: fit, save, open.
 */
function probeFitted(vit: VisionTransformer, base: FittedMethod, head: LinearHead): FittedMethod {
  const hooks = base.adaptingHooks!();
  const features = (images: tf.Tensor4D) => vit.forward(images, { hooks }).cls;
  return {
    method: 'probe',
    numClasses: head.classes,
    options: () => ({}),
    trainableParameters: () => head.weight.size + head.bias.size,
    logits: (images) => tf.tidy(() => head.apply(features(images))),
    headFeatures: features,
    exportTensors: () => head.exportTensors('head'),
    dispose: () => head.dispose(),
  };
}

const probe: MethodSpec<Record<string, never>> = {
  name: 'probe',
  description: 'test-only linear probe that can stack',
  prefix: 'probe.',
  role: 'read',
  stackable: true,
  defaults: {},
  options: [],
  async fit(_config, context, data) {
    const vit = context.backbone.model;
    const hooks = context.base!.adaptingHooks!();
    const head = new LinearHead(vit.config.dim, data.numClasses);
    await trainModel(
      { trainableVariables: () => head.variables(), logits: (batch, step) => tf.tidy(() => head.apply(vit.forward(batch.images, { hooks, ...step }).cls)) },
      imageSplitSource(data),
      { ...context.train, lr: context.hp.lr, weightDecay: context.hp.weightDecay },
    );
    return probeFitted(vit, context.base!, head);
  },
  open(_config, tensors: ReadonlyMap<string, HostTensor>, context) {
    const head = new LinearHead(context.backbone.model.config.dim, context.numClasses);
    head.importTensors(tensors.get('head.weight')!, tensors.get('head.bias')!);
    return probeFitted(context.backbone.model, context.base!, head);
  },
};

let loaded: LoadedVit;
let split: ImageSplit;
let dir: string;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  registerMethod(probe);
  split = memorySplit(8, 32, 5);
  const fixture = fixtureConfig();
  loaded = loadVit(fixture.checkpointPath, { heads: fixture.heads });
  dir = mkdtempSync(join(tmpdir(), 'vpt-stack-'));
});
afterAll(() => {
  loaded.model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('vpt as the base of a stack (core stackSpec)', () => {
  it('vpt+probe: fits in two stages, saves the base prompts without its head, reopens the base headless', async () => {
    const spec = methodSpec('vpt+probe');
    const config = resolveAnyConfig(spec, { vpt: { prompts: 2, lastBlocks: 2 } });
    const lines: string[] = [];
    const fitted = await spec.fit(
      config,
      {
        backbone: loaded,
        hp: { lr: 0.05, weightDecay: 0 },
        train: { epochs: 1, batchSize: 4, optimizer: 'sgd', momentum: 0.9, warmupEpochs: 0, seed: 2, progress: 'none' },
        runtime: DEFAULT_RUNTIME,
        log: (line) => lines.push(line),
      },
      split,
    );
    expect(lines.some((l) => l.includes('vpt: 2 prompts, deep, blocks 1..2'))).toBe(true);
    const out = join(dir, 'vpt+probe');
    saveFitted(out, fitted, loaded);
    const adapter = loadAdapter(out);
    expect(adapter.config.method).toBe('vpt+probe');
    expect(adapter.config.options).toMatchObject({ vpt: { prompts: 2, lastBlocks: 2, deep: true }, probe: {} });
    // The base's own head is not saved: head.* is the top's.
    expect([...adapter.tensors.keys()].sort()).toEqual(['head.bias', 'head.weight', 'vpt.prompts']);
    expect(adapter.tensors.get('vpt.prompts')!.shape).toEqual([2, 2, 48]);

    const { fitted: reopened } = openFitted(out, loaded, DEFAULT_RUNTIME);
    const images = tf.tensor4d(Float32Array.from({ length: 2 * 3 * 32 * 32 }, (_, i) => Math.sin(i)), [2, 3, 32, 32]);
    tf.tidy(() => {
      expect(maxAbsDiff(reopened.logits(images), fitted.logits(images))).toBe(0);
      // The probe reads the VPT-adapted CLS, not the plain backbone's.
      expect(maxAbsDiff(reopened.headFeatures(images), loaded.model.forward(images).cls)).toBeGreaterThan(1e-3);
    });
    images.dispose();
    reopened.dispose();
    fitted.dispose();
  });
});
