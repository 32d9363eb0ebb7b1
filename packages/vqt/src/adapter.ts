import * as tf from '@tensorflow/tfjs';
import { ADAPTER_WEIGHTS_FILE, FileFormatError, loadAdapter, saveAdapter, type AdapterConfig, type HostTensor, type LoadedVit } from '@vqt/core';
import { join } from 'node:path';
import type { FeatureNorm } from './config.js';
import { VqtModel } from './model.js';

export const VQT_METHOD = 'vqt';

/** adapter_config.json's `options` for VQT. */
export interface VqtAdapterOptions {
  queries: number;
  featureNorm: FeatureNorm;
  dropout: number;
  /** After group-lasso selection: the kept head-input features (head.weight is then [classes, kept]). */
  keptIndices?: number[];
}

/** The frozen backbone an adapter belongs to (core's LoadedVit has these fields). */
export interface BackboneRef {
  /** The checkpoint file's base name. */
  name: string;
  sha256: string;
}

export interface SaveVqtAdapterExtras {
  labelNames?: string[];
  /** Provenance: task, epochs, lr, accuracy. */
  training?: Record<string, unknown>;
}

/**
 * Writes a PEFT-style adapter directory: adapter_model.safetensors with `vqt.queries` [depth, T, D],
 * `head.weight` [classes, features] (torch's [out, in]) and `head.bias` [classes]; adapter_config.json
 * with method 'vqt', the backbone's sha256 and config, and {queries, featureNorm, dropout}.
 */
export function saveVqtAdapter(dir: string, model: VqtModel, backbone: BackboneRef, extras: SaveVqtAdapterExtras = {}): void {
  const { queries, featureNorm, dropout } = model.config;
  const options: VqtAdapterOptions = { queries, featureNorm, dropout, ...(model.keptIndices ? { keptIndices: Array.from(model.keptIndices) } : {}) };
  const config: AdapterConfig = {
    method: VQT_METHOD,
    formatVersion: 1,
    backbone: { name: backbone.name, sha256: backbone.sha256, config: model.vit.config },
    numClasses: model.numClasses,
    ...(extras.labelNames ? { labelNames: extras.labelNames } : {}),
    options: { ...options },
    ...(extras.training ? { training: extras.training } : {}),
  };
  const tensors = tf.tidy(() => ({
    'vqt.queries': model.hook.stackedQueries(),
    'head.weight': tf.transpose(model.headWeight),
    'head.bias': tf.clone(model.headBias),
  }));
  try {
    saveAdapter(dir, config, tensors);
  } finally {
    tf.dispose(Object.values(tensors));
  }
}

/**
 * Rebuilds a VqtModel around a loaded backbone (`loadVit`'s result) from an adapter directory. The
 * backbone's sha256 is always checked against the one the adapter was trained on, so another
 * checkpoint of the same shape is refused. Errors are one line and name the file.
 */
export function loadVqtAdapter(dir: string, backbone: Pick<LoadedVit, 'model' | 'sha256'>): { model: VqtModel; config: AdapterConfig } {
  if (typeof backbone?.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(backbone.sha256) || !backbone.model) {
    throw new TypeError(`loadVqtAdapter(${dir}): pass the backbone as loadVit() returns it ({ model, sha256, ... }), not a bare VisionTransformer: the adapter is checked against its sha256`);
  }
  const vit = backbone.model;
  const { config, tensors } = loadAdapter(dir, { backboneSha256: backbone.sha256 });
  const configFile = join(dir, 'adapter_config.json');
  const weightsFile = join(dir, ADAPTER_WEIGHTS_FILE);
  if (config.method !== VQT_METHOD) throw new FileFormatError(configFile, `method is '${config.method}', not '${VQT_METHOD}'`);
  const { depth, dim } = vit.config;
  const saved = config.backbone.config;
  if (saved.depth !== depth || saved.dim !== dim) {
    throw new FileFormatError(configFile, `made for a backbone of depth ${saved.depth}, dim ${saved.dim}; this one has depth ${depth}, dim ${dim}`);
  }
  const opts = config.options as Partial<VqtAdapterOptions>;
  let model: VqtModel;
  try {
    model = new VqtModel(vit, { numClasses: config.numClasses, queries: opts.queries, featureNorm: opts.featureNorm, dropout: opts.dropout });
  } catch (error) {
    throw new FileFormatError(configFile, (error as Error).message);
  }
  try {
    applyVqtTensors(model, tensors, weightsFile, opts.keptIndices);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { model, config };
}

/** Sets a fresh VqtModel's queries and head from adapter tensors (head after selection when keptIndices is given). */
export function applyVqtTensors(model: VqtModel, tensors: Map<string, HostTensor>, weightsFile: string, keptIndices?: readonly number[]): void {
  const { depth, dim } = model.vit.config;
  const queries = expectTensor(tensors, weightsFile, 'vqt.queries', [depth, model.hook.numQueries, dim]);
  const kept = keptIndices ? Int32Array.from(keptIndices) : undefined;
  const weight = expectTensor(tensors, weightsFile, 'head.weight', [model.numClasses, kept?.length ?? model.featureDim]);
  const bias = expectTensor(tensors, weightsFile, 'head.bias', [model.numClasses]);
  model.hook.setQueries(queries);
  if (kept) {
    const [w, b] = tf.tidy(() => [tf.transpose(tf.tensor2d(weight.data, weight.shape as [number, number])), tf.tensor1d(bias.data)]);
    try {
      model.applySelection(kept, w as tf.Tensor2D, b as tf.Tensor1D);
    } catch (error) {
      throw new FileFormatError(weightsFile, (error as Error).message, 'options.keptIndices');
    } finally {
      tf.dispose([w, b]);
    }
  } else {
    tf.tidy(() => {
      model.headWeight.assign(tf.transpose(tf.tensor2d(weight.data, weight.shape as [number, number])));
      model.headBias.assign(tf.tensor1d(bias.data));
    });
  }
}

function expectTensor(tensors: Map<string, HostTensor>, file: string, name: string, shape: number[]): HostTensor {
  const t = tensors.get(name);
  if (!t) throw new FileFormatError(file, 'missing tensor', name);
  if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
    throw new FileFormatError(file, `expected shape [${shape.join(', ')}], got [${t.shape.join(', ')}]`, name);
  }
  return t;
}
