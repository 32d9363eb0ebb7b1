import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { FileFormatError, withFile } from './io/errors.js';
import { parseNpz } from './io/npz.js';
import { parseSafetensors } from './io/safetensors.js';
import type { HostTensor } from './io/types.js';
import { inferArchitecture, vitFromTensors, type ArchitectureInfo, type CheckpointFormat, type VitLoadOptions } from './vit/load.js';
import { hintsFromTimmConfig, knownArchitecture, type ArchitectureHints } from './vit/timm-archs.js';
import type { VisionTransformer } from './vit/vit.js';

export interface CheckpointContents {
  /** The weights file (inside the folder when a timm hub folder was given). */
  file: string;
  format: CheckpointFormat;
  tensors: Map<string, HostTensor>;
  /** sha256 of the weights file's bytes: adapters record it to refuse the wrong backbone. */
  sha256: string;
  bytes: number;
  /** safetensors __metadata__ (empty for npz). */
  metadata: Record<string, string>;
  /** What a timm config.json beside the weights says (hub folders only). */
  hints?: ArchitectureHints;
  /** The config.json read, if any. */
  configFile?: string;
}

export interface LoadedVit {
  model: VisionTransformer;
  info: ArchitectureInfo;
  file: string;
  sha256: string;
  /** The name adapters record for the backbone: the file's (or the hub folder's) base name. */
  name: string;
}

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];

/** The weights file names a timm / Hugging Face hub folder may hold, and what this loader makes of them. */
const HUB_WEIGHTS = 'model.safetensors';
const HUB_PICKLES = ['pytorch_model.bin', 'open_clip_pytorch_model.bin', 'model.pth'];

function startsWith(bytes: Uint8Array, magic: readonly number[], offset = 0): boolean {
  return bytes.length >= offset + magic.length && magic.every((b, i) => bytes[offset + i] === b);
}

const ascii = (text: string) => [...text].map((c) => c.charCodeAt(0));

/**
 * What a file that is not a checkpoint looks like, from its first bytes (undefined when it looks like
 * neither anything known nor not-a-safetensors: then the parser's own message is the better one).
 */
export function sniffNonCheckpoint(bytes: Uint8Array): string | undefined {
  const known: [number[], string, number?][] = [
    [[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG image'],
    [[0xff, 0xd8, 0xff], 'a JPEG image'],
    [ascii('GIF8'), 'a GIF image'],
    [ascii('RIFF'), 'a RIFF file (WebP image or WAV audio)'],
    [ascii('%PDF'), 'a PDF document'],
    [[0x1f, 0x8b], 'a gzip archive (unpack it first)'],
    [[0x89, 0x48, 0x44, 0x46], 'an HDF5 file (Keras .h5): convert the weights to safetensors'],
    [[0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59], 'a single .npy array, not an .npz of named weights'],
    [[0x80], 'a Python pickle (PyTorch .pth/.bin): save it as safetensors (safetensors.torch.save_file)'],
  ];
  for (const [magic, what] of known) if (startsWith(bytes, magic)) return what;
  const head = new TextDecoder().decode(bytes.subarray(0, 64)).trimStart();
  if (head.startsWith('{') || head.startsWith('[')) return 'a JSON file (a config.json? give the folder that holds model.safetensors)';
  if (head.startsWith('version https://git-lfs')) return 'a Git LFS pointer, not the weights (git lfs pull)';
  if (/^<(!doctype|html)/i.test(head)) return 'an HTML page (a failed download?)';
  return undefined;
}

/** Member names of a zip, from its central directory, without inflating anything. */
function zipMemberNames(bytes: Uint8Array): string[] | undefined {
  try {
    return [...parseNpzNames(bytes)];
  } catch {
    return undefined;
  }
}

function parseNpzNames(bytes: Uint8Array): string[] {
  // End of central directory: signature 0x06054b50 within the last 64 KiB + 22 bytes.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let eocd = bytes.length - 22; eocd >= Math.max(0, bytes.length - 65557); eocd--) {
    if (view.getUint32(eocd, true) !== 0x06054b50) continue;
    const count = view.getUint16(eocd + 10, true);
    let at = view.getUint32(eocd + 16, true);
    const names: string[] = [];
    for (let i = 0; i < count && at + 46 <= bytes.length; i++) {
      if (view.getUint32(at, true) !== 0x02014b50) break;
      const nameLength = view.getUint16(at + 28, true);
      const extra = view.getUint16(at + 30, true);
      const comment = view.getUint16(at + 32, true);
      names.push(new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLength)));
      at += 46 + nameLength + extra + comment;
    }
    return names;
  }
  throw new Error('no central directory');
}

function describeZip(bytes: Uint8Array): string | undefined {
  const names = zipMemberNames(bytes);
  if (!names) return undefined;
  if (names.some((n) => n.endsWith('.npy'))) return undefined;
  if (names.some((n) => n.endsWith('data.pkl'))) return 'a PyTorch zip checkpoint (torch.save): save it as safetensors (safetensors.torch.save_file)';
  return `a zip archive without .npy members (${names.slice(0, 3).join(', ') || 'empty'}), not an .npz`;
}

/**
 * Reads a timm .safetensors or a Google ViT .npz (detected from the bytes, not the name), or a timm
 * hub folder (model.safetensors, with config.json beside it for what the tensors do not tell).
 */
