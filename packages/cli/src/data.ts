import { openDataset, type Normalization, type VtabDataset, type VtabSplit, type VtabSplitName } from '@vqt/vtab-datasets';
import { resolve } from 'node:path';
import { UsageError } from './errors.js';
import { log } from './runtime.js';

const SPLITS: VtabSplitName[] = ['train800', 'val200', 'train800val200', 'test'];

export function parseSplit(name: string): VtabSplitName {
  if (!(SPLITS as string[]).includes(name)) throw new UsageError(`unknown split "${name}"; use one of ${SPLITS.join(', ')}`);
  return name as VtabSplitName;
}

const opened = new Map<string, Promise<VtabDataset>>();
const announced = new Set<VtabDataset>();

/**
 * A data folder of either layout (VTAB-1k lists or an image-folder tree), opened once per process.
 * `classes` (--classes) overrides the class count a folder outside the task registry gives, or
 * asserts the one it has.
 */
export function openData(dir: string, imageSize: number, normalization: Normalization, classes?: number): Promise<VtabDataset> {
  const key = JSON.stringify([resolve(dir), imageSize, normalization, classes]);
  if (!opened.has(key)) {
    opened.set(key, openDataset(dir, { imageSize, normalization, numClasses: classes, onWarning: (w) => process.stderr.write(`warning: ${w}\n`) }));
  }
  return opened.get(key)!;
}

/**
 * One split of a data folder (see openData), resized to the backbone's input size. The first split
 * opened logs which layout was found and where the classes come from (after it opened, so that a
 * bad folder fails with its one error line alone).
 */
export async function openTaskSplit(taskDir: string, split: VtabSplitName, imageSize: number, normalization: Normalization, classes?: number): Promise<VtabSplit> {
  const dataset = await openData(taskDir, imageSize, normalization, classes);
  const opened = await dataset.split(split);
  if (!announced.has(dataset)) {
    announced.add(dataset);
    log(`data ${dataset.dir}: ${dataset.description}`);
  }
  return opened;
}
