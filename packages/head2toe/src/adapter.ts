import * as tf from '@tensorflow/tfjs';
import { loadAdapter, saveAdapter, type AdapterConfig, type LoadedVit, type VitConfig } from '@vqt/core';
import { featureLayout, geometryOf, layoutWidth } from './taps.js';
import { Head2ToeModel } from './model.js';

export const HEAD2TOE_METHOD = 'head2toe';

/** The backbone an adapter belongs to: a LoadedVit, or its name, sha256 and config. */
export type BackboneRef = Pick<LoadedVit, 'name' | 'sha256' | 'model'> | { name: string; sha256: string; config: VitConfig };

/** adapter_config.json options of a Head2Toe adapter. */
export interface Head2ToeAdapterOptions {
  targetSize: number;
  keep: number;
  lambda?: number;
  lambdaRatio?: number;
  /** Ascending indices into the full feature vector (width featureWidth). */
  keptIndices: number[];
  featureWidth: number;
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
  const expectedWidth = layoutWidth(featureLayout(geometryOf(config), model.spec.targetSize));
  if (expectedWidth !== model.spec.featureWidth) {
    throw new Error(`head2toe: the model's feature width ${model.spec.featureWidth} does not fit this backbone (${expectedWidth} at target size ${model.spec.targetSize})`);
  }
  const { spec } = model;
  const adapterOptions: Head2ToeAdapterOptions = {
    targetSize: spec.targetSize,
    keep: spec.keep,
    ...(spec.lambda !== undefined ? { lambda: spec.lambda } : {}),
    ...(spec.lambdaRatio !== undefined ? { lambdaRatio: spec.lambdaRatio } : {}),
    keptIndices: Array.from(spec.keptIndices),
    featureWidth: spec.featureWidth,
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
  options: Head2ToeAdapterOptions;
}

/** Reads a Head2Toe adapter; give backboneSha256 to refuse an adapter trained on another backbone. */
export function loadHead2ToeAdapter(dir: string, options: { backboneSha256?: string } = {}): LoadedHead2Toe {
  const peek = loadAdapter(dir, options);
  if (peek.config.method !== HEAD2TOE_METHOD) throw new Error(`head2toe: ${dir} holds a '${peek.config.method}' adapter, not '${HEAD2TOE_METHOD}'`);
  const saved = peek.config.options as unknown as Head2ToeAdapterOptions;
  if (!Array.isArray(saved.keptIndices) || typeof saved.targetSize !== 'number' || typeof saved.featureWidth !== 'number') {
    throw new Error(`head2toe: ${dir}: adapter options need targetSize, featureWidth and keptIndices`);
  }
  const expectedWidth = layoutWidth(featureLayout(geometryOf(peek.config.backbone.config), saved.targetSize));
  if (expectedWidth !== saved.featureWidth) {
    throw new Error(`head2toe: ${dir}: featureWidth ${saved.featureWidth} does not match the backbone's ${expectedWidth} at target size ${saved.targetSize}`);
  }
  const classes = peek.config.numClasses;
  const kept = saved.keptIndices.length;
  // Re-read with the expected shapes so a mismatch names the tensor.
  const { tensors } = loadAdapter(dir, { ...options, expectShapes: { 'head.weight': [classes, kept], 'head.bias': [classes] } });
  const model = new Head2ToeModel({
    targetSize: saved.targetSize,
    featureWidth: saved.featureWidth,
    keptIndices: Int32Array.from(saved.keptIndices),
    numClasses: classes,
    keep: saved.keep,
    ...(saved.lambda !== undefined ? { lambda: saved.lambda } : {}),
    ...(saved.lambdaRatio !== undefined ? { lambdaRatio: saved.lambdaRatio } : {}),
  });
  model.head.importTensors(tensors.get('head.weight')!, tensors.get('head.bias')!);
  return { model, config: peek.config, options: saved };
}

function backboneConfig(backbone: BackboneRef): VitConfig {
  return 'model' in backbone ? backbone.model.config : backbone.config;
}
