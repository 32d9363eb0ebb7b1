import * as tf from '@tensorflow/tfjs';
import {
  adaptingFitted,
  HookedClassifier,
  imageSplitSource,
  initBackend,
  linear,
  loadVit,
  openFitted,
  readSafetensors,
  registerMethod,
  resolveMethodConfig,
  saveFitted,
  trainModel,
  writeSafetensors,
  type Hook,
  type ImageSplit,
  type LoadedVit,
  type MethodSpec,
} from '@vqt/core';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vqtMethod } from '../src/index.js';
import { fixtureConfig, hostImages, hostLabels, maxAbsDiff } from './helpers.js';

/** A small adapting method written against core's plugin interface: a bottleneck beside every MLP. */
function toyAdapter(): MethodSpec<{ bottleneck: number }> {
  const make = (dim: number, r: number, seed: number) => {
    const down = tf.tidy(() => tf.variable(tf.randomNormal([dim, r], 0, 0.2, 'float32', seed), true, `toy.down.${seed}.${Math.random()}`));
    const up = tf.tidy(() => tf.variable(tf.randomNormal([r, dim], 0, 0.2, 'float32', seed + 1), true, `toy.up.${seed}.${Math.random()}`));
    const hook: Hook = { name: 'toyadapt', trainableVariables: () => [down, up], mlpParallel: (x1) => linear(tf.relu(linear(x1, down as tf.Tensor2D)), up as tf.Tensor2D) };
    return { down, up, hook };
  };
  const fitted = (backbone: LoadedVit, numClasses: number, parts: ReturnType<typeof make>, bottleneck: number) => {
    const classifier = new HookedClassifier(backbone.model, [parts.hook], numClasses);
    return {
      classifier,
      fitted: adaptingFitted({
        method: 'toyadapt',
        classifier,
        options: () => ({ bottleneck }),
        exportTensors: () => ({ 'toyadapt.down': tf.transpose(parts.down), 'toyadapt.up': tf.transpose(parts.up) }),
        dispose: () => tf.dispose([parts.down, parts.up]),
      }),
    };
  };
  return {
    name: 'toyadapt',
    description: 'test adapter',
    prefix: 'toyadapt.',
    role: 'adapt',
    defaults: { bottleneck: 4 },
    options: [{ key: 'bottleneck', flag: 'toy-bottleneck', kind: 'int', min: 1, description: 'bottleneck' }],
    async fit(config, context, data) {
      const parts = make(context.backbone.model.config.dim, config.bottleneck, 7);
      const { classifier, fitted: out } = fitted(context.backbone, data.numClasses, parts, config.bottleneck);
      await trainModel(classifier, imageSplitSource(data), { ...context.train, lr: context.hp.lr, weightDecay: context.hp.weightDecay });
      return out;
    },
    open(config, tensors, context) {
      const parts = make(context.backbone.model.config.dim, config.bottleneck, 7);
      const down = tensors.get('toyadapt.down');
      const up = tensors.get('toyadapt.up');
      if (!down || !up) throw new Error(`${context.file}: toyadapt tensors missing`);
      tf.tidy(() => {
        parts.down.assign(tf.transpose(tf.tensor2d(down.data, down.shape as [number, number])));
        parts.up.assign(tf.transpose(tf.tensor2d(up.data, up.shape as [number, number])));
      });
      return fitted(context.backbone, context.numClasses, parts, config.bottleneck).fitted;
    },
  };
}

let backbone: LoadedVit;
let split: ImageSplit;
let images: tf.Tensor4D;
const train = { epochs: 2, batchSize: 4, optimizer: 'adam' as const, warmupEpochs: 0, seed: 3, progress: 'none' as const };
const runtime = { cacheBudgetBytes: 2 ** 26, spillDtype: 'float32' as const, checkpointing: 'off' as const };

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  registerMethod(toyAdapter());
  backbone = loadVit(fixtureConfig().checkpointPath, { heads: fixtureConfig().heads });
  const size = backbone.model.config.imageSize;
  const pixels = hostImages(8, size, 11);
  const labels = hostLabels(8, 3);
  split = {
    id: 'test:train',
    size: 8,
    numClasses: 3,
    imageSize: size,
    async *batches(batchSize) {
      const per = 3 * size * size;
      for (let s = 0; s < 8; s += batchSize) yield { images: pixels.slice(s * per, (s + batchSize) * per), labels: labels.slice(s, s + batchSize) };
    },
  };
  images = tf.tensor4d(pixels, [8, 3, size, size]);
});
afterAll(() => {
  images.dispose();
  backbone.model.dispose();
});

const context = () => ({ backbone, hp: { lr: 0.05, weightDecay: 0 }, train, runtime, log: () => {} });

