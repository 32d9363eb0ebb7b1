import * as tf from '@tensorflow/tfjs';
import { ADAPTER_CONFIG_FILE, loadAdapter, saveAdapter, type AdapterConfig, type LoadedVit, type VitConfig } from '@vqt/core';
import { join } from 'node:path';
import { LEGACY_POOLING, validatePooling, type Head2ToePooling } from './config.js';
import { featureLayout, geometryOf, layoutWidth, type TapLayout } from './taps.js';
import { Head2ToeModel } from './model.js';

export const HEAD2TOE_METHOD = 'head2toe';

/** The backbone an adapter belongs to: a LoadedVit, or its name, sha256 and config. */
export type BackboneRef = Pick<LoadedVit, 'name' | 'sha256' | 'model'> | { name: string; sha256: string; config: VitConfig };

/** Which columns of the feature vector came from which tap (saved in the adapter config). */
export interface SavedTapLayout {
  name: string;
  offset: number;
  width: number;
  channels: number;
  groups: number;
  /** Official pooling only: tokens per group, 0 = the token mean. */
  poolSize?: number;
}

/** adapter_config.json options of a Head2Toe adapter. */
export interface Head2ToeAdapterOptions {
  /** Absent in adapters written before it existed; those load as 'adaptive'. */
  pooling?: Head2ToePooling;
  targetSize: number;
  keep: number;
  lambda?: number;
  lambdaRatio?: number;
  /** Ascending indices into the full feature vector (width featureWidth). */
  keptIndices: number[];
  featureWidth: number;
  /** Absent in adapters written before 'pooling' existed. */
  featureLayout?: SavedTapLayout[];
}

export interface SaveHead2ToeOptions {
  labelNames?: string[];
  /** Free-form provenance (task, accuracy, ...). */
  training?: Record<string, unknown>;
}

/**
 * Writes adapter_config.json (method 'head2toe', options above) and adapter_model.safetensors with
 * head.weight [classes, kept] (torch's [out, in]) and head.bias [classes].
 */
export function saveHead2ToeAdapter(dir: string, model: Head2ToeModel, backbone: BackboneRef, options: SaveHead2ToeOptions = {}): void {
  const config = backboneConfig(backbone);
  const layout = featureLayout(geometryOf(config), model.spec.targetSize, model.spec.pooling);
  const expectedWidth = layoutWidth(layout);
  if (expectedWidth !== model.spec.featureWidth) {
    throw new Error(
      `head2toe: the model's feature width ${model.spec.featureWidth} does not fit this backbone (${expectedWidth} with '${model.spec.pooling}' pooling at target size ${model.spec.targetSize})`,
    );
  }
  const { spec } = model;
  const adapterOptions: Head2ToeAdapterOptions = {
    pooling: spec.pooling,
    targetSize: spec.targetSize,
    keep: spec.keep,
    ...(spec.lambda !== undefined ? { lambda: spec.lambda } : {}),
    ...(spec.lambdaRatio !== undefined ? { lambdaRatio: spec.lambdaRatio } : {}),
    keptIndices: Array.from(spec.keptIndices),
    featureWidth: spec.featureWidth,
    featureLayout: layout.map(savedTapLayout),
  };
  const adapterConfig: AdapterConfig = {
    method: HEAD2TOE_METHOD,
    formatVersion: 1,
    backbone: { name: backbone.name, sha256: backbone.sha256, config },
    numClasses: spec.numClasses,
    ...(options.labelNames ? { labelNames: options.labelNames } : {}),
    options: adapterOptions as unknown as Record<string, unknown>,
    ...(options.training ? { training: options.training } : {}),
  };
  const tensors = tf.tidy(() => model.head.exportTensors());
  try {
    saveAdapter(dir, adapterConfig, tensors);
  } finally {
    tf.dispose(Object.values(tensors));
  }
}

export interface LoadedHead2Toe {
  model: Head2ToeModel;
  config: AdapterConfig;
  /** As saved, with `pooling` filled in ('adaptive' for adapters written before it existed). */
  options: Head2ToeAdapterOptions & { pooling: Head2ToePooling };
  /** The feature layout the model's kept indices refer to. */
  layout: TapLayout[];
}

