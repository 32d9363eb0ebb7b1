export {
  DEFAULT_TARGET_SIZE,
  DEFAULT_KEEP,
  DEFAULT_LAMBDA_RATIO,
  DEFAULT_HEAD2TOE_OPTIONS,
  DEFAULT_POOLING,
  LEGACY_POOLING,
  HEAD2TOE_POOLINGS,
  resolveHead2ToeOptions,
  validatePooling,
  type Head2ToeOptions,
  type Head2ToePooling,
} from './config.js';
export {
  tokenGroups,
  adaptivePoolRange,
  adaptivePoolRanges,
  officialPoolSize,
  officialTokenGroups,
  officialPoolRanges,
  poolingMatrix,
  poolingMatrixValues,
  tokenPoolingFor,
  poolTokens,
  l2NormalizeRows,
  unitNormalizeRows,
  BATCHED_POOLING_MAX_GROUPS,
  type TokenRange,
  type TokenPooling,
} from './pooling.js';
export {
  featureLayout,
  geometryOf,
  layoutWidth,
  tapTokenRanges,
  isTokenTap,
  BLOCK_TAP_POINTS,
  HEAD2TOE_TAP_POINTS,
  ADAPTIVE_TAP_POINTS,
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
  type SavedTapLayout,
  type SaveHead2ToeOptions,
  type LoadedHead2Toe,
} from './adapter.js';
export { saveExtractedFeatures, loadExtractedFeatures } from './cache.js';
export { head2toeMethod, createHead2ToeMethod, type Head2ToeMethodConfig } from './method.js';
