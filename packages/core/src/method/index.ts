export * from './spec.js';
export { registerMethod, getMethod, hasMethod, registeredMethods, resolveMethodConfig, parseOptionValue } from './registry.js';
export { methodSpec, methodParts, stackSpec, resolveAnyConfig, type StackConfig } from './stack.js';
export { saveFitted, openFitted, type SaveFittedExtras } from './adapter-io.js';
export {
  HookedClassifier,
  adaptingFitted,
  evaluateFitted,
  fitHookedClassifier,
  frozenHook,
  imageSplitSource,
  openHookedClassifier,
  predict,
  type AdaptingFittedParts,
  type DisposableHook,
  type ImageBatch,
  type Prediction,
} from './hooked.js';
export { linearMethod, createLinearMethod, clsFeatures, type LinearConfig } from './linear.js';
export { resolveAdaptedBlocks, validateBlockSelection, type BlockSelection } from './blocks.js';
export { fitMethod, arrayImageSplit, type FitMethodOptions } from './fit.js';
export { fullMethod, createFullMethod, type FullConfig } from './full.js';
