import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, loadAdapter, saveAdapter, type AdapterConfig } from '../adapter.js';
import type { LoadedVit } from '../checkpoint.js';
import { FileFormatError } from '../io/errors.js';
import { hasMethod } from './registry.js';
import { methodParts, methodSpec, resolveAnyConfig } from './stack.js';
import { DEFAULT_RUNTIME, type FittedMethod, type RuntimeConfig } from './spec.js';

/** Optional extras `saveFitted` records in adapter_config.json. */
export interface SaveFittedExtras {
  labelNames?: readonly string[];
  /** Provenance: task, epochs, lr, accuracy. */
  training?: Record<string, unknown>;
}

/**
 * Writes any fitted method (or stack) as a PEFT-style adapter directory, atomically:
 * adapter_model.safetensors (only the trained tensors) and adapter_config.json (method, options,
 * numClasses, label names, and the backbone's name, sha256 and config). Reopen it with `openFitted`.
 */
export function saveFitted(dir: string, fitted: FittedMethod, backbone: LoadedVit, extras: SaveFittedExtras = {}): void {
  const config: AdapterConfig = {
    method: fitted.method,
    formatVersion: 1,
    backbone: { name: backbone.name, sha256: backbone.sha256, config: backbone.model.config },
    numClasses: fitted.numClasses,
    ...(extras.labelNames ? { labelNames: [...extras.labelNames] } : {}),
    options: fitted.options(),
    ...(extras.training ? { training: extras.training } : {}),
  };
  const tensors = fitted.exportTensors();
  try {
    saveAdapter(dir, config, tensors);
  } finally {
    tf.dispose(Object.values(tensors));
  }
}

/**
 * Opens any adapter directory around its backbone, through the method registry. The backbone's
 * sha256 is always checked; a method that is not registered, an unknown option or tensor, and a
 * stack whose base is missing are one-line errors naming the file.
 */
export function openFitted(dir: string, backbone: LoadedVit, runtime: RuntimeConfig = DEFAULT_RUNTIME): { fitted: FittedMethod; config: AdapterConfig } {
  const configFile = join(dir, ADAPTER_CONFIG_FILE);
  const weightsFile = join(dir, ADAPTER_WEIGHTS_FILE);
  const adapter = loadAdapter(dir, { backboneSha256: backbone.sha256 });
  const { config } = adapter;
  const missing = config.method.split('+').filter((part) => !hasMethod(part));
  if (missing.length) {
    throw new FileFormatError(configFile, `method "${config.method}" needs ${missing.map((m) => `"${m}"`).join(', ')}, which is not installed (register its package)`);
  }
  const saved = config.backbone.config;
  const { depth, dim } = backbone.model.config;
  if (saved.depth !== depth || saved.dim !== dim) {
    throw new FileFormatError(configFile, `made for a backbone of depth ${saved.depth}, dim ${saved.dim}; this one has depth ${depth}, dim ${dim}`);
  }
  const spec = methodSpec(config.method);
  let options: object;
  try {
    options = resolveAnyConfig(spec, config.options ?? {}, configFile);
  } catch (error) {
    throw new FileFormatError(configFile, (error as Error).message.replace(`${configFile}: `, ''));
  }
  const prefixes = methodParts(config.method).map((p) => p.prefix);
  const unknown = [...adapter.tensors.keys()].filter((key) => !key.startsWith('head.') && !prefixes.some((p) => key.startsWith(p)));
  if (unknown.length) throw new FileFormatError(weightsFile, `tensors no part of "${config.method}" owns: ${unknown.slice(0, 5).join(', ')}`);
  try {
    const fitted = spec.open(options, adapter.tensors, { backbone, runtime, numClasses: config.numClasses, file: weightsFile });
    return { fitted, config };
  } catch (error) {
    if (error instanceof FileFormatError) throw error;
    throw new FileFormatError(weightsFile, (error as Error).message);
  }
}
