import { openSplit, type Normalization, type VtabSplit, type VtabSplitName } from '@vqt/vtab-datasets';
import { UsageError } from './errors.js';

const SPLITS: VtabSplitName[] = ['train800', 'val200', 'train800val200', 'test'];

export function parseSplit(name: string): VtabSplitName {
  if (!(SPLITS as string[]).includes(name)) throw new UsageError(`unknown split "${name}"; use one of ${SPLITS.join(', ')}`);
  return name as VtabSplitName;
}

/** A VTAB-1k task folder split, resized to the backbone's input size. */
export function openTaskSplit(taskDir: string, split: VtabSplitName, imageSize: number, normalization: Normalization): Promise<VtabSplit> {
  return openSplit(taskDir, split, { imageSize, normalization, onWarning: (w) => process.stderr.write(`warning: ${w}\n`) });
}
