export { untaped, isRecordingGradients } from './tape.js';
export { linear, isTrainable } from './linear.js';
export { gelu } from './gelu.js';
export { layerNorm, type LayerNormParams } from './layer-norm.js';
export { attendToFrozen } from './attend-frozen.js';
