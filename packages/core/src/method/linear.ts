import * as tf from '@tensorflow/tfjs';
import type { VisionTransformer } from '../vit/vit.js';
import { FeatureDataSource, LinearHead, LinearProbe } from '../train/linear-head.js';
import { evaluateModel, trainModel } from '../train/trainer.js';
import type { Hook } from '../hooks.js';
import { registerMethod } from './registry.js';
import type { FittedMethod, ImageSplit, MethodSpec } from './spec.js';

/** Linear probing has no options of its own: the head is all it trains. */
export type LinearConfig = Record<string, never>;

/** Final normalised CLS of every image of a split (through frozen adapting hooks, if any), in data order. */
export async function clsFeatures(vit: VisionTransformer, split: ImageSplit, batchSize: number, hooks: readonly Hook[] = []): Promise<FeatureDataSource> {
  const dim = vit.config.dim;
  const features = new Float32Array(split.size * dim);
  const labels = new Int32Array(split.size);
  let row = 0;
  for await (const batch of split.batches(batchSize, { shuffle: false })) {
    const n = batch.labels.length;
    const cls = tf.tidy(() => vit.forward(tf.tensor4d(batch.images, [n, 3, split.imageSize, split.imageSize]), { hooks }).cls);
    features.set(await cls.data(), row * dim);
    cls.dispose();
    labels.set(batch.labels, row);
    row += n;
  }
  return new FeatureDataSource(features.subarray(0, row * dim), dim, labels.subarray(0, row));
}

function fittedProbe(vit: VisionTransformer, head: LinearHead): FittedMethod {
  const probe = new LinearProbe(head);
  return {
    method: 'linear',
    numClasses: head.classes,
    options: () => ({}),
    trainableParameters: () => head.weight.size + head.bias.size,
    logits: (images) => tf.tidy(() => head.apply(vit.forward(images).cls)),
    headFeatures: (images) => vit.forward(images).cls,
    evaluate: async (data, batchSize) => evaluateModel(probe, await clsFeatures(vit, data, batchSize), batchSize),
    exportTensors: () => tf.tidy(() => head.exportTensors('head')),
    dispose: () => head.dispose(),
  };
}

/**
 * Linear probing: a linear head on the frozen final CLS. The features of a split are extracted once
 * and kept for later fits on it (the VTAB protocol fits 21 times per task).
 */
export function createLinearMethod(): MethodSpec<LinearConfig> {
  const extracted = new Map<string, FeatureDataSource>();
  return {
    name: 'linear',
    description: 'linear probe: a linear head on the frozen final CLS',
    prefix: 'linear.',
    role: 'read',
    defaults: {},
    options: [],
    async fit(_config, context, data) {
      const vit = context.backbone.model;
      const key = `${context.backbone.sha256}:${data.id}`;
      if (!extracted.has(key)) extracted.set(key, await clsFeatures(vit, data, context.train.batchSize));
      const head = new LinearHead(vit.config.dim, data.numClasses, 'linear');
      context.announce?.(head.weight.size + head.bias.size);
      await trainModel(new LinearProbe(head), extracted.get(key)!, { ...context.train, lr: context.hp.lr, weightDecay: context.hp.weightDecay });
      return fittedProbe(vit, head);
    },
    open(_config, tensors, context) {
      const head = new LinearHead(context.backbone.model.config.dim, context.numClasses, 'linear');
      try {
        head.importFromAdapter(tensors, context.file);
      } catch (error) {
        head.dispose();
        throw error;
      }
      return fittedProbe(context.backbone.model, head);
    },
  };
}

/** The linear-probe spec, registered by importing @vqt/core. */
export const linearMethod = registerMethod(createLinearMethod());
