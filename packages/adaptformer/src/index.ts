import { registerMethod } from '@vqt/core';
import { adaptformerMethod } from './method.js';

export { ADAPTFORMER_DEFAULTS, ADAPTFORMER_OPTIONS, validateAdaptFormerConfig, type AdaptFormerConfig } from './config.js';
export { ADAPTFORMER_PREFIX, AdaptFormerHook, adapterTensorNames, type AdapterModule, type AdaptFormerHookOptions } from './hook.js';
export { adaptformerMethod, type FittedAdaptFormer } from './method.js';

// Importing the package makes `--method adaptformer` and its adapter files available.
registerMethod(adaptformerMethod);
