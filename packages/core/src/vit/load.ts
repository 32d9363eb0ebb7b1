import * as tf from '@tensorflow/tfjs';
import { FileFormatError } from '../io/errors.js';
import type { HostTensor } from '../io/types.js';
import { describeVariant, posEmbedRows, prefixTokens, type Activation, type GlobalPool, type VitConfig } from './config.js';
import type { VitParams } from './params.js';
import { resamplePosEmbed } from './resample.js';
import type { ArchitectureHints } from './timm-archs.js';
import { VisionTransformer } from './vit.js';

export type CheckpointFormat = 'safetensors' | 'npz';

export interface VitLoadOptions {
  /**
   * Attention heads. Tensor shapes tell them only for Google npz files and qk-norm models; otherwise
   * they come from (first found) this option, the safetensors metadata `num_heads`, a timm config.json
   * beside the weights, or default to dim / 64.
   */
  heads?: number;
  /** Run at this image size; the position embedding is resampled when it differs from the checkpoint's. */
  imageSize?: number;
  /**
   * Load a file that has tensors this loader does not use, with a warning naming them. Default false:
   * such a file is refused, since ignoring weights gives wrong features that look fine. (The
   * classifier head, `head.*` / `head/*`, is always allowed: it is read, reported and unused.)
   */
  ignoreUnknown?: boolean;
  /** Where warnings go (default console.warn). */
  onWarning?: (message: string) => void;
  /** What no tensor tells (eps, activation, pooling, ...): from a timm config.json, or given by hand. Options win over them. */
  hints?: Partial<ArchitectureHints>;
  /**
   * A timm architecture name (e.g. 'vit_base_patch16_clip_quickgelu_224') for a bare weights file:
   * its known heads, eps, activation and layout, as a hub folder's config.json would give them.
   */
  architecture?: string;
  /** Override single variant fields no tensor tells. */
  eps?: number;
  activation?: Activation;
  globalPool?: GlobalPool;
  /** Only needed when the position embedding's row count fits a grid both with and without the CLS/register rows. */
  noEmbedClass?: boolean;
}

export type HeadsSource = 'option' | 'metadata' | 'config.json' | 'qk-norm' | 'npz' | 'default';

export interface ArchitectureInfo {
  format: CheckpointFormat;
  config: VitConfig;
  /** The image size the checkpoint was trained at (its position embedding's grid). */
  checkpointImageSize: number;
  hasHead: boolean;
  headClasses?: number;
  /** Where `config.heads` came from; 'default' means dim / 64, a guess. */
  headsSource: HeadsSource;
  /** One line: the variant fields that differ from the original ViT. */
  variant: string;
  /** timm architecture name from a config.json, if there was one. */
  architecture?: string;
  /** Tensors read and deliberately unused: the classifier head. */
  unusedTensors: string[];
  /** Tensors this loader does not know (a load refuses them unless ignoreUnknown). */
  unknownTensors: string[];
  notes: string[];
}

type Tensors = Map<string, HostTensor>;

/** Names of the classifier head: read and reported, never used by the methods. */
const HEAD_PATTERNS = { safetensors: /^(head\.|pre_logits\.)/, npz: /^(head\/|pre_logits\/)/ };

/** Reads tensors by name with shape checks; every error names the file and the tensor. Records what it read. */
class TensorReader {
  readonly used = new Set<string>();

  constructor(
    readonly file: string,
    readonly tensors: Tensors,
  ) {}

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  get(name: string, shape?: readonly (number | undefined)[]): HostTensor {
    const t = this.tensors.get(name);
    if (!t) throw new FileFormatError(this.file, `missing tensor`, name);
    if (shape) {
      const ok = t.shape.length === shape.length && shape.every((s, i) => s === undefined || s === t.shape[i]);
      if (!ok) {
        const want = shape.map((s) => s ?? '?').join(', ');
        throw new FileFormatError(this.file, `expected shape [${want}], got [${t.shape.join(', ')}]`, name);
      }
    }
    this.used.add(name);
    return t;
  }
}

/** tfjs backends may read a typed array's whole buffer: hand them arrays that own theirs. */
function owned(data: Float32Array): Float32Array {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
}

function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

const isSquare = (n: number) => n >= 1 && Math.round(Math.sqrt(n)) ** 2 === n;

