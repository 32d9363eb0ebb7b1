import { evaluateFitted, loadAdapter, loadVit, openFitted, writeFileAtomic, type AdapterConfig, type FittedMethod, type LoadedVit } from '@vqt/core';
import type { Normalization } from '@vqt/vtab-datasets';
import { join } from 'node:path';
import { openTaskSplit, parseSplit } from '../data.js';
import { UsageError } from '../errors.js';
import { asImageSplit } from '../image-split.js';
import { runtimeFromFlags } from '../methods.js';
import { log } from '../runtime.js';

export interface OpenedAdapter {
  backbone: LoadedVit;
  fitted: FittedMethod;
  config: AdapterConfig;
  dispose(): void;
}

/** Loads the backbone and the adapter trained on it (heads default to the adapter's record; the sha256 must match). */
export function openAdapter(checkpoint: string, adapterDir: string, heads?: number, imageSize?: number, ignoreUnknown?: boolean): OpenedAdapter {
  // What no tensor tells (heads, activation, eps, pooling) as the adapter recorded it.
  const recorded = loadAdapter(adapterDir).config.backbone.config;
  const backbone = loadVit(checkpoint, { heads: heads ?? recorded.heads, imageSize, ignoreUnknown, eps: recorded.eps, activation: recorded.activation, globalPool: recorded.globalPool });
  try {
    const { fitted, config } = openFitted(adapterDir, backbone, runtimeFromFlags({}));
    return {
      backbone,
      fitted,
      config,
      dispose: () => {
        fitted.dispose();
        backbone.model.dispose();
      },
    };
  } catch (error) {
    backbone.model.dispose();
    throw error;
  }
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
  ignoreUnknown?: boolean;
}

export async function evalCommand(options: EvalCommandOptions): Promise<{ top1: number; correct: number; count: number }> {
  const opened = openAdapter(options.checkpoint, options.adapter, options.heads, undefined, options.ignoreUnknown);
  try {
    const { fitted, backbone } = opened;
    const split = await openTaskSplit(options.data, parseSplit(options.split), backbone.model.config.imageSize, options.normalization, options.classes ?? fitted.numClasses);
    if (split.numClasses !== fitted.numClasses) {
      throw new UsageError(`${options.data}: the task has ${split.numClasses} classes, the adapter ${fitted.numClasses}`);
    }
    // Same count, other classes (a renamed or replaced class folder) would be scored with a shifted mapping.
    const trained = opened.config.labelNames;
    if (trained && split.labelNames && trained.some((name, i) => name !== split.labelNames![i])) {
      const i = trained.findIndex((name, k) => name !== split.labelNames![k]);
      throw new UsageError(`${options.data}: class ${i} is "${split.labelNames[i]}" here but "${trained[i]}" in the adapter ${options.adapter}`);
    }
    const { top1, correct, count } = await evaluateFitted(fitted, asImageSplit(split), options.batch);
    const result = { method: fitted.method, task: split.task, split: options.split, top1, correct, count, adapter: options.adapter, backbone: backbone.name };
    const file = options.json ?? join(options.adapter, `eval_${options.split}.json`);
    writeFileAtomic(file, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${options.split} top-1: ${(100 * top1).toFixed(2)}% (${correct}/${count})\n`);
    log(`wrote ${file}`);
    return { top1, correct, count };
  } finally {
    opened.dispose();
  }
}
