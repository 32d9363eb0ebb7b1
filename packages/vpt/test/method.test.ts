import * as tf from '@tensorflow/tfjs';
import {
  DEFAULT_RUNTIME,
  evaluateFitted,
  getMethod,
  initBackend,
  loadAdapter,
  loadVit,
  openFitted,
  resolveMethodConfig,
  saveAdapter,
  saveFitted,
  type EpochLog,
  type FitContext,
  type FittedMethod,
  type ImageSplit,
  type LoadedVit,
} from '@vqt/core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vptMethod, vptShallowMethod, type VptConfig } from '../src/index.js';
import { fixtureConfig, maxAbsDiff, memorySplit } from './helpers.js';

let loaded: LoadedVit;
let dir: string;
let split: ImageSplit;

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  split = memorySplit(8, 32, 3);
  const fixture = fixtureConfig();
  loaded = loadVit(fixture.checkpointPath, { heads: fixture.heads });
  dir = mkdtempSync(join(tmpdir(), 'vpt-method-'));
});
afterAll(() => {
  loaded.model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function context(epochs: number, onEpochEnd?: (log: EpochLog) => void, lines: string[] = []): FitContext {
  return {
    backbone: loaded,
    hp: { lr: 0.05, weightDecay: 1e-4 },
    train: { epochs, batchSize: 4, optimizer: 'sgd', momentum: 0.9, warmupEpochs: 0, seed: 11, progress: 'none', onEpochEnd },
    runtime: DEFAULT_RUNTIME,
    log: (line) => lines.push(line),
  };
}

async function fit(name: 'vpt' | 'vpt-shallow', options: Partial<VptConfig>, epochs = 1, onEpochEnd?: (log: EpochLog) => void): Promise<FittedMethod> {
  const spec = getMethod(name);
  return spec.fit(resolveMethodConfig(spec, options as Record<string, unknown>), context(epochs, onEpochEnd), split);
}

async function images(): Promise<tf.Tensor4D> {
  for await (const batch of split.batches(6)) return tf.tensor4d(batch.images, [6, 3, 32, 32]);
  throw new Error('empty split');
}

describe('vpt and vpt-shallow in the method registry', () => {
  it('are registered on import with strict options', () => {
    expect(getMethod('vpt')).toBe(vptMethod);
    expect(getMethod('vpt-shallow')).toBe(vptShallowMethod);
    expect(resolveMethodConfig(vptMethod, {})).toEqual({ prompts: 10, deep: true, dropout: 0.1, lastBlocks: undefined, initRange: undefined, seed: undefined });
    expect(resolveMethodConfig(vptShallowMethod, { prompts: 5 })).toMatchObject({ prompts: 5, deep: false });
    expect(() => resolveMethodConfig(vptMethod, { queries: 2 })).toThrow(/method "vpt" has no option "queries"/);
    expect(() => resolveMethodConfig(vptMethod, { prompts: 0 })).toThrow(/vpt\.prompts must be >= 1/);
    expect(() => resolveMethodConfig(vptMethod, { dropout: 1 })).toThrow(/vpt\.dropout must be <= 0\.99/);
    expect(() => resolveMethodConfig(vptMethod, { lastBlocks: 1.5 })).toThrow(/vpt\.lastBlocks must be an integer/);
    expect(() => resolveMethodConfig(vptShallowMethod, { deep: true })).toThrow(/vpt-shallow\.deep must be false/);
    expect(() => resolveMethodConfig(vptMethod, { seed: -1 })).toThrow(/vpt\.seed must be >= 0/);
    expect(vptMethod.options.find((o) => o.key === 'lastBlocks')?.flag).toBe('last-blocks');
    expect(vptMethod.options.find((o) => o.key === 'dropout')?.flag).toBe('prompt-dropout');
  });

  it('refuses more last blocks than the backbone has, before training', async () => {
    await expect(fit('vpt', { prompts: 2, lastBlocks: 4 })).rejects.toThrow(/lastBlocks must be an integer in 1\.\.3 for a backbone of depth 3/);
  });
});

describe('fit, save and open', () => {
  it('fits on a tiny split: the loss falls, memory stays flat across epochs, nothing leaks', async () => {
    const before = tf.memory().numTensors;
    const history: EpochLog[] = [];
    const counts: number[] = [];
    const fitted = await fit('vpt', { prompts: 2 }, 3, (log) => {
      history.push(log);
      counts.push(tf.memory().numTensors);
    });
    console.log('vpt fit: loss per epoch', history.map((h) => h.loss.toFixed(4)), 'tensors', counts);
    expect(history.map((h) => Number.isFinite(h.loss))).toEqual([true, true, true]);
    expect(history[2].loss).toBeLessThan(history[0].loss);
    expect(new Set(counts).size).toBe(1);
    expect(fitted.method).toBe('vpt');
    expect(fitted.trainableParameters()).toBe(3 * 2 * 48 + 48 * 2 + 2);
    const result = await evaluateFitted(fitted, split, 5);
    expect(result.count).toBe(8);
    fitted.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each([
    { name: 'vpt' as const, options: { prompts: 2 }, promptShape: [3, 2, 48] },
    { name: 'vpt' as const, options: { prompts: 3, lastBlocks: 2 }, promptShape: [2, 3, 48] },
    { name: 'vpt-shallow' as const, options: { prompts: 4 }, promptShape: [1, 4, 48] },
  ])('$name $options: a trained adapter round-trips through its files', async ({ name, options, promptShape }) => {
    const fitted = await fit(name, options);
    const out = join(dir, `${name}-${promptShape.join('x')}`);
    saveFitted(out, fitted, loaded, { labelNames: ['minus', 'plus'] });

    const adapter = loadAdapter(out, { backboneSha256: loaded.sha256 });
    expect(adapter.config.method).toBe(name);
    expect(adapter.config.options).toMatchObject({ ...options, dropout: 0.1, deep: name === 'vpt' });
    expect(adapter.config.options?.initRange).toBeCloseTo(Math.sqrt(6 / (3 * 64 + 48)), 7);
    expect(adapter.config.options?.seed).toBe(11); // the training seed, the one the init used
    expect([...adapter.tensors.keys()].sort()).toEqual(['head.bias', 'head.weight', 'vpt.prompts']);
    expect(adapter.tensors.get('vpt.prompts')!.shape).toEqual(promptShape);
    expect(adapter.tensors.get('head.weight')!.shape).toEqual([2, 48]);
    expect(adapter.tensors.get('head.bias')!.shape).toEqual([2]);

    const { fitted: reopened } = openFitted(out, loaded);
    const batch = await images();
    tf.tidy(() => {
      const logits = fitted.logits(batch);
      expect(maxAbsDiff(logits, tf.zeros(logits.shape))).toBeGreaterThan(1e-3); // the head was trained
      expect(maxAbsDiff(reopened.logits(batch), logits)).toBe(0);
      expect(maxAbsDiff(reopened.headFeatures(batch), fitted.headFeatures(batch))).toBe(0);
    });
    expect(reopened.options()).toEqual(fitted.options());
    tf.dispose(batch);
    reopened.dispose();
    fitted.dispose();
  });

  it('refuses adapter files it does not understand, naming the file and the tensor', async () => {
    const fitted = await fit('vpt', { prompts: 2 });
    const out = join(dir, 'broken');
    saveFitted(out, fitted, loaded);
    fitted.dispose();
    const good = loadAdapter(out);
    const rewrite = (tensors: Record<string, { shape: number[]; data: Float32Array }>, options = good.config.options, method = 'vpt') =>
      saveAdapter(out, { ...good.config, method, options }, tensors);
    const base = Object.fromEntries(good.tensors);

    rewrite({ ...base, 'vpt.prompts': { shape: [2, 2, 48], data: new Float32Array(2 * 2 * 48) } });
    expect(() => openFitted(out, loaded)).toThrow(/adapter_model\.safetensors: vpt\.prompts must be \[3, 2, 48\] \(3 prompted blocks, 2 prompts, dim 48\), got \[2, 2, 48\]/);

    rewrite({ ...base, 'vpt.extra': { shape: [1], data: new Float32Array(1) } });
    expect(() => openFitted(out, loaded)).toThrow(/adapter_model\.safetensors.*vpt does not use tensors vpt\.extra/);

    const { 'head.bias': _bias, ...noBias } = base;
    rewrite(noBias);
    expect(() => openFitted(out, loaded)).toThrow(/adapter_model\.safetensors.*head\.bias is missing/);

    rewrite(base, { ...good.config.options, tokens: 3 });
    expect(() => openFitted(out, loaded)).toThrow(/adapter_config\.json.*method "vpt" has no option "tokens"/);

    rewrite(base, { ...good.config.options, lastBlocks: 2 });
    expect(() => openFitted(out, loaded)).toThrow(/vpt\.prompts must be \[2, 2, 48\]/);

    rewrite(base, { ...good.config.options, deep: true }, 'vpt-shallow');
    expect(() => openFitted(out, loaded)).toThrow(/adapter_config\.json.*vpt-shallow\.deep must be false/);

    rewrite(base, { ...good.config.options, dropout: -0.1 });
    expect(() => openFitted(out, loaded)).toThrow(/adapter_config\.json.*vpt\.dropout must be >= 0/);

    rewrite(base);
    expect(openFitted(out, loaded).fitted.method).toBe('vpt');
  });
});