export function readCheckpoint(path: string): CheckpointContents {
  const isFolder = withFile(path, () => statSync(path).isDirectory());
  if (isFolder) return readHubFolder(path);
  const file = path;
  const bytes = withFile(file, () => readFileSync(file));
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (startsWith(bytes, ZIP_MAGIC)) {
    const notNpz = describeZip(bytes);
    if (notNpz) throw new FileFormatError(file, `not a checkpoint: this is ${notNpz}`);
    const tensors = new Map<string, HostTensor>();
    for (const [name, array] of parseNpz(bytes, file)) {
      if (!(array.data instanceof Float32Array || array.data instanceof Float64Array)) {
        throw new FileFormatError(file, `expected a float array, got ${array.dtype}`, name);
      }
      tensors.set(name, { shape: array.shape, data: array.data instanceof Float32Array ? array.data : Float32Array.from(array.data) });
    }
    return { file, format: 'npz', tensors, sha256, bytes: bytes.length, metadata: {} };
  }
  const looksLike = sniffNonCheckpoint(bytes);
  if (looksLike) throw new FileFormatError(file, `not a checkpoint (timm .safetensors or Google ViT .npz): this is ${looksLike}`);
  const parsed = parseSafetensors(bytes, file);
  return { file, format: 'safetensors', tensors: parsed.tensors, sha256, bytes: bytes.length, metadata: parsed.metadata };
}

function readHubFolder(dir: string): CheckpointContents {
  const weights = join(dir, HUB_WEIGHTS);
  if (!existsSync(weights)) {
    const pickle = HUB_PICKLES.find((name) => existsSync(join(dir, name)));
    const reason = pickle
      ? `has ${pickle} (a Python pickle) but no ${HUB_WEIGHTS}; download the safetensors weights or convert them`
      : `no ${HUB_WEIGHTS} in this folder (a timm hub folder holds ${HUB_WEIGHTS} and config.json)`;
    throw new FileFormatError(dir, reason);
  }
  const contents = readCheckpoint(weights);
  const configFile = join(dir, 'config.json');
  if (!existsSync(configFile)) return contents;
  const text = withFile(configFile, () => readFileSync(configFile, 'utf8'));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new FileFormatError(configFile, `invalid JSON (${(error as Error).message})`);
  }
  let hints: ArchitectureHints;
  try {
    hints = hintsFromTimmConfig(json, configFile);
  } catch (error) {
    throw new FileFormatError(configFile, (error as Error).message.replace(`${configFile}: `, ''));
  }
  return { ...contents, hints, configFile };
}

/** Head count recorded in a safetensors' metadata (our own and some exported files have it). */
function recordedHeads(contents: CheckpointContents): number | undefined {
  const heads = Number(contents.metadata.num_heads);
  return Number.isInteger(heads) && heads > 0 ? heads : undefined;
}

/** Options for the weights of `contents`: explicit options first, then the file's metadata, then config.json. */
function resolvedOptions(contents: CheckpointContents, options: VitLoadOptions): { resolved: VitLoadOptions; headsFromMetadata: boolean } {
  const given = stripUndefined(options);
  let named: ArchitectureHints | undefined;
  if (given.architecture !== undefined) {
    named = knownArchitecture(given.architecture);
    if (!named) throw new FileFormatError(contents.file, `unknown timm architecture "${given.architecture}" (known: vit_{tiny,small,base,large,huge}_patch*_{224,384,...} with _clip_ / _clip_quickgelu_, vit_*_patch14[_reg4]_dinov2, deit3_*)`);
  }
  const hints = { ...(contents.hints ?? {}), ...(named ?? {}), ...(given.hints ?? {}) };
  const metadataHeads = recordedHeads(contents);
  const headsFromMetadata = metadataHeads !== undefined && given.heads === undefined;
  return { resolved: { ...given, hints, ...(headsFromMetadata ? { heads: metadataHeads } : {}) }, headsFromMetadata };
}

function architectureOf(contents: CheckpointContents, options: VitLoadOptions): ArchitectureInfo {
  const { resolved, headsFromMetadata } = resolvedOptions(contents, options);
  const info = inferArchitecture(contents.tensors, contents.file, contents.format, resolved);
  return headsFromMetadata && info.headsSource === 'option' ? { ...info, headsSource: 'metadata' } : info;
}

export type CheckpointSummary = ArchitectureInfo & { sha256: string; bytes: number; tensorCount: number; parameterCount: number; file: string; configFile?: string };

export function inspectCheckpoint(path: string, options: VitLoadOptions = {}): CheckpointSummary {
  const contents = readCheckpoint(path);
  const info = architectureOf(contents, options);
  let parameterCount = 0;
  for (const t of contents.tensors.values()) parameterCount += t.data.length;
  return { ...info, sha256: contents.sha256, bytes: contents.bytes, tensorCount: contents.tensors.size, parameterCount, file: contents.file, configFile: contents.configFile };
}

/**
 * Loads a ViT from a checkpoint file or a timm hub folder. Strict: a file with tensors the loader does
 * not use is refused (one line naming them) unless options.ignoreUnknown; the classifier head is read
 * and left unused.
 */
export function loadVit(path: string, options: VitLoadOptions = {}): LoadedVit {
  const contents = readCheckpoint(path);
  const model = vitFromTensors(contents.tensors, contents.file, contents.format, resolvedOptions(contents, options).resolved);
  const info = architectureOf(contents, options);
  return { model, info, file: contents.file, sha256: contents.sha256, name: basename(path) };
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
