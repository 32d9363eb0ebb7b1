import { readNpy, writeFileAtomic, writeNpy } from '@vqt/core';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LEGACY_POOLING, validatePooling, type Head2ToePooling } from './config.js';
import type { ExtractedFeatures } from './extractor.js';

const FEATURES_FILE = 'features.npy';
const LABELS_FILE = 'labels.npy';
const META_FILE = 'features.json';

interface CacheMeta {
  format: 'head2toe-features';
  targetSize: number;
  /** Absent in caches written before it existed: those are 'adaptive'. */
  pooling?: Head2ToePooling;
  count: number;
  width: number;
  columns?: number[];
  /** sha256 of the backbone checkpoint the features came from, when given. */
  backboneSha256?: string;
}

/**
 * Writes cached features to a folder (features.npy [N, W] float32, labels.npy [N] int32, features.json),
 * so a hyper-parameter search or a later run need not run the backbone again.
 */
export function saveExtractedFeatures(dir: string, extracted: ExtractedFeatures, options: { backboneSha256?: string } = {}): void {
  mkdirSync(dir, { recursive: true });
  writeNpy(join(dir, FEATURES_FILE), { shape: [extracted.count, extracted.width], data: extracted.features });
  writeNpy(join(dir, LABELS_FILE), { shape: [extracted.count], data: extracted.labels });
  const meta: CacheMeta = {
    format: 'head2toe-features',
    targetSize: extracted.targetSize,
    pooling: extracted.pooling,
    count: extracted.count,
    width: extracted.width,
    ...(extracted.columns ? { columns: Array.from(extracted.columns) } : {}),
    ...(options.backboneSha256 ? { backboneSha256: options.backboneSha256 } : {}),
  };
  // Written last: a folder with features.json is complete.
  writeFileAtomic(join(dir, META_FILE), `${JSON.stringify(meta)}\n`);
}

/**
 * Reads features written by saveExtractedFeatures; refuses a cache of another target size, pooling or
 * backbone when told which. A cache written before 'pooling' existed reads as 'adaptive'.
 */
export function loadExtractedFeatures(dir: string, expect: { targetSize?: number; pooling?: Head2ToePooling; backboneSha256?: string } = {}): ExtractedFeatures {
  const metaFile = join(dir, META_FILE);
  if (!existsSync(metaFile)) throw new Error(`head2toe: ${dir} holds no complete feature cache (${META_FILE} missing)`);
  const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as CacheMeta;
  if (meta.format !== 'head2toe-features') throw new Error(`head2toe: ${metaFile} is not a head2toe feature cache`);
  if (expect.targetSize !== undefined && expect.targetSize !== meta.targetSize) {
    throw new Error(`head2toe: ${dir} was extracted with target size ${meta.targetSize}, not ${expect.targetSize}`);
  }
  const pooling = meta.pooling ?? LEGACY_POOLING;
  validatePooling(pooling, `head2toe: ${metaFile}`);
  if (expect.pooling !== undefined && expect.pooling !== pooling) {
    throw new Error(
      `head2toe: ${dir} was extracted with '${pooling}' pooling${meta.pooling === undefined ? ' (written by an older version, before the official pooling)' : ''}, not '${expect.pooling}'`,
    );
  }
  if (expect.backboneSha256 && meta.backboneSha256 !== expect.backboneSha256) {
    throw new Error(`head2toe: ${dir} was extracted from another backbone (sha256 ${meta.backboneSha256?.slice(0, 12) ?? 'unknown'}...)`);
  }
  const features = readNpy(join(dir, FEATURES_FILE));
  const labels = readNpy(join(dir, LABELS_FILE));
  if (!(features.data instanceof Float32Array) || features.shape.join() !== [meta.count, meta.width].join()) {
    throw new Error(`head2toe: ${join(dir, FEATURES_FILE)}: expected float32 [${meta.count}, ${meta.width}], got ${features.dtype} [${features.shape}]`);
  }
  if (!(labels.data instanceof Int32Array) || labels.shape.join() !== String(meta.count)) {
    throw new Error(`head2toe: ${join(dir, LABELS_FILE)}: expected int32 [${meta.count}], got ${labels.dtype} [${labels.shape}]`);
  }
  return {
    features: features.data,
    labels: labels.data,
    count: meta.count,
    width: meta.width,
    targetSize: meta.targetSize,
    pooling,
    ...(meta.columns ? { columns: Int32Array.from(meta.columns) } : {}),
  };
}
