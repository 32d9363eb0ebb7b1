import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './io/atomic.js';
import { FileFormatError } from './io/errors.js';
import { readSafetensors, writeSafetensors } from './io/safetensors.js';
import type { HostTensor } from './io/types.js';
import type { VitConfig } from './vit/config.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/** adapter_config.json: everything needed to rebuild the method around the same frozen backbone. */
export interface AdapterConfig {
  /** 'vqt', 'head2toe', 'linear', ... */
  method: string;
  formatVersion: 1;
  backbone: {
    /** The checkpoint file's base name. */
    name: string;
    /** sha256 of the checkpoint file: loading refuses another backbone. */
    sha256: string;
    config: VitConfig;
  };
  numClasses: number;
  labelNames?: string[];
  /** Method options (query count, feature normalisation, kept feature indices, ...). */
  options: Record<string, unknown>;
  /** Free-form provenance: task, epochs, lr, accuracy. */
  training?: Record<string, unknown>;
}

/** An adapter directory's config and host tensors, as `loadAdapter` reads them. */
export interface Adapter {
  config: AdapterConfig;
  tensors: Map<string, HostTensor>;
}

/**
 * Saves only the trained tensors (PEFT's adapter-only format). Each file is written atomically,
 * weights first, so a crash never leaves a config pointing at missing or partial weights.
 */
export function saveAdapter(dir: string, config: AdapterConfig, tensors: Record<string, tf.Tensor | HostTensor>): void {
  mkdirSync(dir, { recursive: true });
  const host: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    host[name] = t instanceof tf.Tensor ? { shape: t.shape.slice(), data: Float32Array.from(t.dataSync()) } : t;
  }
  writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), host, { metadata: { format: 'vqt-ts-adapter', method: config.method } });
  writeFileAtomic(join(dir, ADAPTER_CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
}

/** Checks `loadAdapter` makes while reading. */
export interface LoadAdapterOptions {
  /** sha256 of the backbone checkpoint in use; a mismatch is an error. */
  backboneSha256?: string;
  /** Expected shapes by tensor name; a mismatch names the tensor. */
  expectShapes?: Record<string, number[]>;
}

/**
 * Reads an adapter directory without building a model (methods use it; users want `openFitted`).
 * Refuses a config that is not a vqt-ts adapter, another backbone when `backboneSha256` is given,
 * and tensors of unexpected shape, each with a one-line error naming the file.
 */
export function loadAdapter(dir: string, options: LoadAdapterOptions = {}): Adapter {
  const configFile = join(dir, ADAPTER_CONFIG_FILE);
  const weightsFile = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!existsSync(configFile)) throw new FileFormatError(configFile, 'missing: not an adapter directory');
  let config: AdapterConfig;
  try {
    config = JSON.parse(readFileSync(configFile, 'utf8')) as AdapterConfig;
  } catch (error) {
    throw new FileFormatError(configFile, `not valid JSON (${(error as Error).message})`);
  }
  if (config.formatVersion !== 1 || typeof config.method !== 'string' || !config.backbone?.sha256) {
    throw new FileFormatError(configFile, 'not a vqt-ts adapter config (needs formatVersion 1, method, backbone.sha256)');
  }
  if (options.backboneSha256 && options.backboneSha256 !== config.backbone.sha256) {
    throw new FileFormatError(
      configFile,
      `trained on backbone ${config.backbone.name} (sha256 ${config.backbone.sha256.slice(0, 12)}...), but the checkpoint given has sha256 ${options.backboneSha256.slice(0, 12)}...`,
    );
  }
  const { tensors } = readSafetensors(weightsFile);
  for (const [name, shape] of Object.entries(options.expectShapes ?? {})) {
    const t = tensors.get(name);
    if (!t) throw new FileFormatError(weightsFile, 'missing tensor', name);
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      throw new FileFormatError(weightsFile, `expected shape [${shape.join(', ')}], got [${t.shape.join(', ')}]`, name);
    }
  }
  return { config, tensors };
}
