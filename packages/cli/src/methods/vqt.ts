import { evaluateModel, trainModel } from '@vqt/core';
import type { VtabSplit } from '@vqt/vtab-datasets';
import { FeatureCache, loadVqtAdapter, saveVqtAdapter, selectHeadFeatures, splitImageSource, VqtModel } from '@vqt/vqt';
import type { Method, TrainedMethod } from './types.js';

function trained(model: VqtModel, backbone: { name: string; sha256: string }): TrainedMethod {
  return {
    method: 'vqt',
    numClasses: model.numClasses,
    trainableParameters: () => model.parameterCount(),
    evaluate: (split, batchSize) => evaluateModel(model, splitImageSource(split), batchSize),
    headFeatures: (images) => model.headInput({ images, labels: new Int32Array(images.shape[0]) }),
    save: (dir, training, labelNames) => saveVqtAdapter(dir, model, backbone, { training, labelNames }),
    dispose: () => model.dispose(),
  };
}

/**
 * VQT: queries + head trained from a feature cache (inputs are fixed, so the frozen LN1 outputs are
 * computed once per split), optionally followed by group-lasso selection of head-input features.
 */
export function vqtMethod(): Method {
  const caches = new Map<string, FeatureCache>();
  const cacheFor = async (model: VqtModel, split: VtabSplit, context: Parameters<Method['fit']>[0]) => {
    const key = `${split.taskDir}:${split.split}`;
    if (!caches.has(key)) {
      const started = performance.now();
      caches.set(
        key,
        await model.buildCache(split.batches(context.train.batchSize, { shuffle: false }), {
          budgetBytes: context.options.cacheBudgetBytes,
          dir: context.options.cacheDir,
          spillDtype: context.options.spillFloat16 ? 'float16' : 'float32',
          expectedImages: split.size,
        }),
      );
      context.log(`feature cache: ${split.size} images of ${split.split} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
    return caches.get(key)!;
  };
  return {
    name: 'vqt',
    async fit(context, hp, split) {
      const { options } = context;
      const model = new VqtModel(context.backbone.model, {
        numClasses: split.numClasses,
        queries: options.queries,
        featureNorm: options.featureNorm,
        dropout: options.dropout,
        seed: context.train.seed,
      });
      const cache = await cacheFor(model, split, context);
      context.announce?.(model.parameterCount());
      await trainModel(model, cache, { ...context.train, lr: hp.lr, weightDecay: hp.weightDecay });
      if (options.select !== undefined) {
        const lambda = options.lasso !== undefined ? { lambda: options.lasso } : { lambdaRatio: options.lassoRatio };
        const selection = await selectHeadFeatures(model, cache, { keepFraction: options.select, batchSize: context.train.batchSize, ...lambda });
        context.log(`group lasso kept ${selection.keptIndices.length} of ${model.featureDim} head-input features`);
      }
      return trained(model, context.backbone);
    },
    open(dir, _adapter, backbone) {
      return trained(loadVqtAdapter(dir, backbone.model, { backboneSha256: backbone.sha256 }).model, backbone);
    },
    async close() {
      for (const cache of caches.values()) await cache.close();
      caches.clear();
    },
  };
}
