export * from './errors.js';
export * from './types.js';
export * from './atomic.js';
export * from './safetensors.js';
export * from './npy.js';
export * from './npz.js';
