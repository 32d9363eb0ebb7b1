import * as tf from '@tensorflow/tfjs';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, getMethod, openFitted, readSafetensors, resolveMethodConfig, saveFitted } from '@vqt/core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adaptformerMethod, type AdaptFormerConfig, type FittedAdaptFormer } from '../src/index.js';
import { FIXTURE_DIR, images, maxAbsDiff, memorySplit, methodTestBench, type MethodTestBench } from './helpers.js';

let bench: MethodTestBench;
beforeAll(async () => void (bench = await methodTestBench('adaptformer-test-', FIXTURE_DIR)));
afterAll(() => bench.dispose());

describe('the adaptformer method plugin', () => {
  it('is registered on import with the reference defaults', () => {
    expect(getMethod('adaptformer')).toBe(adaptformerMethod);
    expect(resolveMethodConfig(adaptformerMethod, {})).toEqual({ bottleneck: 64, scale: 0.1, dropout: 0.1, blocks: undefined, lastBlocks: undefined });
  });

  it('refuses bad options with a message naming them', () => {
    const resolve = (partial: Record<string, unknown>) => () => resolveMethodConfig(adaptformerMethod, partial, 'command line');
    expect(resolve({ rank: 4 })).toThrow(/command line: method "adaptformer" has no option "rank"/);
    expect(resolve({ bottleneck: 0 })).toThrow(/adaptformer.bottleneck must be >= 1/);
    expect(resolve({ bottleneck: 2.5 })).toThrow(/adaptformer.bottleneck must be an integer/);
    expect(resolve({ dropout: 1 })).toThrow(/adaptformer.dropout must be <= 0.99/);
    expect(resolve({ blocks: [0, 0] })).toThrow(/lists block 0 twice/);
    expect(resolve({ blocks: [] })).toThrow(/at least one block/);
    expect(resolve({ blocks: [-1] })).toThrow(/adaptformer.blocks must be >= 0/);
    expect(resolve({ blocks: [1], lastBlocks: 2 })).toThrow(/blocks or lastBlocks, not both/);
  });

  it('refuses blocks the backbone does not have', async () => {
    const bad = async (partial: Partial<AdaptFormerConfig>, pattern: RegExp) =>
      expect(adaptformerMethod.fit(resolveMethodConfig(adaptformerMethod, partial), bench.context(1), memorySplit(4, 2, 32))).rejects.toThrow(pattern);
    await bad({ blocks: [0, 3] }, /adaptformer.blocks has 3, but the backbone's blocks are 0..2/);
    await bad({ lastBlocks: 4 }, /adaptformer.lastBlocks is 4, but the backbone has only 3 blocks/);
  });

  it('fits one epoch on a tiny split, saves, and opens to the same logits', async () => {
    const split = memorySplit(8, 2, 32, 3);
    const logs: string[] = [];
    let announced = 0;
    const config = resolveMethodConfig(adaptformerMethod, { bottleneck: 4, lastBlocks: 2 });
    const before = tf.memory().numTensors;
    const fitted = (await adaptformerMethod.fit(config, { ...bench.context(1, logs), announce: (n) => void (announced = n) }, split)) as FittedAdaptFormer;
    expect(announced).toBe(2 * (48 * 4 + 4 + 4 * 48 + 48) + 48 * 2 + 2);
    expect(fitted.trainableParameters()).toBe(announced);
    expect(logs.join('\n')).toMatch(/blocks 1,2/);
    // One epoch of Adam moved the zero-initialised up projections away from zero.
    for (const a of fitted.hook.modules.values()) expect(tf.tidy(() => tf.max(tf.abs(a.up)).dataSync()[0])).toBeGreaterThan(0);
    expect(fitted.options()).toEqual({ bottleneck: 4, scale: 0.1, dropout: 0.1, blocks: [1, 2] });

    const out = join(bench.dir, 'fitted');
    saveFitted(out, fitted, bench.backbone, { training: { epochs: 1 } });
    const saved = JSON.parse(readFileSync(join(out, ADAPTER_CONFIG_FILE), 'utf8'));
    expect(saved.method).toBe('adaptformer');
    expect(saved.options).toEqual({ bottleneck: 4, scale: 0.1, dropout: 0.1, blocks: [1, 2] });
    const { tensors } = readSafetensors(join(out, ADAPTER_WEIGHTS_FILE));
    expect(Object.fromEntries([...tensors].map(([k, t]) => [k, t.shape]))).toEqual({
      'adaptformer.blocks.1.down.weight': [4, 48], 'adaptformer.blocks.1.down.bias': [4],
      'adaptformer.blocks.1.up.weight': [48, 4], 'adaptformer.blocks.1.up.bias': [48],
      'adaptformer.blocks.2.down.weight': [4, 48], 'adaptformer.blocks.2.down.bias': [4],
      'adaptformer.blocks.2.up.weight': [48, 4], 'adaptformer.blocks.2.up.bias': [48],
      'head.weight': [2, 48], 'head.bias': [2],
    });

    const reopened = openFitted(out, bench.backbone).fitted;
    const x = images(3, 32, 9);
    tf.tidy(() => {
      expect(maxAbsDiff(reopened.logits(x), fitted.logits(x))).toBe(0);
      expect(maxAbsDiff(reopened.headFeatures(x), fitted.headFeatures(x))).toBe(0);
    });
    const evaluation = await reopened.evaluate!(split, 4);
    expect(evaluation.count).toBe(8);
    x.dispose();
    reopened.dispose();
    fitted.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses adapter files with missing, extra or misshapen tensors, naming the tensor', () => {
    const broken = bench.edited;
    expect(broken((t) => t.delete('adaptformer.blocks.2.up.bias'))).toThrow(/adapter_model.safetensors.*missing tensor adaptformer.blocks.2.up.bias/);
    expect(broken((t) => t.set('adaptformer.blocks.1.up.bias', { shape: [48], data: new Float32Array(48) }))).toThrow(/unexpected tensor adaptformer.blocks.1.up.bias/);
    expect(broken((t) => t.set('adaptformer.blocks.0.down.weight', { shape: [48, 8], data: new Float32Array(384) }))).toThrow(
      /adaptformer.blocks.0.down.weight has shape \[48, 8\], expected \[8, 48\]/,
    );
    expect(broken((t) => t.delete('head.weight'))).toThrow(/missing tensor head.weight/);
    expect(broken((t) => t.set('adaptformer.blocks.0.up.bias', { shape: [48], data: new Float32Array(48).fill(NaN) }))).toThrow(/adaptformer.blocks.0.up.bias holds NaN/);
    // An option the method does not have, in the config file.
    expect(bench.editedConfig((config) => void (config.options.rank = 4))).toThrow(/adapter_config.json.*has no option "rank"/);
  });
});
