import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { FileFormatError, withFile } from './io/errors.js';
import { parseNpz } from './io/npz.js';
import { parseSafetensors } from './io/safetensors.js';
import type { HostTensor } from './io/types.js';
import { inferArchitecture, vitFromTensors, type ArchitectureInfo, type CheckpointFormat, type VitLoadOptions } from './vit/load.js';
import type { VisionTransformer } from './vit/vit.js';

export interface CheckpointContents {
  file: string;
  format: CheckpointFormat;
  tensors: Map<string, HostTensor>;
  /** sha256 of the file's bytes: adapters record it to refuse the wrong backbone. */
  sha256: string;
  bytes: number;
  /** safetensors __metadata__ (empty for npz). */
  metadata: Record<string, string>;
}

export interface LoadedVit {
  model: VisionTransformer;
  info: ArchitectureInfo;
  file: string;
  sha256: string;
  /** The name adapters record for the backbone: the file's base name. */
  name: string;
}

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];

/** Reads a timm .safetensors or a Google ViT .npz (detected from the bytes, not the name). */
export function readCheckpoint(file: string): CheckpointContents {
  const bytes = withFile(file, () => readFileSync(file));
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const isZip = ZIP_MAGIC.every((b, i) => bytes[i] === b);
  if (isZip) {
    const tensors = new Map<string, HostTensor>();
    for (const [name, array] of parseNpz(bytes, file)) {
      if (!(array.data instanceof Float32Array || array.data instanceof Float64Array)) {
        throw new FileFormatError(file, `expected a float array, got ${array.dtype}`, name);
      }
      tensors.set(name, { shape: array.shape, data: array.data instanceof Float32Array ? array.data : Float32Array.from(array.data) });
    }
    return { file, format: 'npz', tensors, sha256, bytes: bytes.length, metadata: {} };
  }
  const parsed = parseSafetensors(bytes, file);
  return { file, format: 'safetensors', tensors: parsed.tensors, sha256, bytes: bytes.length, metadata: parsed.metadata };
}

/** Head count recorded in a safetensors' metadata (our own and some exported files have it). */
function recordedHeads(contents: CheckpointContents): number | undefined {
  const heads = Number(contents.metadata.num_heads);
  return Number.isInteger(heads) && heads > 0 ? heads : undefined;
}

export function inspectCheckpoint(file: string, options: VitLoadOptions = {}): ArchitectureInfo & { sha256: string; bytes: number; tensorCount: number; parameterCount: number } {
  const contents = readCheckpoint(file);
  const info = inferArchitecture(contents.tensors, file, contents.format, { heads: recordedHeads(contents), ...stripUndefined(options) });
  let parameterCount = 0;
  for (const t of contents.tensors.values()) parameterCount += t.data.length;
  return { ...info, sha256: contents.sha256, bytes: contents.bytes, tensorCount: contents.tensors.size, parameterCount };
}

/** Loads a ViT from a checkpoint file; architecture from tensor shapes, heads from options (default dim/64). */
export function loadVit(file: string, options: VitLoadOptions = {}): LoadedVit {
  const contents = readCheckpoint(file);
  const resolved = { heads: recordedHeads(contents), ...stripUndefined(options) };
  const info = inferArchitecture(contents.tensors, file, contents.format, resolved);
  const model = vitFromTensors(contents.tensors, file, contents.format, resolved);
  return { model, info, file, sha256: contents.sha256, name: basename(file) };
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