describe('VQT as a method plugin', () => {
  it('resolves its config strictly: defaults filled, unknown options and bad values refused', () => {
    expect(resolveMethodConfig(vqtMethod, { queries: 2 })).toMatchObject({ queries: 2, dropout: 0.1, featureNorm: 'l2' });
    expect(() => resolveMethodConfig(vqtMethod, { targetSize: 4 })).toThrow(/method "vqt" has no option "targetSize"/);
    expect(() => resolveMethodConfig(vqtMethod, { queries: 0 })).toThrow(/vqt.queries must be >= 1/);
    expect(() => resolveMethodConfig(vqtMethod, { featureNorm: 'max' })).toThrow(/one of l2, none, mean/);
  });

  it('fits, saves (seed and init range included) and reopens to the same logits', async () => {
    const fitted = await vqtMethod.fit(resolveMethodConfig(vqtMethod, { queries: 2 }), context(), split);
    const dir = mkdtempSync(join(tmpdir(), 'vqt-method-'));
    saveFitted(dir, fitted, backbone, { labelNames: ['a', 'b', 'c'] });
    const saved = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    expect(saved.options).toMatchObject({ queries: 2, seed: 3 });
    expect(saved.options.initRange).toBeGreaterThan(0);
    const { fitted: reopened, config } = openFitted(dir, backbone);
    expect(config.labelNames).toEqual(['a', 'b', 'c']);
    tf.tidy(() => {
      expect(maxAbsDiff(fitted.logits(images), reopened.logits(images))).toBeLessThan(1e-6);
    });
    fitted.dispose();
    reopened.dispose();
    await vqtMethod.close?.();
  });
});

describe('stacks', () => {
  it('toyadapt+vqt: two stages, one adapter with both parts and one head, reopened exactly', async () => {
    const { stackSpec } = await import('@vqt/core');
    const spec = stackSpec('toyadapt+vqt');
    const before = tf.memory().numTensors;
    const fitted = await spec.fit({ toyadapt: { bottleneck: 3 }, vqt: { queries: 1 } }, context(), split);
    const dir = mkdtempSync(join(tmpdir(), 'vqt-stack-'));
    saveFitted(dir, fitted, backbone);
    const saved = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    expect(saved.method).toBe('toyadapt+vqt');
    expect(Object.keys(saved.options)).toEqual(['toyadapt', 'vqt']);
    const names = [...readSafetensors(join(dir, 'adapter_model.safetensors')).tensors.keys()].sort();
    expect(names).toEqual(['head.bias', 'head.weight', 'toyadapt.down', 'toyadapt.up', 'vqt.queries']);
    const { fitted: reopened } = openFitted(dir, backbone);
    tf.tidy(() => {
      expect(maxAbsDiff(fitted.logits(images), reopened.logits(images))).toBeLessThan(1e-6);
    });
    fitted.dispose();
    reopened.dispose();
    await vqtMethod.close?.();
    expect(tf.memory().numTensors).toBe(before);

    // A stack whose base is missing from the file is an error, not VQT on the plain backbone.
    const file = join(dir, 'adapter_model.safetensors');
    const { tensors } = readSafetensors(file);
    writeSafetensors(file, Object.fromEntries([...tensors].filter(([k]) => !k.startsWith('toyadapt.'))));
    expect(() => openFitted(dir, backbone)).toThrow(/base is missing/);
  });

  it('refuses an adapter of an unregistered method, an unknown tensor, and another backbone', async () => {
    const fitted = await vqtMethod.fit(resolveMethodConfig(vqtMethod, {}), context(), split);
    const dir = mkdtempSync(join(tmpdir(), 'vqt-refuse-'));
    saveFitted(dir, fitted, backbone);
    fitted.dispose();
    const configFile = join(dir, 'adapter_config.json');
    const original = readFileSync(configFile, 'utf8');
    writeFileSync(configFile, original.replace('"method": "vqt"', '"method": "nosuch"'));
    expect(() => openFitted(dir, backbone)).toThrow(/adapter_config.json: method "nosuch" needs "nosuch", which is not installed/);
    writeFileSync(configFile, original.replace('"queries": 1', '"queries": 1, "prompts": 3'));
    expect(() => openFitted(dir, backbone)).toThrow(/adapter_config.json: .*has no option "prompts"/);
    writeFileSync(configFile, original);
    const file = join(dir, 'adapter_model.safetensors');
    const { tensors } = readSafetensors(file);
    writeSafetensors(file, { ...Object.fromEntries(tensors), 'lora.blocks.0.q.lora_A': { shape: [1], data: new Float32Array(1) } });
    expect(() => openFitted(dir, backbone)).toThrow(/tensors no part of "vqt" owns: lora.blocks.0.q.lora_A/);
    writeSafetensors(file, Object.fromEntries(tensors));
    expect(() => openFitted(dir, { ...backbone, sha256: 'f'.repeat(64) })).toThrow(/sha256/);
    await vqtMethod.close?.();
  });
});