/** Architecture from tensor names and shapes (timm or Google npz names), hints and options. */
export function inferArchitecture(tensors: Tensors, file: string, format: CheckpointFormat, options: VitLoadOptions = {}): ArchitectureInfo {
  const r = new TensorReader(file, tensors);
  const hints = options.hints ?? {};
  const timm = format === 'safetensors';
  const patch = timm ? r.get('patch_embed.proj.weight', [undefined, 3, undefined, undefined]) : r.get('embedding/kernel', [undefined, undefined, 3, undefined]);
  const dim = timm ? patch.shape[0] : patch.shape[3];
  const patchSize = timm ? patch.shape[2] : patch.shape[0];
  if (timm && !r.has('cls_token')) throw new FileFormatError(file, 'ViTs without a class token are not supported', 'cls_token');

  const registerTokens = timm && r.has('reg_token') ? r.get('reg_token', [1, undefined, dim]).shape[1] : 0;
  const preNorm = timm && r.has('norm_pre.weight');
  const layerScale = timm && r.has('blocks.0.ls1.gamma');
  const qkNorm = timm && r.has('blocks.0.attn.q_norm.weight');
  const fcNorm = timm && r.has('fc_norm.weight');
  const globalPool: GlobalPool = options.globalPool ?? hints.globalPool ?? (fcNorm ? 'avg' : 'token');

  const posName = timm ? 'pos_embed' : 'Transformer/posembed_input/pos_embedding';
  const rows = r.get(posName, [1, undefined, dim]).shape[1];
  const prefix = prefixTokens({ registerTokens });
  let noEmbedClass: boolean;
  const givenNoEmbedClass = options.noEmbedClass ?? hints.noEmbedClass;
  if (givenNoEmbedClass !== undefined) noEmbedClass = givenNoEmbedClass;
  else if (isSquare(rows) && isSquare(rows - prefix)) {
    throw new FileFormatError(file, `${rows} rows fit a grid both with and without the ${prefix} prefix token(s); give noEmbedClass (a timm config.json beside the weights does)`, posName);
  } else noEmbedClass = timm && isSquare(rows);
  const patchRows = noEmbedClass ? rows : rows - prefix;
  if (!isSquare(patchRows)) throw new FileFormatError(file, `${patchRows} patch positions do not form a square grid`, posName);
  const grid = Math.round(Math.sqrt(patchRows));

  let depth = 0;
  while (r.has(timm ? `blocks.${depth}.norm1.weight` : `Transformer/encoderblock_${depth}/LayerNorm_0/scale`)) depth++;
  if (depth === 0) throw new FileFormatError(file, 'no transformer blocks found', timm ? 'blocks.0.norm1.weight' : 'Transformer/encoderblock_0/LayerNorm_0/scale');
  const fc1 = timm ? r.get('blocks.0.mlp.fc1.weight', [undefined, dim]) : r.get('Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel', [dim, undefined]);
  const hidden = timm ? fc1.shape[0] : fc1.shape[1];

  let heads: number;
  let headsSource: HeadsSource;
  const contradicts = (known: number, source: string, tensor: string) => {
    if (options.heads !== undefined && options.heads !== known) throw new FileFormatError(file, `--heads ${options.heads} contradicts the ${known} heads ${source}`, tensor);
  };
  if (!timm) {
    const qName = 'Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel';
    heads = r.get(qName, [dim, undefined, undefined]).shape[1];
    contradicts(heads, 'of the checkpoint', qName);
    headsSource = 'npz';
  } else if (qkNorm) {
    const headDim = r.get('blocks.0.attn.q_norm.weight', [undefined]).shape[0];
    if (dim % headDim !== 0) throw new FileFormatError(file, `head width ${headDim} does not divide the embedding width ${dim}`, 'blocks.0.attn.q_norm.weight');
    heads = dim / headDim;
    contradicts(heads, 'its q_norm width tells', 'blocks.0.attn.q_norm.weight');
    headsSource = 'qk-norm';
  } else if (options.heads !== undefined) {
    heads = options.heads;
    headsSource = 'option';
  } else if (hints.heads !== undefined) {
    heads = hints.heads;
    headsSource = 'config.json';
  } else {
    heads = Math.max(1, Math.round(dim / 64));
    headsSource = 'default';
  }
  if (dim % heads !== 0) throw new FileFormatError(file, `${heads} heads do not divide the embedding width ${dim}`);

  const headName = timm ? 'head.weight' : 'head/kernel';
  const head = tensors.get(headName);
  const headClasses = head ? (timm ? head.shape[0] : head.shape[1]) : undefined;
  const checkpointImageSize = grid * patchSize;
  const config: VitConfig = {
    imageSize: options.imageSize ?? checkpointImageSize,
    patchSize,
    dim,
    depth,
    heads,
    mlpRatio: hidden / dim,
    // timm builds every pre-norm ViT it ships (the CLIP family) with LayerNorm eps 1e-5, the others with 1e-6.
    eps: options.eps ?? hints.eps ?? (preNorm ? 1e-5 : 1e-6),
  };
  const notes = [...(hints.notes ?? [])];
  if (preNorm && options.eps === undefined && hints.eps === undefined) notes.push('pre-norm (CLIP) without a config.json: LayerNorm eps 1e-5 and GELU assumed, as timm builds its CLIP ViTs');
  // Variant fields only when they differ from the original ViT: a standard checkpoint's config stays as it was.
  const activation = options.activation ?? hints.activation ?? 'gelu';
  if (preNorm) config.preNorm = true;
  if (layerScale) config.layerScale = true;
  if (registerTokens) config.registerTokens = registerTokens;
  if (qkNorm) config.qkNorm = true;
  if (globalPool !== 'token') config.globalPool = globalPool;
  if (fcNorm !== (globalPool === 'avg')) config.fcNorm = fcNorm;
  if (activation !== 'gelu') config.activation = activation;
  if (noEmbedClass) config.noEmbedClass = true;

  const headPattern = HEAD_PATTERNS[format];
  const names = [...tensors.keys()];
  const unusedTensors = names.filter((n) => headPattern.test(n));
  const known = new Set(expectedTensorNames(config, format, tensors));
  const unknownTensors = names.filter((n) => !known.has(n) && !headPattern.test(n));
  return {
    format,
    config,
    checkpointImageSize,
    hasHead: head !== undefined && headClasses! > 0,
    headClasses,
    headsSource,
    variant: describeVariant(config),
    architecture: hints.architecture,
    unusedTensors,
    unknownTensors,
    notes,
  };
}

