import { registerMethod } from '@vqt/core';
import { vptMethod, vptShallowMethod } from './method.js';

export {
  DEFAULT_VPT_CONFIG,
  DEFAULT_VPT_SHALLOW_CONFIG,
  defaultInitRange,
  promptLayout,
  resolveVptConfig,
  validateVptConfig,
  type PromptLayout,
  type VptConfig,
} from './config.js';
export { VptHook, type VptHookShape } from './hook.js';
export { VPT_PROMPTS_TENSOR, openVpt, vptFromTensors, vptMethod, vptShallowMethod } from './method.js';

// Importing the package makes `vpt` and `vpt-shallow` available to the CLI, saveFitted and openFitted.
registerMethod(vptMethod);
registerMethod(vptShallowMethod);
