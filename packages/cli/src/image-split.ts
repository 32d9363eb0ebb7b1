import type { ImageSplit } from '@vqt/core';
import type { VtabSplit } from '@vqt/vtab-datasets';

/** A task folder split as core's ImageSplit (what every method fits on). */
export function asImageSplit(split: VtabSplit & { labelNames?: readonly string[] }): ImageSplit {
  return {
    id: `${split.taskDir}:${split.split}`,
    size: split.size,
    numClasses: split.numClasses,
    imageSize: split.imageSize,
    ...(split.labelNames ? { labelNames: split.labelNames } : {}),
    batches: (batchSize, options) => split.batches(batchSize, options),
  };
}
