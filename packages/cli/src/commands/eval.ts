import { loadAdapter, loadVit, writeFileAtomic, type LoadedVit } from '@vqt/core';
import type { Normalization } from '@vqt/vtab-datasets';
import { join } from 'node:path';
import { openTaskSplit, parseSplit } from '../data.js';
import { UsageError } from '../errors.js';
import { createMethod, type TrainedMethod } from '../methods/index.js';
import { log } from '../runtime.js';

/** Loads the backbone and the adapter trained on it (heads default to the adapter's record). */
export function openAdapter(checkpoint: string, adapterDir: string, heads?: number, imageSize?: number): { backbone: LoadedVit; trained: TrainedMethod } {
  const adapter = loadAdapter(adapterDir);
  const backbone = loadVit(checkpoint, { heads: heads ?? adapter.config.backbone.config.heads, imageSize });
  if (backbone.sha256 !== adapter.config.backbone.sha256) {
    backbone.model.dispose();
    throw new UsageError(
      `${join(adapterDir, 'adapter_config.json')}: trained on backbone ${adapter.config.backbone.name} (sha256 ${adapter.config.backbone.sha256.slice(0, 12)}...), but ${checkpoint} has sha256 ${backbone.sha256.slice(0, 12)}...`,
    );
  }
  return { backbone, trained: createMethod(adapter.config.method).open(adapterDir, adapter, backbone) };
}

export interface EvalCommandOptions {
  checkpoint: string;
  heads?: number;
  adapter: string;
  data: string;
  /** --classes; default the adapter's class count. */
  classes?: number;
  split: string;
  batch: number;
  json?: string;
  normalization: Normalization;
}

export async function evalCommand(options: EvalCommandOptions): Promise<{ top1: number; correct: number; count: number }> {
  const { backbone, trained } = openAdapter(options.checkpoint, options.adapter, options.heads);
  const split = await openTaskSplit(options.data, parseSplit(options.split), backbone.model.config.imageSize, options.normalization, options.classes ?? trained.numClasses);
  if (split.numClasses !== trained.numClasses) {
    throw new UsageError(`${options.data}: the task has ${split.numClasses} classes, the adapter ${trained.numClasses}`);
  }
  const { top1, correct, count } = await trained.evaluate(split, options.batch);
  const result = { method: trained.method, task: split.task, split: options.split, top1, correct, count, adapter: options.adapter, backbone: backbone.name };
  const file = options.json ?? join(options.adapter, `eval_${options.split}.json`);
  writeFileAtomic(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${options.split} top-1: ${(100 * top1).toFixed(2)}% (${correct}/${count})\n`);
  log(`wrote ${file}`);
  trained.dispose();
  backbone.model.dispose();
  return { top1, correct, count };
}
