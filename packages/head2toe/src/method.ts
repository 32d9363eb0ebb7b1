import * as tf from '@tensorflow/tfjs';
import { imageSplitSource, registerMethod, type FittedMethod, type HostTensor, type LoadedVit, type MethodSpec } from '@vqt/core';
import { DEFAULT_HEAD2TOE_OPTIONS } from './config.js';
import { Head2ToeExtractor, type ExtractedFeatures } from './extractor.js';
import { fitHead2Toe } from './fit.js';
import { Head2ToeModel } from './model.js';
import { featureLayout, geometryOf, layoutWidth } from './taps.js';

/** Head2Toe's options as saved in adapter_config.json (the format of saveHead2ToeAdapter). */
export interface Head2ToeMethodConfig {
  targetSize: number;
  keep: number;
  /** Absolute group-lasso lambda (wins over lambdaRatio). */
  lambda?: number;
  lambdaRatio: number;
  /** Saved state: the kept columns of the full feature vector, and its width. */
  keptIndices?: number[];
  featureWidth?: number;
}

const HEAD2TOE_DEFAULTS: Head2ToeMethodConfig = {
  targetSize: DEFAULT_HEAD2TOE_OPTIONS.targetSize,
  keep: DEFAULT_HEAD2TOE_OPTIONS.keep,
  lambda: undefined,
  lambdaRatio: DEFAULT_HEAD2TOE_OPTIONS.lambdaRatio,
  keptIndices: undefined,
  featureWidth: undefined,
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
      keptIndices: Array.from(model.keptIndices),
      featureWidth: model.spec.featureWidth,
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
      { key: 'keptIndices', flag: 'kept-indices', kind: 'intList', min: 0, optional: true, hidden: true, description: 'kept features (saved)' },
      { key: 'featureWidth', flag: 'feature-width', kind: 'int', min: 1, optional: true, hidden: true, description: 'full feature width (saved)' },
    ],
    async fit(config, context, data) {
      const { backbone } = context;
      const extractor = new Head2ToeExtractor(backbone.model.config, { targetSize: config.targetSize });
      const key = `${backbone.sha256}:${data.id}:${config.targetSize}`;
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
      const { keptIndices, featureWidth, targetSize } = config;
      if (!keptIndices || featureWidth === undefined) throw new Error(`${context.file}: a head2toe adapter needs options keptIndices and featureWidth`);
      const expectedWidth = layoutWidth(featureLayout(geometryOf(context.backbone.model.config), targetSize));
      if (expectedWidth !== featureWidth) throw new Error(`${context.file}: featureWidth ${featureWidth} does not match the backbone's ${expectedWidth} at target size ${targetSize}`);
      const model = new Head2ToeModel({
        targetSize,
        featureWidth,
        keptIndices: Int32Array.from(keptIndices),
        numClasses: context.numClasses,
        keep: config.keep,
        ...(config.lambda !== undefined ? { lambda: config.lambda } : {}),
        lambdaRatio: config.lambdaRatio,
      });
      try {
        model.head.importTensors(expectHead(tensors, 'head.weight', context.file), expectHead(tensors, 'head.bias', context.file));
      } catch (error) {
        model.dispose();
        throw error;
      }
      return fittedHead2Toe(model, new Head2ToeExtractor(context.backbone.model.config, { targetSize }), context.backbone, config);
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
