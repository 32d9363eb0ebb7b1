import * as tf from '@tensorflow/tfjs';
import { evaluateModel, imageSplitSource, registerMethod, trainModel, type FitContext, type FittedMethod, type HostTensor, type ImageSplit, type MethodSpec } from '@vqt/core';
import { FeatureCache } from './cache.js';
import type { FeatureNorm } from './config.js';
import { VqtModel } from './model.js';
import { selectHeadFeatures } from './selection.js';
import { applyVqtTensors } from './adapter.js';

/** VQT's options: what adapter_config.json saves and `vqt train --method vqt` takes. */
export interface VqtMethodConfig {
  /** Query tokens per block (T). */
  queries: number;
  dropout: number;
  featureNorm: FeatureNorm;
  /** Query init bound (default sqrt(6 / (3 p^2 + D)), VPT's formula). */
  initRange?: number;
  /** Seed of the query init (default: the training seed; the one used is saved). */
  seed?: number;
  /** Freeze the queries, then keep this fraction of head-input features by group lasso. */
  select?: number;
  /** Group-lasso lambda, absolute; when absent lassoRatio x lambda_max. */
  lasso?: number;
  lassoRatio: number;
  /** Saved state after selection: the kept head-input features, ascending. */
  keptIndices?: number[];
}

export const VQT_DEFAULTS: VqtMethodConfig = {
  queries: 1,
  dropout: 0.1,
  featureNorm: 'l2',
  initRange: undefined,
  seed: undefined,
  select: undefined,
  lasso: undefined,
  lassoRatio: 0.1,
  keptIndices: undefined,
};

function fittedVqt(model: VqtModel, config: VqtMethodConfig, onDispose?: () => Promise<void>): FittedMethod {
  return {
    method: 'vqt',
    numClasses: model.numClasses,
    options: () => ({
      ...config,
      seed: model.config.seed,
      initRange: model.hook.initRange,
      ...(model.keptIndices ? { keptIndices: Array.from(model.keptIndices) } : {}),
    }),
    trainableParameters: () => model.parameterCount(),
    logits: (images) => model.logits({ images, labels: new Int32Array(images.shape[0]) }, { training: false, seed: 0 }),
    headFeatures: (images) => model.headInput({ images, labels: new Int32Array(images.shape[0]) }),
    evaluate: (data, batchSize) => evaluateModel(model, imageSplitSource(data), batchSize),
    exportTensors: () =>
      tf.tidy(() => ({
        'vqt.queries': model.hook.stackedQueries(),
        'head.weight': tf.transpose(model.headWeight),
        'head.bias': tf.clone(model.headBias),
      })),
    dispose: () => {
      model.dispose();
      void onDispose?.();
    },
  };
}

/**
 * Visual Query Tuning as a method plugin: queries + head trained from a feature cache (inputs are
 * fixed, so the frozen LN1 outputs are computed once per split), optionally followed by group-lasso
 * selection. On a stack it reads the frozen adapting method's tokens (its hooks run first).
 */
