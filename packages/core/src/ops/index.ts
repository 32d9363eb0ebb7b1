export { untaped, isRecordingGradients } from './tape.js';
export { linear, isTrainable } from './linear.js';
export { gelu, quickGelu } from './gelu.js';
export { layerNorm, type LayerNormParams } from './layer-norm.js';
export { attendToFrozen } from './attend-frozen.js';
