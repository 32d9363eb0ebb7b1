import * as tf from '@tensorflow/tfjs';
import { evaluateModel, FeatureDataSource, LinearHead, LinearProbe, saveAdapter, trainModel, type LoadedVit, type VisionTransformer } from '@vqt/core';
import type { VtabSplit } from '@vqt/vtab-datasets';
import type { Method, TrainedMethod } from './types.js';

/** Final normalised CLS of every image of a split, off the tape, in data order. */
export async function clsFeatures(vit: VisionTransformer, split: VtabSplit, batchSize: number): Promise<FeatureDataSource> {
  const dim = vit.config.dim;
  const features = new Float32Array(split.size * dim);
  const labels = new Int32Array(split.size);
  let row = 0;
  for await (const batch of split.batches(batchSize, { shuffle: false })) {
    const n = batch.labels.length;
    const cls = tf.tidy(() => vit.forward(tf.tensor4d(batch.images, [n, 3, split.imageSize, split.imageSize])).cls);
    features.set(await cls.data(), row * dim);
    cls.dispose();
    labels.set(batch.labels, row);
    row += n;
  }
  return new FeatureDataSource(features, dim, labels);
}

function trained(backbone: LoadedVit, head: LinearHead): TrainedMethod {
  const probe = new LinearProbe(head);
  return {
    method: 'linear',
    numClasses: head.classes,
    trainableParameters: () => head.weight.size + head.bias.size,
    async evaluate(split, batchSize) {
      return evaluateModel(probe, await clsFeatures(backbone.model, split, batchSize), batchSize);
    },
    headFeatures: (images) => backbone.model.forward(images).cls,
    save(dir, training, labelNames) {
      const tensors = tf.tidy(() => head.exportTensors());
      saveAdapter(
        dir,
        {
          method: 'linear',
          formatVersion: 1,
          backbone: { name: backbone.name, sha256: backbone.sha256, config: backbone.model.config },
          numClasses: head.classes,
          ...(labelNames ? { labelNames } : {}),
          options: {},
          training,
        },
        tensors,
      );
      tf.dispose(Object.values(tensors));
    },
    dispose: () => head.dispose(),
  };
}

/** Linear probing: a linear head on the frozen final CLS. Features are extracted once per split. */
export function linearMethod(): Method {
  const cache = new Map<string, FeatureDataSource>();
  return {
    name: 'linear',
    async fit(context, hp, split) {
      const key = `${split.taskDir}:${split.split}`;
      if (!cache.has(key)) cache.set(key, await clsFeatures(context.backbone.model, split, context.train.batchSize));
      const head = new LinearHead(context.backbone.model.config.dim, split.numClasses, 'linear');
      context.announce?.(head.weight.size + head.bias.size);
      await trainModel(new LinearProbe(head), cache.get(key)!, { ...context.train, lr: hp.lr, weightDecay: hp.weightDecay });
      return trained(context.backbone, head);
    },
    open(_dir, adapter, backbone) {
      const head = new LinearHead(backbone.model.config.dim, adapter.config.numClasses, 'linear');
      head.importTensors(adapter.tensors.get('head.weight')!, adapter.tensors.get('head.bias')!);
      return trained(backbone, head);
    },
  };
}
