export {
  VtabDataError,
  UnknownTaskError,
  SplitFileMissingError,
  ListLineError,
  LabelOutOfRangeError,
  ImageMissingError,
  ImageDecodeError,
  DatasetLayoutError,
} from './errors.js';
export {
  VTAB_1K_TASKS,
  VTAB_1K_TASK_NAMES,
  MINI_SUITE_TASKS,
  MINI_SUITE_TASK_NAMES,
  getTask,
  getMiniTask,
  isKnownTask,
  type TaskGroup,
  type TaskSpec,
  type MiniTaskSpec,
} from './registry.js';
export { VTAB_SPLITS, parseSplitList, readSplitList, type VtabSplitName, type ListEntry } from './list.js';
export { decodeImage, sniffImageFormat, type RgbImage, type ImageFormat } from './decode.js';
export {
  IMAGENET_MEAN,
  IMAGENET_STD,
  DEFAULT_IMAGE_SIZE,
  bilinearTaps,
  preprocessImage,
  preprocessInto,
  resolvePreprocess,
  type Normalization,
  type PreprocessOptions,
  type PreprocessParams,
  type Rgb,
} from './preprocess.js';
export {
  openSplit,
  classCountWarnings,
  readLabelNames,
  LABELS_FILE,
  type ClassCountSource,
  type DatasetLayout,
  type OpenSplitOptions,
  type BatchOptions,
  type VtabBatch,
  type VtabSplit,
} from './loader.js';
export {
  openDataset,
  detectLayout,
  HELD_OUT_FRACTION,
  HELD_OUT_SEED,
  type OpenDatasetOptions,
  type VtabDataset,
} from './dataset.js';
export {
  loadImageBatch,
  resolveImageSize,
  type BackboneLike,
  type BackboneSizeOptions,
  type ImageBatch,
  type ImageBatchOptions,
} from './image-batch.js';
export { Rng, deriveSeed, seededPermutation } from './rng.js';
export {
  generateMiniSuite,
  isCompleteTask,
  MINI_SUITE_VERSION,
  type GenerateOptions,
  type GeneratedTask,
} from './suite/generate.js';
export { defaultSuiteDir, ensureMiniSuite, type EnsureMiniSuiteOptions } from './suite/cache.js';
export { MINI_SUITE_COUNTS, STORED_SPLITS, type SplitCounts, type StoredSplit } from './suite/task.js';
export { runCli } from './cli-run.js';
export { embeddedBackbone, EMBEDDED_BACKBONE_FILE } from './backbone.js';
