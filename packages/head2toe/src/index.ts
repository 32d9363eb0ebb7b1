export {
  DEFAULT_TARGET_SIZE,
  DEFAULT_KEEP,
  DEFAULT_LAMBDA_RATIO,
  DEFAULT_HEAD2TOE_OPTIONS,
  resolveHead2ToeOptions,
  type Head2ToeOptions,
} from './config.js';
export { tokenGroups, adaptivePoolRange, poolingMatrix, poolingMatrixValues, poolTokens, l2NormalizeRows, BATCHED_POOLING_MAX_GROUPS } from './pooling.js';
export {
  featureLayout,
  geometryOf,
  layoutWidth,
  BLOCK_TAP_POINTS,
  HEAD2TOE_TAP_POINTS,
  type TapLayout,
  type TapGeometry,
  type BlockTapPoint,
} from './taps.js';
export { Head2ToeTapHook } from './tap-hook.js';
export {
  Head2ToeExtractor,
  selectColumns,
  type ImageBatch,
  type ImageSource,
  type ExtractedFeatures,
  type ExtractAllOptions,
  type ExtractorOptions,
} from './extractor.js';
export { Head2ToeModel, scorePredictions, type Head2ToeSpec } from './model.js';
export { fitHead2Toe, type FitHead2ToeOptions, type Head2ToeFit } from './fit.js';
export {
  saveHead2ToeAdapter,
  loadHead2ToeAdapter,
  HEAD2TOE_METHOD,
  type BackboneRef,
  type Head2ToeAdapterOptions,
  type SaveHead2ToeOptions,
  type LoadedHead2Toe,
} from './adapter.js';
export { saveExtractedFeatures, loadExtractedFeatures } from './cache.js';
export { head2toeMethod, createHead2ToeMethod, type Head2ToeMethodConfig } from './method.js';
