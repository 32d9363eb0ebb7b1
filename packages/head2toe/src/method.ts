import * as tf from '@tensorflow/tfjs';
import { imageSplitSource, registerMethod, type FittedMethod, type HostTensor, type LoadedVit, type MethodSpec } from '@vqt/core';
import { head2toeModelFromOptions, savedTapLayout, type SavedTapLayout } from './adapter.js';
import { DEFAULT_HEAD2TOE_OPTIONS, DEFAULT_POOLING, type Head2ToePooling } from './config.js';
import { Head2ToeExtractor, type ExtractedFeatures } from './extractor.js';
import { fitHead2Toe } from './fit.js';
import { Head2ToeModel } from './model.js';

/** Head2Toe's options as saved in adapter_config.json (the format of saveHead2ToeAdapter). */
export interface Head2ToeMethodConfig {
  targetSize: number;
  keep: number;
  /** Absolute group-lasso lambda (wins over lambdaRatio). */
  lambda?: number;
  lambdaRatio: number;
  /** Taps and token pooling: 'official' (google-research/head2toe's, the default for new fits) or 'adaptive' (this tool's earlier rule). */
  pooling?: Head2ToePooling;
  /** Saved state: the kept columns of the full feature vector, its width, and which columns came from which tap. */
  keptIndices?: number[];
  featureWidth?: number;
  featureLayout?: SavedTapLayout[];
}

const HEAD2TOE_DEFAULTS: Head2ToeMethodConfig = {
  targetSize: DEFAULT_HEAD2TOE_OPTIONS.targetSize,
  keep: DEFAULT_HEAD2TOE_OPTIONS.keep,
  lambda: undefined,
  lambdaRatio: DEFAULT_HEAD2TOE_OPTIONS.lambdaRatio,
  // Undefined so that an adapter saved before pooling existed opens as 'adaptive', never as the new default.
  pooling: undefined,
  keptIndices: undefined,
  featureWidth: undefined,
  featureLayout: undefined,
};

function fittedHead2Toe(model: Head2ToeModel, extractor: Head2ToeExtractor, backbone: LoadedVit, config: Head2ToeMethodConfig): FittedMethod {
  const vit = backbone.model;
  const kept = () => tf.tensor1d(model.keptIndices, 'int32');
  const headInput = (images: tf.Tensor4D) => tf.tidy(() => tf.gather(extractor.extract(vit, images), kept(), 1) as tf.Tensor2D);
  return {
    method: 'head2toe',
    numClasses: model.spec.numClasses,
    options: () => ({
      ...config,
      ...(model.spec.lambda !== undefined ? { lambda: model.spec.lambda } : {}),
      pooling: model.spec.pooling,
      keptIndices: Array.from(model.keptIndices),
      featureWidth: model.spec.featureWidth,
      featureLayout: extractor.layout.map(savedTapLayout),
    }),
    trainableParameters: () => model.trainableVariables().reduce((n, v) => n + v.size, 0),
    logits: (images) => tf.tidy(() => model.head.apply(headInput(images))),
    headFeatures: headInput,
    evaluate: (data, batchSize) => model.evaluateImages(extractor, vit, imageSplitSource(data).batches(batchSize, { shuffle: false, seed: 0, epoch: 0 })),
    exportTensors: () => tf.tidy(() => model.head.exportTensors('head')),
    dispose: () => {
      model.dispose();
      extractor.dispose();
    },
  };
}

/**
 * Head2Toe as a method plugin: pooled taps from every block, extracted once per image (off the tape),
 * a group-lasso head to rank features, the top `keep` fraction kept and a plain head refit on them.
 * Solved exactly by proximal gradient, so the learning rate and weight decay do not apply.
 */