/** Every tensor name the loader reads for this config (optional biases only where the file has them). */
function expectedTensorNames(config: VitConfig, format: CheckpointFormat, tensors: Tensors): string[] {
  if (format === 'npz') {
    const names = ['embedding/kernel', 'embedding/bias', 'cls', 'Transformer/posembed_input/pos_embedding', 'Transformer/encoder_norm/scale', 'Transformer/encoder_norm/bias'];
    for (let i = 0; i < config.depth; i++) {
      const b = `Transformer/encoderblock_${i}`;
      const attn = `${b}/MultiHeadDotProductAttention_1`;
      for (const ln of ['LayerNorm_0', 'LayerNorm_2']) names.push(`${b}/${ln}/scale`, `${b}/${ln}/bias`);
      for (const part of ['query', 'key', 'value', 'out']) names.push(`${attn}/${part}/kernel`, `${attn}/${part}/bias`);
      for (const dense of ['Dense_0', 'Dense_1']) names.push(`${b}/MlpBlock_3/${dense}/kernel`, `${b}/MlpBlock_3/${dense}/bias`);
    }
    return names;
  }
  const ln = (prefix: string) => [`${prefix}.weight`, `${prefix}.bias`];
  const names = ['patch_embed.proj.weight', 'cls_token', 'pos_embed'];
  if (tensors.has('patch_embed.proj.bias')) names.push('patch_embed.proj.bias');
  if (config.registerTokens) names.push('reg_token');
  if (config.preNorm) names.push(...ln('norm_pre'));
  if (tensors.has('fc_norm.weight')) names.push(...ln('fc_norm'));
  else names.push(...ln('norm'));
  for (let i = 0; i < config.depth; i++) {
    const b = `blocks.${i}`;
    names.push(...ln(`${b}.norm1`), ...ln(`${b}.norm2`), ...ln(`${b}.attn.qkv`), ...ln(`${b}.attn.proj`), ...ln(`${b}.mlp.fc1`), ...ln(`${b}.mlp.fc2`));
    if (config.layerScale) names.push(`${b}.ls1.gamma`, `${b}.ls2.gamma`);
    if (config.qkNorm) names.push(...ln(`${b}.attn.q_norm`), ...ln(`${b}.attn.k_norm`));
  }
  return names;
}