/** Reads a Head2Toe adapter; give backboneSha256 to refuse an adapter trained on another backbone. */
export function loadHead2ToeAdapter(dir: string, options: { backboneSha256?: string } = {}): LoadedHead2Toe {
  const peek = loadAdapter(dir, options);
  if (peek.config.method !== HEAD2TOE_METHOD) throw new Error(`head2toe: ${dir} holds a '${peek.config.method}' adapter, not '${HEAD2TOE_METHOD}'`);
  const saved = peek.config.options as unknown as Head2ToeAdapterOptions;
  if (!Array.isArray(saved.keptIndices) || typeof saved.targetSize !== 'number' || typeof saved.featureWidth !== 'number') {
    throw new Error(`head2toe: ${dir}: adapter options need targetSize, featureWidth and keptIndices`);
  }
  const configFile = join(dir, ADAPTER_CONFIG_FILE);
  const { model, layout, pooling } = head2toeModelFromOptions(configFile, saved, peek.config.backbone.config, peek.config.numClasses);
  const classes = peek.config.numClasses;
  const kept = saved.keptIndices.length;
  // Re-read with the expected shapes so a mismatch names the tensor.
  const { tensors } = loadAdapter(dir, { ...options, expectShapes: { 'head.weight': [classes, kept], 'head.bias': [classes] } });
  model.head.importTensors(tensors.get('head.weight')!, tensors.get('head.bias')!);
  return { model, config: peek.config, options: { ...saved, pooling }, layout };
}

/**
 * A Head2Toe model (head not yet set) from saved adapter options, checked against the backbone: the
 * pooling (absent in adapters older than it: 'adaptive'), the feature width and the saved layout.
 */
export function head2toeModelFromOptions(
  configFile: string,
  saved: Head2ToeAdapterOptions,
  backbone: VitConfig,
  numClasses: number,
): { model: Head2ToeModel; layout: TapLayout[]; pooling: Head2ToePooling } {
  const legacy = saved.pooling === undefined;
  const pooling = saved.pooling ?? LEGACY_POOLING;
  validatePooling(pooling, `head2toe: ${configFile}`);
  const layout = featureLayout(geometryOf(backbone), saved.targetSize, pooling);
  const expectedWidth = layoutWidth(layout);
  if (expectedWidth !== saved.featureWidth) {
    throw new Error(
      legacy
        ? `head2toe: ${configFile} was written by an older version (no 'pooling', read as 'adaptive'), and its featureWidth ${saved.featureWidth} does not match that layout's ${expectedWidth} at target size ${saved.targetSize}`
        : `head2toe: ${configFile}: featureWidth ${saved.featureWidth} does not match the backbone's ${expectedWidth} with '${pooling}' pooling at target size ${saved.targetSize}`,
    );
  }
  if (saved.featureLayout !== undefined) checkSavedLayout(configFile, saved.featureLayout, layout, pooling);
  const model = new Head2ToeModel({
    targetSize: saved.targetSize,
    pooling,
    featureWidth: saved.featureWidth,
    keptIndices: Int32Array.from(saved.keptIndices),
    numClasses,
    keep: saved.keep,
    ...(saved.lambda !== undefined ? { lambda: saved.lambda } : {}),
    ...(saved.lambdaRatio !== undefined ? { lambdaRatio: saved.lambdaRatio } : {}),
  });
  return { model, layout, pooling };
}

export function savedTapLayout(entry: TapLayout): SavedTapLayout {
  const { name, offset, width, channels, groups, poolSize } = entry;
  return { name, offset, width, channels, groups, ...(poolSize !== undefined ? { poolSize } : {}) };
}

/** A saved layout must be the one this version computes: the kept indices point into it. */
function checkSavedLayout(configFile: string, saved: unknown, expected: readonly TapLayout[], pooling: Head2ToePooling): void {
  if (!Array.isArray(saved)) throw new Error(`head2toe: ${configFile}: featureLayout is not a list`);
  const want = expected.map(savedTapLayout);
  const n = Math.max(saved.length, want.length);
  for (let i = 0; i < n; i++) {
    const got = saved[i] as SavedTapLayout | undefined;
    const exp = want[i];
    const same = got && exp && got.name === exp.name && got.offset === exp.offset && got.width === exp.width && got.groups === exp.groups && got.poolSize === exp.poolSize;
    if (!same) {
      const show = (t?: SavedTapLayout) => (t ? `${t.name} [${t.offset}, ${t.offset + t.width})` : 'nothing');
      throw new Error(`head2toe: ${configFile}: saved feature layout has ${show(got)} at tap ${i}, '${pooling}' pooling here gives ${show(exp)}`);
    }
  }
}

function backboneConfig(backbone: BackboneRef): VitConfig {
  return 'model' in backbone ? backbone.model.config : backbone.config;
}
