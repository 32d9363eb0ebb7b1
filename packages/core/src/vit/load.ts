import * as tf from '@tensorflow/tfjs';
import { FileFormatError } from '../io/errors.js';
import type { HostTensor } from '../io/types.js';
import type { VitConfig } from './config.js';
import type { BlockParams, LinearParams, VitParams } from './params.js';
import { resamplePosEmbed } from './resample.js';
import { VisionTransformer } from './vit.js';

export type CheckpointFormat = 'safetensors' | 'npz';

export interface VitLoadOptions {
  /** Attention heads; shapes do not tell (default dim / 64, or the npz's own). */
  heads?: number;
  /** Run at this image size; the position embedding is resampled when it differs from the checkpoint's. */
  imageSize?: number;
}

export interface ArchitectureInfo {
  format: CheckpointFormat;
  config: VitConfig;
  /** The image size the checkpoint was trained at (its position embedding's grid). */
  checkpointImageSize: number;
  hasHead: boolean;
  headClasses?: number;
}

type Tensors = Map<string, HostTensor>;

/** Reads tensors by name with shape checks; every error names the file and the tensor. */
class TensorReader {
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

function defaultHeads(dim: number, requested: number | undefined, file: string): number {
  const heads = requested ?? Math.max(1, Math.round(dim / 64));
  if (dim % heads !== 0) throw new FileFormatError(file, `--heads ${heads} does not divide the embedding width ${dim}`);
  return heads;
}

function gridOf(tokens: number, file: string, name: string): number {
  const grid = Math.round(Math.sqrt(tokens - 1));
  if (grid * grid !== tokens - 1) throw new FileFormatError(file, `${tokens - 1} patch positions do not form a square grid`, name);
  return grid;
}

/** Architecture from tensor shapes alone (timm names or Google npz names). */
export function inferArchitecture(tensors: Tensors, file: string, format: CheckpointFormat, options: VitLoadOptions = {}): ArchitectureInfo {
  const r = new TensorReader(file, tensors);
  const timm = format === 'safetensors';
  const patch = timm ? r.get('patch_embed.proj.weight', [undefined, 3, undefined, undefined]) : r.get('embedding/kernel', [undefined, undefined, 3, undefined]);
  const dim = timm ? patch.shape[0] : patch.shape[3];
  const patchSize = timm ? patch.shape[2] : patch.shape[0];
  const posName = timm ? 'pos_embed' : 'Transformer/posembed_input/pos_embedding';
  const pos = r.get(posName, [1, undefined, dim]);
  const grid = gridOf(pos.shape[1], file, posName);
  let depth = 0;
  while (r.has(timm ? `blocks.${depth}.norm1.weight` : `Transformer/encoderblock_${depth}/LayerNorm_0/scale`)) depth++;
  if (depth === 0) throw new FileFormatError(file, 'no transformer blocks found', timm ? 'blocks.0.norm1.weight' : 'Transformer/encoderblock_0/LayerNorm_0/scale');
  const fc1 = timm ? r.get('blocks.0.mlp.fc1.weight', [undefined, dim]) : r.get('Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel', [dim, undefined]);
  const hidden = timm ? fc1.shape[0] : fc1.shape[1];
  let heads: number;
  if (timm) {
    heads = defaultHeads(dim, options.heads, file);
  } else {
    const q = r.get('Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel', [dim, undefined, undefined]);
    heads = q.shape[1];
    if (options.heads !== undefined && options.heads !== heads) {
      throw new FileFormatError(file, `--heads ${options.heads} contradicts the checkpoint's ${heads} heads`, 'Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel');
    }
  }
  const headName = timm ? 'head.weight' : 'head/kernel';
  const head = tensors.get(headName);
  const headClasses = head ? (timm ? head.shape[0] : head.shape[1]) : undefined;
  const checkpointImageSize = grid * patchSize;
  return {
    format,
    config: { imageSize: options.imageSize ?? checkpointImageSize, patchSize, dim, depth, heads, mlpRatio: hidden / dim, eps: 1e-6 },
    checkpointImageSize,
    hasHead: head !== undefined && headClasses! > 0,
    headClasses,
  };
}

/** Builds the model from named host tensors in either naming scheme. */
export function vitFromTensors(tensors: Tensors, file: string, format: CheckpointFormat, options: VitLoadOptions = {}): VisionTransformer {
  const info = inferArchitecture(tensors, file, format, options);
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
  /** torch Linear [out, in] -> [in, out] */
  const torchLinear = (prefix: string, out: number, inp: number): LinearParams => ({
    weight: make(tf.tensor2d(transpose2d(r.get(`${prefix}.weight`, [out, inp]).data, out, inp), [inp, out])),
    bias: vec(`${prefix}.bias`, out),
  });
  const flaxLinear = (prefix: string, kernelShape: number[], inp: number, out: number, biasShape: number[]): LinearParams => ({
    weight: make(tf.tensor2d(owned(r.get(`${prefix}/kernel`, kernelShape).data), [inp, out])),
    bias: vecReshaped(`${prefix}/bias`, biasShape, out),
  });

  try {
    let patchWeight: Float32Array;
    let patchBias: tf.Tensor1D;
    let cls: Float32Array;
    let pos: Float32Array;
    const blocks: BlockParams[] = [];
    let norm;
    let head: LinearParams | undefined;
    if (format === 'safetensors') {
      // [D, 3, p, p] -> rows ordered (channel, row, col) -> [3 p^2, D]
      patchWeight = transpose2d(r.get('patch_embed.proj.weight', [dim, 3, p, p]).data, dim, 3 * p * p);
      patchBias = vec('patch_embed.proj.bias', dim);
      cls = r.get('cls_token', [1, 1, dim]).data;
      pos = r.get('pos_embed', [1, undefined, dim]).data;
      for (let i = 0; i < depth; i++) {
        const b = `blocks.${i}`;
        const qkvW = r.get(`${b}.attn.qkv.weight`, [3 * dim, dim]).data;
        const qkvB = r.get(`${b}.attn.qkv.bias`, [3 * dim]).data;
        const part = (k: number): LinearParams => ({
          weight: make(tf.tensor2d(transpose2d(qkvW.subarray(k * dim * dim, (k + 1) * dim * dim), dim, dim), [dim, dim])),
          bias: make(tf.tensor1d(qkvB.slice(k * dim, (k + 1) * dim))),
        });
        blocks.push({
          norm1: { weight: vec(`${b}.norm1.weight`, dim), bias: vec(`${b}.norm1.bias`, dim) },
          q: part(0),
          k: part(1),
          v: part(2),
          proj: torchLinear(`${b}.attn.proj`, dim, dim),
          norm2: { weight: vec(`${b}.norm2.weight`, dim), bias: vec(`${b}.norm2.bias`, dim) },
          fc1: torchLinear(`${b}.mlp.fc1`, hidden, dim),
          fc2: torchLinear(`${b}.mlp.fc2`, dim, hidden),
        });
      }
      norm = { weight: vec('norm.weight', dim), bias: vec('norm.bias', dim) };
      if (info.hasHead) head = torchLinear('head', info.headClasses!, dim);
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
        const ln = (name: string) => ({ weight: vec(`${b}/${name}/scale`, dim), bias: vec(`${b}/${name}/bias`, dim) });
        blocks.push({
          norm1: ln('LayerNorm_0'),
          q: flaxLinear(`${attn}/query`, [dim, H, d], dim, dim, [H, d]),
          k: flaxLinear(`${attn}/key`, [dim, H, d], dim, dim, [H, d]),
          v: flaxLinear(`${attn}/value`, [dim, H, d], dim, dim, [H, d]),
          proj: flaxLinear(`${attn}/out`, [H, d, dim], dim, dim, [dim]),
          norm2: ln('LayerNorm_2'),
          fc1: flaxLinear(`${b}/MlpBlock_3/Dense_0`, [dim, hidden], dim, hidden, [hidden]),
          fc2: flaxLinear(`${b}/MlpBlock_3/Dense_1`, [hidden, dim], hidden, dim, [dim]),
        });
      }
      norm = { weight: vec('Transformer/encoder_norm/scale', dim), bias: vec('Transformer/encoder_norm/bias', dim) };
      if (info.hasHead) head = flaxLinear('head', [dim, info.headClasses!], dim, info.headClasses!, [info.headClasses!]);
    }
    const oldGrid = info.checkpointImageSize / p;
    const newGrid = config.imageSize / p;
    const posData = oldGrid === newGrid ? pos : resamplePosEmbed(pos, dim, oldGrid, newGrid);
    const params: VitParams = {
      patchEmbed: { weight: make(tf.tensor2d(patchWeight, [3 * p * p, dim])), bias: patchBias },
      clsToken: make(tf.tensor2d(owned(cls), [1, dim])),
      posEmbed: make(tf.tensor2d(owned(posData), [1 + newGrid * newGrid, dim])),
      blocks,
      norm,
      head,
    };
    return new VisionTransformer(config, params);
  } catch (error) {
    tf.dispose(created);
    throw error;
  }
}
