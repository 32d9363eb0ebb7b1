import { registerMethod } from '@vqt/core';
import { loraMethod } from './method.js';

export { LORA_DEFAULTS, LORA_OPTIONS, LORA_TARGETS, validateLoraConfig, type LoraConfig } from './config.js';
export { linearShapes, LORA_PREFIX, LoraHook, loraTensorNames, type LinearShapes, type LoraHookOptions, type LoraPair } from './hook.js';
export { loraMethod, type FittedLora } from './method.js';

// Importing the package makes `--method lora` and its adapter files available.
registerMethod(loraMethod);
