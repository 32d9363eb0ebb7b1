import * as tf from '@tensorflow/tfjs';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, getMethod, openFitted, readSafetensors, resolveMethodConfig, saveFitted } from '@vqt/core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loraMethod, type FittedLora, type LoraConfig } from '../src/index.js';
import { FIXTURE_DIR, images, maxAbsDiff, memorySplit, methodTestBench, type MethodTestBench } from './helpers.js';

let bench: MethodTestBench;
beforeAll(async () => void (bench = await methodTestBench('lora-test-', FIXTURE_DIR)));
afterAll(() => bench.dispose());

describe('the lora method plugin', () => {
  it('is registered on import with PEFT-like defaults', () => {
    expect(getMethod('lora')).toBe(loraMethod);
    expect(resolveMethodConfig(loraMethod, {})).toEqual({ rank: 8, alpha: 8, targets: ['q', 'v'], dropout: 0, blocks: undefined, lastBlocks: undefined });
  });

  it('refuses bad options with a message naming them', () => {
    const resolve = (partial: Record<string, unknown>) => () => resolveMethodConfig(loraMethod, partial, 'command line');
    expect(resolve({ bottleneck: 4 })).toThrow(/command line: method "lora" has no option "bottleneck"/);
    expect(resolve({ rank: 0 })).toThrow(/lora.rank must be >= 1/);
    expect(resolve({ alpha: 0 })).toThrow(/lora.alpha must be > 0/);
    expect(resolve({ targets: ['q', 'qkv'] })).toThrow(/lora.targets must be a list of q, k, v, proj, fc1, fc2/);
    expect(resolve({ targets: [] })).toThrow(/lora.targets must name at least one/);
    expect(resolve({ targets: ['v', 'v'] })).toThrow(/lora.targets lists v twice/);
    expect(resolve({ dropout: -0.1 })).toThrow(/lora.dropout must be >= 0/);
    expect(resolve({ blocks: [2], lastBlocks: 1 })).toThrow(/blocks or lastBlocks, not both/);
  });

  it('refuses blocks the backbone does not have', async () => {
    const bad = async (partial: Partial<LoraConfig>, pattern: RegExp) =>
      expect(loraMethod.fit(resolveMethodConfig(loraMethod, partial), bench.context(1), memorySplit(4, 2, 32))).rejects.toThrow(pattern);
    await bad({ blocks: [5] }, /lora.blocks has 5, but the backbone's blocks are 0..2/);
    await bad({ lastBlocks: 9 }, /lora.lastBlocks is 9, but the backbone has only 3 blocks/);
  });

  it('fits one epoch on a tiny split, saves, opens to the same logits, and merges', async () => {
    const split = memorySplit(8, 2, 32, 3);
    const logs: string[] = [];
    let announced = 0;
    const config = resolveMethodConfig(loraMethod, { rank: 2, alpha: 4, targets: ['fc1', 'q'], lastBlocks: 2 });
    const before = tf.memory().numTensors;
    const fitted = (await loraMethod.fit(config, { ...bench.context(1, logs), announce: (n) => void (announced = n) }, split)) as FittedLora;
    expect(announced).toBe(2 * (2 * (48 + 48) + 2 * (48 + 192)) + 48 * 2 + 2);
    expect(fitted.trainableParameters()).toBe(announced);
    expect(logs.join('\n')).toMatch(/targets q,fc1, blocks 1,2/);
    for (const pairs of fitted.hook.modules.values()) {
      for (const pair of pairs.values()) expect(tf.tidy(() => tf.max(tf.abs(pair.b)).dataSync()[0])).toBeGreaterThan(0);
    }
    expect(fitted.options()).toEqual({ rank: 2, alpha: 4, targets: ['q', 'fc1'], dropout: 0, blocks: [1, 2] });

    const out = join(bench.dir, 'fitted');
    saveFitted(out, fitted, bench.backbone, { training: { epochs: 1 } });
    expect(JSON.parse(readFileSync(join(out, ADAPTER_CONFIG_FILE), 'utf8')).options).toEqual(fitted.options());
    const { tensors } = readSafetensors(join(out, ADAPTER_WEIGHTS_FILE));
    expect(Object.fromEntries([...tensors].map(([k, t]) => [k, t.shape]))).toEqual({
      'lora.blocks.1.q.lora_A': [2, 48], 'lora.blocks.1.q.lora_B': [48, 2],
      'lora.blocks.1.fc1.lora_A': [2, 48], 'lora.blocks.1.fc1.lora_B': [192, 2],
      'lora.blocks.2.q.lora_A': [2, 48], 'lora.blocks.2.q.lora_B': [48, 2],
      'lora.blocks.2.fc1.lora_A': [2, 48], 'lora.blocks.2.fc1.lora_B': [192, 2],
      'head.weight': [2, 48], 'head.bias': [2],
    });

    const reopened = openFitted(out, bench.backbone).fitted as FittedLora;
    const x = images(3, 32, 9);
    const merged = reopened.merge();
    tf.tidy(() => {
      const logits = fitted.logits(x);
      expect(maxAbsDiff(reopened.logits(x), logits)).toBe(0);
      expect(maxAbsDiff(reopened.classifier.head.apply(merged.forward(x).cls), logits)).toBeLessThanOrEqual(1e-5);
    });
    merged.dispose();
    const evaluation = await reopened.evaluate!(split, 4);
    expect(evaluation.count).toBe(8);
    x.dispose();
    reopened.dispose();
    fitted.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses adapter files with missing, extra or misshapen tensors, naming the tensor', () => {
    const broken = bench.edited;
    expect(broken((t) => t.delete('lora.blocks.2.v.lora_B'))).toThrow(/adapter_model.safetensors.*missing tensor lora.blocks.2.v.lora_B/);
    expect(broken((t) => t.set('lora.blocks.0.q.lora_A', { shape: [4, 48], data: new Float32Array(192) }))).toThrow(/unexpected tensor lora.blocks.0.q.lora_A/);
    expect(broken((t) => t.set('lora.blocks.1.fc1.lora_B', { shape: [4, 192], data: new Float32Array(768) }))).toThrow(
      /lora.blocks.1.fc1.lora_B has shape \[4, 192\], expected \[192, 4\]/,
    );
    expect(broken((t) => t.delete('head.bias'))).toThrow(/missing tensor head.bias/);
    expect(bench.editedConfig((config) => void (config.options.rank = 8))).toThrow(/adapter_model.safetensors.*lora.blocks.1.q.lora_A has shape \[4, 48\], expected \[8, 48\]/);
  });
});