export function createVqtMethod(): MethodSpec<VqtMethodConfig> {
  const caches = new Map<string, FeatureCache>();
  const cacheFor = async (model: VqtModel, data: ImageSplit, context: FitContext): Promise<{ cache: FeatureCache; owned: boolean }> => {
    // A cache read through a base method's hooks belongs to that base alone.
    const key = `${context.backbone.sha256}:${data.id}`;
    const shared = !context.base;
    if (shared && caches.has(key)) return { cache: caches.get(key)!, owned: false };
    const started = performance.now();
    const cache = await model.buildCache(data.batches(context.train.batchSize, { shuffle: false }), {
      budgetBytes: context.runtime.cacheBudgetBytes,
      dir: context.runtime.cacheDir,
      spillDtype: context.runtime.spillDtype,
      expectedImages: data.size,
    });
    context.log(`feature cache: ${data.size} images of ${data.id} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    if (shared) caches.set(key, cache);
    return { cache, owned: !shared };
  };
  return {
    name: 'vqt',
    description: 'Visual Query Tuning: learnable queries per block read the frozen intermediate features',
    prefix: 'vqt.',
    role: 'read',
    stackable: true,
    defaults: VQT_DEFAULTS,
    options: [
      { key: 'queries', flag: 'queries', kind: 'int', min: 1, description: 'query tokens per block (T)' },
      { key: 'dropout', flag: 'dropout', kind: 'number', min: 0, max: 0.99, description: 'query dropout while training' },
      { key: 'featureNorm', flag: 'feature-norm', kind: 'choice', choices: ['l2', 'none', 'mean'], description: 'head input normalisation' },
      { key: 'initRange', flag: 'init-range', kind: 'number', min: 0, optional: true, description: 'query init bound (default sqrt(6/(3p^2+D)))' },
      { key: 'seed', flag: 'query-seed', kind: 'int', min: 0, optional: true, description: 'query init seed (default: --seed)' },
      { key: 'select', flag: 'select', kind: 'fraction', optional: true, description: 'freeze the queries, then keep this fraction of head-input features by group lasso' },
      { key: 'lasso', flag: 'lasso', kind: 'number', min: 0, optional: true, description: 'group-lasso lambda (absolute); default --lasso-ratio x lambda_max' },
      { key: 'lassoRatio', flag: 'lasso-ratio', kind: 'number', min: 0, description: 'group-lasso lambda as a fraction of lambda_max' },
      { key: 'keptIndices', flag: 'kept-indices', kind: 'intList', min: 0, optional: true, hidden: true, description: 'kept head-input features (saved after selection)' },
    ],
    async fit(config, context, data) {
      if (context.joint) return fitJoint(config, context, data);
      const model = new VqtModel(context.backbone.model, {
        numClasses: data.numClasses,
        queries: config.queries,
        featureNorm: config.featureNorm,
        dropout: config.dropout,
        initRange: config.initRange,
        seed: config.seed ?? context.train.seed,
        baseHooks: context.base?.adaptingHooks?.() ?? [],
      });
      const { cache, owned } = await cacheFor(model, data, context);
      try {
        context.announce?.(model.parameterCount());
        await trainModel(model, cache, { ...context.train, lr: context.hp.lr, weightDecay: context.hp.weightDecay });
        if (config.select !== undefined) {
          const lambda = config.lasso !== undefined ? { lambda: config.lasso } : { lambdaRatio: config.lassoRatio };
          const selection = await selectHeadFeatures(model, cache, { keepFraction: config.select, batchSize: context.train.batchSize, ...lambda });
          context.log(`group lasso kept ${selection.keptIndices.length} of ${model.featureDim} head-input features`);
        }
      } finally {
        if (owned) await cache.close();
      }
      return fittedVqt(model, config);
    },
    open(config, tensors, context) {
      if (context.base && !context.base.adaptingHooks) throw new Error(`${context.file}: vqt: the stack's base has no adapting hooks`);
      const model = new VqtModel(context.backbone.model, {
        numClasses: context.numClasses,
        queries: config.queries,
        featureNorm: config.featureNorm,
        dropout: config.dropout,
        initRange: config.initRange,
        seed: config.seed,
        baseHooks: context.base?.adaptingHooks?.() ?? [],
      });
      try {
        applyVqtTensors(model, tensors as Map<string, HostTensor>, context.file, config.keptIndices);
      } catch (error) {
        model.dispose();
        throw error;
      }
      const unknown = [...tensors.keys()].filter((k) => !['vqt.queries', 'head.weight', 'head.bias'].includes(k));
      if (unknown.length) {
        model.dispose();
        throw new Error(`${context.file}: vqt does not know tensors ${unknown.join(', ')}`);
      }
      return fittedVqt(model, config);
    },
    async close() {
      for (const cache of caches.values()) await cache.close();
      caches.clear();
    },
  };
}

/** Joint stacking: the base's hooks train with the queries from images (the features change every step, so no cache). */
async function fitJoint(config: VqtMethodConfig, context: FitContext, data: ImageSplit): Promise<FittedMethod> {
  const baseHooks = context.base?.trainableHooks?.();
  if (!baseHooks) throw new Error('vqt: joint training needs a base method with trainable hooks');
  if (config.select !== undefined) throw new Error('vqt: --select needs frozen features; use the two-stage stack (without --joint)');
  const model = new VqtModel(context.backbone.model, {
    numClasses: data.numClasses,
    queries: config.queries,
    featureNorm: config.featureNorm,
    dropout: config.dropout,
    initRange: config.initRange,
    seed: config.seed ?? context.train.seed,
    baseHooks,
    trainBaseHooks: true,
  });
  context.announce?.(model.parameterCount());
  await trainModel(model, imageSplitSource(data), { ...context.train, lr: context.hp.lr, weightDecay: context.hp.weightDecay });
  return fittedVqt(model, config);
}

export const vqtMethod = registerMethod(createVqtMethod());
