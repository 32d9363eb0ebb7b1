import * as tf from '@tensorflow/tfjs';
import type { LoadedVit } from '@vqt/core';
import { fitHead2Toe, Head2ToeExtractor, loadHead2ToeAdapter, saveHead2ToeAdapter, type ExtractedFeatures, type Head2ToeModel } from '@vqt/head2toe';
import type { VtabSplit } from '@vqt/vtab-datasets';
import type { Method, TrainedMethod } from './types.js';

function trained(model: Head2ToeModel, extractor: Head2ToeExtractor, backbone: LoadedVit, lambdaRatio?: number): TrainedMethod {
  const vit = backbone.model;
  return {
    method: 'head2toe',
    numClasses: model.spec.numClasses,
    trainableParameters: () => model.trainableVariables().reduce((n, v) => n + v.size, 0),
    evaluate: (split, batchSize) => model.evaluateImages(extractor, vit, split.batches(batchSize, { shuffle: false })),
    // The head's input: the kept columns of the full feature vector.
    headFeatures: (images) =>
      tf.tidy(() => {
        const all = extractor.extract(vit, images);
        return tf.gather(all, tf.tensor1d(model.keptIndices, 'int32'), 1) as tf.Tensor2D;
      }),
    save: (dir, training, labelNames) => saveHead2ToeAdapter(dir, model, backbone, { training: { ...training, lambdaRatio }, labelNames }),
    dispose: () => {
      model.dispose();
      extractor.dispose();
    },
  };
}

/**
 * Head2Toe: pooled taps from every block, extracted once per image (off the tape), a group-lasso
 * head to rank features, the top --keep fraction kept and a plain head refit on them. Solved
 * exactly by proximal gradient, so --lr and --wd do not apply; --lasso sets lambda / lambda_max.
 */
export function head2toeMethod(): Method {
  const extracted = new Map<string, ExtractedFeatures>();
  return {
    name: 'head2toe',
    async fit(context, _hp, split: VtabSplit) {
      const { options, backbone } = context;
      const extractor = new Head2ToeExtractor(backbone.model.config, { targetSize: options.targetSize, pooling: options.pooling });
      const key = `${split.taskDir}:${split.split}:${options.targetSize}:${extractor.pooling}`;
      if (!extracted.has(key)) {
        const started = performance.now();
        extracted.set(key, await extractor.extractAll(backbone.model, split.batches(context.train.batchSize, { shuffle: false })));
        context.log(`head2toe features ('${extractor.pooling}' pooling): ${split.size} images x ${extractor.width} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      }
      const lambda = options.lasso !== undefined ? { lambda: options.lasso } : { lambdaRatio: options.lassoRatio };
      const fit = fitHead2Toe(extracted.get(key)!, split.numClasses, { keep: options.keep, ...lambda });
      context.announce?.(fit.model.trainableVariables().reduce((n, v) => n + v.size, 0));
      context.log(`group lasso: ${fit.numNonzeroGroups} non-zero groups at lambda ${fit.lambda.toExponential(3)} (lambda_max ${fit.lambdaMax.toExponential(3)}); kept ${fit.model.numKept} of ${extractor.width}`);
      return trained(fit.model, extractor, backbone, fit.lambda / fit.lambdaMax);
    },
    open(dir, _adapter, backbone) {
      const { model, options } = loadHead2ToeAdapter(dir, { backboneSha256: backbone.sha256 });
      // Adapters written before 'pooling' existed load as 'adaptive' (options.pooling is filled in).
      return trained(model, new Head2ToeExtractor(backbone.model.config, { targetSize: options.targetSize, pooling: options.pooling }), backbone);
    },
  };
}
