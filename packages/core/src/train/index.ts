export type * from './types.js';
export { trainModel, evaluateModel, sliceBatch } from './trainer.js';
export { warmupCosineLr } from './schedule.js';
export { createOptimizer, setLearningRate } from './optimizer.js';
export { seededRandom, mixSeed, epochOrder } from './rng.js';
export { runVtabProtocol, REFERENCE_GRID, type HyperParameters, type ProtocolSteps, type ProtocolResult } from './protocol.js';
export { createProgress, type ProgressReporter } from './progress.js';
export { LinearHead, LinearProbe, FeatureDataSource, type FeatureBatch } from './linear-head.js';