export function createHead2ToeMethod(): MethodSpec<Head2ToeMethodConfig> {
  const extracted = new Map<string, ExtractedFeatures>();
  return {
    name: 'head2toe',
    description: 'Head2Toe: pooled features of every block, selected by group lasso, one linear head',
    prefix: 'head2toe.',
    role: 'read',
    defaults: HEAD2TOE_DEFAULTS,
    options: [
      { key: 'targetSize', flag: 'target-size', kind: 'int', min: 1, description: 'pooled size per tap' },
      { key: 'keep', flag: 'keep', kind: 'fraction', description: 'fraction of features kept' },
      { key: 'lambda', flag: 'lasso', kind: 'number', min: 0, optional: true, description: 'group-lasso lambda (absolute); default --lasso-ratio x lambda_max' },
      { key: 'lambdaRatio', flag: 'lasso-ratio', kind: 'number', min: 0, description: 'group-lasso lambda as a fraction of lambda_max' },
      { key: 'pooling', flag: 'pooling', kind: 'choice', choices: ['official', 'adaptive'], optional: true, description: "taps and token pooling: official (google-research/head2toe's, default) or adaptive (this tool's earlier rule)" },
      { key: 'keptIndices', flag: 'kept-indices', kind: 'intList', min: 0, optional: true, hidden: true, description: 'kept features (saved)' },
      { key: 'featureWidth', flag: 'feature-width', kind: 'int', min: 1, optional: true, hidden: true, description: 'full feature width (saved)' },
      { key: 'featureLayout', flag: 'feature-layout', kind: 'json', optional: true, hidden: true, description: 'which columns came from which tap (saved)' },
    ],
    async fit(config, context, data) {
      const { backbone } = context;
      const pooling = config.pooling ?? DEFAULT_POOLING;
      const extractor = new Head2ToeExtractor(backbone.model.config, { targetSize: config.targetSize, pooling });
      const key = `${backbone.sha256}:${data.id}:${config.targetSize}:${pooling}`;
      if (!extracted.has(key)) {
        const started = performance.now();
        extracted.set(key, await extractor.extractAll(backbone.model, imageSplitSource(data).batches(context.train.batchSize, { shuffle: false, seed: 0, epoch: 0 })));
        context.log(`head2toe features: ${data.size} images x ${extractor.width} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      }
      const lambda = config.lambda !== undefined ? { lambda: config.lambda } : { lambdaRatio: config.lambdaRatio };
      const fit = fitHead2Toe(extracted.get(key)!, data.numClasses, { keep: config.keep, ...lambda });
      context.announce?.(fit.model.trainableVariables().reduce((n, v) => n + v.size, 0));
      context.log(
        `group lasso: ${fit.numNonzeroGroups} non-zero groups at lambda ${fit.lambda.toExponential(3)} (lambda_max ${fit.lambdaMax.toExponential(3)}); kept ${fit.model.numKept} of ${extractor.width}`,
      );
      return fittedHead2Toe(fit.model, extractor, backbone, config);
    },
    open(config, tensors, context) {
      const { keptIndices, featureWidth } = config;
      if (!keptIndices || featureWidth === undefined) throw new Error(`${context.file}: a head2toe adapter needs options keptIndices and featureWidth`);
      const { model, pooling } = head2toeModelFromOptions(context.file, { ...config, keptIndices, featureWidth }, context.backbone.model.config, context.numClasses);
      try {
        model.head.importTensors(expectHead(tensors, 'head.weight', context.file), expectHead(tensors, 'head.bias', context.file));
      } catch (error) {
        model.dispose();
        throw error;
      }
      return fittedHead2Toe(model, new Head2ToeExtractor(context.backbone.model.config, { targetSize: config.targetSize, pooling }), context.backbone, { ...config, pooling });
    },
    async close() {
      extracted.clear();
    },
  };
}

function expectHead(tensors: ReadonlyMap<string, HostTensor>, name: string, file: string): HostTensor {
  const t = tensors.get(name);
  if (!t) throw new Error(`${file}: ${name}: missing tensor`);
  return t;
}

export const head2toeMethod = registerMethod(createHead2ToeMethod());