/** One line naming the first few unknown tensors and how many there are. */
export function unknownTensorsMessage(unknown: readonly string[]): string {
  const shown = unknown.slice(0, 4).join(', ');
  const more = unknown.length > 4 ? `, ... (${unknown.length} in all)` : '';
  return `${unknown.length} tensor${unknown.length === 1 ? '' : 's'} this loader does not use: ${shown}${more}`;
}

/** Builds the model from named host tensors in either naming scheme; refuses unknown tensors unless options.ignoreUnknown. */
export function vitFromTensors(tensors: Tensors, file: string, format: CheckpointFormat, options: VitLoadOptions = {}): VisionTransformer {
  const info = inferArchitecture(tensors, file, format, options);
  if (info.unknownTensors.length > 0) {
    const message = unknownTensorsMessage(info.unknownTensors);
    if (!options.ignoreUnknown) throw new FileFormatError(file, `${message}; a different architecture? (--ignore-unknown / ignoreUnknown: true loads it anyway)`);
    (options.onWarning ?? console.warn)(`warning: ${file}: ignoring ${message}`);
  }
  const { config } = info;
  const { dim, patchSize: p, depth } = config;
  const hidden = Math.round(config.mlpRatio * dim);
  if (config.imageSize % p !== 0) throw new FileFormatError(file, `image size ${config.imageSize} is not a multiple of the patch size ${p}`);
  const r = new TensorReader(file, tensors);
  const created: tf.Tensor[] = [];
  const make = <T extends tf.Tensor>(t: T): T => {
    created.push(t);
    return t;
  };
  const vec = (name: string, size: number) => make(tf.tensor1d(owned(r.get(name, [size]).data)));
  const vecReshaped = (name: string, shape: number[], size: number) => make(tf.tensor1d(r.get(name, shape).data.slice(0, size)));
  const layerNorm = (prefix: string, size = dim, sep = '.', names = ['weight', 'bias']) => ({ weight: vec(`${prefix}${sep}${names[0]}`, size), bias: vec(`${prefix}${sep}${names[1]}`, size) });
  /** torch Linear [out, in] -> [in, out] */
  const torchLinear = (prefix: string, out: number, inp: number) => ({
    weight: make(tf.tensor2d(transpose2d(r.get(`${prefix}.weight`, [out, inp]).data, out, inp), [inp, out])),
    bias: vec(`${prefix}.bias`, out),
  });
  const flaxLinear = (prefix: string, kernelShape: number[], inp: number, out: number, biasShape: number[]) => ({
    weight: make(tf.tensor2d(owned(r.get(`${prefix}/kernel`, kernelShape).data), [inp, out])),
    bias: vecReshaped(`${prefix}/bias`, biasShape, out),
  });

  try {
    let patchWeight: Float32Array;
    let patchBias: tf.Tensor1D | undefined;
    let cls: Float32Array;
    let pos: Float32Array;
    const params: Omit<VitParams, 'patchEmbed' | 'clsToken' | 'posEmbed'> = { blocks: [] };
    const prefix = prefixTokens(config);
    if (format === 'safetensors') {
      // [D, 3, p, p] -> rows ordered (channel, row, col) -> [3 p^2, D]
      patchWeight = transpose2d(r.get('patch_embed.proj.weight', [dim, 3, p, p]).data, dim, 3 * p * p);
      patchBias = r.has('patch_embed.proj.bias') ? vec('patch_embed.proj.bias', dim) : undefined;
      cls = r.get('cls_token', [1, 1, dim]).data;
      pos = r.get('pos_embed', [1, undefined, dim]).data;
      if (config.registerTokens) params.regTokens = make(tf.tensor2d(owned(r.get('reg_token', [1, config.registerTokens, dim]).data), [config.registerTokens, dim]));
      if (config.preNorm) params.normPre = layerNorm('norm_pre');
      const headDim = dim / config.heads;
      for (let i = 0; i < depth; i++) {
        const b = `blocks.${i}`;
        const qkvW = r.get(`${b}.attn.qkv.weight`, [3 * dim, dim]).data;
        const qkvB = r.get(`${b}.attn.qkv.bias`, [3 * dim]).data;
        const part = (k: number) => ({
          weight: make(tf.tensor2d(transpose2d(qkvW.subarray(k * dim * dim, (k + 1) * dim * dim), dim, dim), [dim, dim])),
          bias: make(tf.tensor1d(qkvB.slice(k * dim, (k + 1) * dim))),
        });
        params.blocks.push({
          norm1: layerNorm(`${b}.norm1`),
          q: part(0),
          k: part(1),
          v: part(2),
          proj: torchLinear(`${b}.attn.proj`, dim, dim),
          ...(config.qkNorm ? { qNorm: layerNorm(`${b}.attn.q_norm`, headDim), kNorm: layerNorm(`${b}.attn.k_norm`, headDim) } : {}),
          ...(config.layerScale ? { ls1: vec(`${b}.ls1.gamma`, dim), ls2: vec(`${b}.ls2.gamma`, dim) } : {}),
          norm2: layerNorm(`${b}.norm2`),
          fc1: torchLinear(`${b}.mlp.fc1`, hidden, dim),
          fc2: torchLinear(`${b}.mlp.fc2`, dim, hidden),
        });
      }
      if (r.has('fc_norm.weight')) params.fcNorm = layerNorm('fc_norm');
      else params.norm = layerNorm('norm');
      if (info.hasHead) params.head = torchLinear('head', info.headClasses!, dim);
    } else {
      // HWIO [p, p, 3, D] -> [3, p, p, D]
      const kernel = r.get('embedding/kernel', [p, p, 3, dim]).data;
      patchWeight = new Float32Array(kernel.length);
      for (let i = 0; i < p; i++)
        for (let j = 0; j < p; j++)
          for (let c = 0; c < 3; c++)
            patchWeight.set(kernel.subarray(((i * p + j) * 3 + c) * dim, ((i * p + j) * 3 + c + 1) * dim), ((c * p + i) * p + j) * dim);
      patchBias = vec('embedding/bias', dim);
      cls = r.get('cls', [1, 1, dim]).data;
      pos = r.get('Transformer/posembed_input/pos_embedding', [1, undefined, dim]).data;
      const H = config.heads;
      const d = dim / H;
      for (let i = 0; i < depth; i++) {
        const b = `Transformer/encoderblock_${i}`;
        const attn = `${b}/MultiHeadDotProductAttention_1`;
        params.blocks.push({
          norm1: layerNorm(`${b}/LayerNorm_0`, dim, '/', ['scale', 'bias']),
          q: flaxLinear(`${attn}/query`, [dim, H, d], dim, dim, [H, d]),
          k: flaxLinear(`${attn}/key`, [dim, H, d], dim, dim, [H, d]),
          v: flaxLinear(`${attn}/value`, [dim, H, d], dim, dim, [H, d]),
          proj: flaxLinear(`${attn}/out`, [H, d, dim], dim, dim, [dim]),
          norm2: layerNorm(`${b}/LayerNorm_2`, dim, '/', ['scale', 'bias']),
          fc1: flaxLinear(`${b}/MlpBlock_3/Dense_0`, [dim, hidden], dim, hidden, [hidden]),
          fc2: flaxLinear(`${b}/MlpBlock_3/Dense_1`, [hidden, dim], hidden, dim, [dim]),
        });
      }
      params.norm = layerNorm('Transformer/encoder_norm', dim, '/', ['scale', 'bias']);
      if (info.hasHead) params.head = flaxLinear('head', [dim, info.headClasses!], dim, info.headClasses!, [info.headClasses!]);
    }
    // timm's resample_abs_pos_embed keeps the rows of the tokens that have them (none with no_embed_class).
    const posPrefix = config.noEmbedClass ? 0 : prefix;
    const oldGrid = info.checkpointImageSize / p;
    const newGrid = config.imageSize / p;
    const posData = oldGrid === newGrid ? pos : resamplePosEmbed(pos, dim, oldGrid, newGrid, posPrefix);
    const vitParams: VitParams = {
      patchEmbed: { weight: make(tf.tensor2d(patchWeight, [3 * p * p, dim])), ...(patchBias ? { bias: patchBias } : {}) },
      clsToken: make(tf.tensor2d(owned(cls), [1, dim])),
      posEmbed: make(tf.tensor2d(owned(posData), [posEmbedRows(config), dim])),
      ...params,
    };
    return new VisionTransformer(config, vitParams);
  } catch (error) {
    tf.dispose(created);
    throw error;
  }
}
