import * as tf from '@tensorflow/tfjs';
import { predict, type Prediction } from '@vqt/core';
import { loadImageBatch, type Normalization } from '@vqt/vtab-datasets';
import { readdirSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { openAdapter } from './eval.js';

export interface PredictOptions {
  checkpoint: string;
  heads?: number;
  adapter: string;
  top: number;
  batch: number;
  json?: boolean;
  normalization?: Normalization;
  ignoreUnknown?: boolean;
}

export interface ImagePrediction extends Prediction {
  file: string;
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

/** Files named, files in named directories (recursively, sorted), and shell-unexpanded globs' matches. */
export function expandImageArguments(args: readonly string[]): string[] {
  const files: string[] = [];
  for (const arg of args) {
    if (/[*?[]/.test(arg)) {
      const matches = globImages(arg);
      if (matches.length === 0) throw new UsageError(`${arg}: no image matches`);
      files.push(...matches);
      continue;
    }
    let stats;
    try {
      stats = statSync(arg);
    } catch {
      throw new UsageError(`${arg}: no such file or directory`);
    }
    if (stats.isDirectory()) {
      const found = walk(arg).filter((f) => IMAGE_EXTENSIONS.has(extname(f).toLowerCase()));
      if (found.length === 0) throw new UsageError(`${arg}: no .png or .jpg images in this directory`);
      files.push(...found);
    } else {
      files.push(arg);
    }
  }
  return files;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => (entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)]));
}

function globImages(pattern: string): string[] {
  const absolute = resolve(pattern);
  const firstWild = absolute.search(/[*?[]/);
  const root = absolute.slice(0, absolute.lastIndexOf('/', firstWild)) || '/';
  const regex = new RegExp(
    `^${absolute
      .replace(/[.+^${}()|\\]/g, '\\$&')
      .replace(/\*\*\/?/g, '\u0000')
      .replace(/\*/g, '[^/]*')
      .replace(/\?/g, '[^/]')
      .replace(/\u0000/g, '(?:.*/)?')}$`,
  );
  return walk(root).filter((f) => regex.test(f));
}

/** vqt predict: top-k classes with probabilities for each image, with any method's adapter. */
export async function predictCommand(images: string[], options: PredictOptions): Promise<ImagePrediction[]> {
  const files = expandImageArguments(images);
  const opened = openAdapter(options.checkpoint, options.adapter, options.heads, undefined, options.ignoreUnknown);
  try {
    const { fitted, backbone, config } = opened;
    const recorded = (config.training?.normalization as Normalization | undefined) ?? 'imagenet';
    const results: ImagePrediction[] = [];
    for (let start = 0; start < files.length; start += options.batch) {
      const chunk = files.slice(start, start + options.batch);
      const { images: pixels, shape } = await loadImageBatch(chunk, { imageSize: backbone.model.config.imageSize, normalization: options.normalization ?? recorded });
      const batch = tf.tensor4d(pixels, shape);
      try {
        const predictions = await predict(fitted, batch, { topK: options.top, labelNames: config.labelNames });
        predictions.forEach((p, i) => results.push({ file: chunk[i], ...p }));
      } finally {
        batch.dispose();
      }
    }
    if (options.json) {
      process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    } else {
      const width = Math.max(5, ...results.map((r) => r.file.length));
      process.stdout.write(`${'image'.padEnd(width)}  rank  label                 probability\n`);
      for (const r of results) {
        r.top.forEach((t, k) => {
          process.stdout.write(`${(k === 0 ? r.file : '').padEnd(width)}  ${String(k + 1).padStart(4)}  ${t.label.padEnd(20).slice(0, 20)}  ${(100 * t.probability).toFixed(2).padStart(10)}%\n`);
        });
      }
    }
    return results;
  } finally {
    opened.dispose();
  }
}
