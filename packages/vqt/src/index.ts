export { DEFAULT_VQT_CONFIG, defaultInitRange, resolveVqtConfig, type FeatureNorm, type SpillDtype, type VqtConfig } from './config.js';
export { VqtHook, type VqtHookShape } from './hook.js';
export { assembleFeatures, featureDim, l2NormalizeRows } from './features.js';
export { VqtModel, isCachedBatch, type StepInfo, type VqtBatch, type VqtCachedBatch, type VqtImageBatch, type VqtModelOptions } from './model.js';
export { FeatureCache, DEFAULT_CACHE_BUDGET_BYTES, type FeatureCacheOptions } from './cache.js';
export { RowStore, type RowStoreOptions } from './cache-store.js';
export { ImageArraySource, splitImageSource, type HostImageBatch, type HostImageBatches, type HostImageSplit } from './sources.js';
export {
  VQT_METHOD,
  applyVqtTensors,
  loadVqtAdapter,
  saveVqtAdapter,
  type BackboneRef,
  type SaveVqtAdapterExtras,
  type VqtAdapterOptions,
} from './adapter.js';
export { freshVariableName } from './variables.js';
export { selectHeadFeatures, type VqtSelectionOptions, type VqtSelectionResult } from './selection.js';
export { vqtMethod, createVqtMethod, VQT_DEFAULTS, type VqtMethodConfig } from './method.js';
