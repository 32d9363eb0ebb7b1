import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arrayImageSplit, cloneParams, fitMethod, fullMethod, initBackend, openFitted, randomVit, readSafetensors, saveFitted, VisionTransformer, writeSafetensors, type LoadedVit } from '../src/index.js';
import { maxAbsDiff, TINY } from './helpers.js';

let backbone: LoadedVit;
const train = { epochs: 2, batchSize: 4, optimizer: 'adam' as const, warmupEpochs: 0, seed: 1, progress: 'none' as const };
const runtime = { cacheBudgetBytes: 2 ** 26, spillDtype: 'float32' as const, checkpointing: 'auto' as const };

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  backbone = { model: randomVit(TINY, 8), sha256: 'b'.repeat(64), name: 'random', file: 'random' } as unknown as LoadedVit;
});
afterAll(() => backbone.model.dispose());

function data() {
  const side = TINY.imageSize;
  const images = tf.tidy(() => tf.randomNormal([8, 3, side, side], 0, 1, 'float32', 5).dataSync() as Float32Array);
  return { split: arrayImageSplit(images, Int32Array.from({ length: 8 }, (_, i) => i % 2), side), images: tf.tensor4d(images, [8, 3, side, side]) };
}

describe('full fine-tuning', () => {
  it('trains every parameter on a copy (the shared backbone is untouched), saves torch layouts, reopens exactly', async () => {
    const { split, images } = data();
    const frozenBefore = tf.tidy(() => backbone.model.forward(images).cls);
    const context = { backbone, hp: { lr: 0.01, weightDecay: 0 }, train, runtime, log: () => {} };
    const fitted = await fullMethod.fit({}, context, split);
    tf.tidy(() => {
      expect(maxAbsDiff(frozenBefore, backbone.model.forward(images).cls)).toBe(0);
    });
    const dir = mkdtempSync(join(tmpdir(), 'full-'));
    saveFitted(dir, fitted, backbone);
    const { tensors } = readSafetensors(join(dir, 'adapter_model.safetensors'));
    const p = TINY.patchSize;
    expect(tensors.get('full.patch_embed.proj.weight')?.shape).toEqual([TINY.dim, 3, p, p]);
    expect(tensors.get('full.blocks.0.mlp.fc1.weight')?.shape).toEqual([TINY.dim * TINY.mlpRatio, TINY.dim]);
    expect(tensors.get('full.cls_token')?.shape).toEqual([1, 1, TINY.dim]);
    expect(fitted.trainableParameters()).toBe(backbone.model.parameterCount() + TINY.dim * 2 + 2);
    const { fitted: reopened } = openFitted(dir, backbone);
    tf.tidy(() => {
      expect(maxAbsDiff(fitted.logits(images), reopened.logits(images))).toBeLessThan(1e-6);
      expect(maxAbsDiff(fitted.headFeatures(images), frozenBefore)).toBeGreaterThan(1e-4);
    });
    fitted.dispose();
    reopened.dispose();
    tf.dispose([frozenBefore, images]);
  });

  it('lastBlocks k trains only those blocks and the final norm, and leaks nothing', async () => {
    const before = tf.memory().numTensors;
    const { split, images } = data();
    const fitted = await fullMethod.fit({ lastBlocks: 1 }, { backbone, hp: { lr: 0.01, weightDecay: 0 }, train, runtime, log: () => {} }, split);
    const dir = mkdtempSync(join(tmpdir(), 'full-last-'));
    saveFitted(dir, fitted, backbone);
    const names = [...readSafetensors(join(dir, 'adapter_model.safetensors')).tensors.keys()];
    expect(names.filter((n) => n.startsWith('full.blocks.')).every((n) => n.startsWith(`full.blocks.${TINY.depth - 1}.`))).toBe(true);
    expect(names).toContain('full.norm.weight');
    expect(names).not.toContain('full.pos_embed');
    expect(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')).options).toEqual({ lastBlocks: 1 });
    fitted.dispose();
    images.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('blocks before the first trainable parameter never enter the tape', () => {
    const tapeNodes = (select: (name: string) => boolean) => {
      const vit = randomVit(TINY, 2);
      const variables = [...vit.makeTrainable(select).values()];
      const x = tf.randomNormal([2, 3, TINY.imageSize, TINY.imageSize]) as tf.Tensor4D;
      let nodes = 0;
      const { value, grads } = tf.variableGrads(() => {
        const out = tf.sum(vit.forward(x).cls) as tf.Scalar;
        nodes = ((tf.engine() as unknown as { state: { activeTape: unknown[] } }).state.activeTape ?? []).length;
        return out;
      }, variables);
      tf.dispose([value, x, ...Object.values(grads)]);
      vit.dispose();
      return nodes;
    };
    const all = tapeNodes(() => true);
    const last = tapeNodes((name) => name.startsWith(`blocks.${TINY.depth - 1}.`));
    expect(last).toBeLessThan(all / 2);
  });

  it('a missing head tensor is one line naming the file once (full and linear open the head the same way)', async () => {
    const { split, images } = data();
    images.dispose();
    for (const [method, config] of [['full', { lastBlocks: 1 }], ['linear', {}]] as const) {
      const fitted = await fitMethod(method, backbone, split, { config, epochs: 1, batchSize: 4 });
      const dir = mkdtempSync(join(tmpdir(), `${method}-headless-`));
      saveFitted(dir, fitted, backbone);
      fitted.dispose();
      const file = join(dir, 'adapter_model.safetensors');
      const { tensors } = readSafetensors(file);
      tensors.delete('head.bias');
      writeSafetensors(file, tensors);
      let message = '';
      const tensorsBefore = tf.memory().numTensors;
      try {
        openFitted(dir, backbone).fitted.dispose();
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toBe(`${file}: missing tensor head.bias`);
      // The refused open frees what it had made (the backbone copy, the head).
      expect(tf.memory().numTensors).toBe(tensorsBefore);
    }
  });

  it('a fit that fails frees its copy of the backbone', async () => {
    const { split, images } = data();
    images.dispose();
    const tensorsBefore = tf.memory().numTensors;
    const failing = { epochs: 2, batchSize: 4, optimizer: 'adam' as const, warmupEpochs: 0, seed: 0, progress: 'none' as const, onEpochEnd: () => { throw new Error('stop here'); } };
    await expect(fullMethod.fit({}, { backbone, hp: { lr: 0.01, weightDecay: 0 }, train: failing, runtime, log: () => {} }, split)).rejects.toThrow('stop here');
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it('cloneParams copies every tensor of a parameter tree: the copy runs the same and is disposed on its own', () => {
    const vit = randomVit(TINY, 4);
    const x = tf.randomNormal([2, 3, TINY.imageSize, TINY.imageSize], 0, 1, 'float32', 6) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const copy = cloneParams(vit.params);
    expect(tf.memory().numTensors - before).toBe(vit.namedParameters().size + (vit.params.head ? 2 : 0));
    expect(copy.blocks[1].q.weight).not.toBe(vit.params.blocks[1].q.weight);
    const model = new VisionTransformer(vit.config, copy);
    tf.tidy(() => {
      expect(maxAbsDiff(model.forward(x).cls, vit.forward(x).cls)).toBe(0);
    });
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(vit.params.blocks[1].q.weight.isDisposed).toBe(false);
    tf.dispose(x);
    vit.dispose();
  });
});
