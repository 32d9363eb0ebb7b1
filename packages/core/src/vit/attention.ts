import * as tf from '@tensorflow/tfjs';
import type { LinearName } from '../hooks.js';
import { attendToFrozen } from '../ops/attend-frozen.js';
import { layerNorm } from '../ops/layer-norm.js';
import { linear } from '../ops/linear.js';
import { multiHeadAttention } from '../ops/multi-head-attention.js';
import { perHeadKeyQueries, perHeadValues, type FrozenHeadWeights } from '../ops/per-head.js';
import { isRecordingGradients, untaped } from '../ops/tape.js';
import { derive, derivesOnTape, splitColumnsOnTape, splitColumnsThroughHost, splitColumnsTransposedThroughHost, splitVectorOnTape } from './derived.js';
import type { AttentionParams, LinearParams } from './params.js';

/**
 * How self-attention is computed; chosen once per backend here and nowhere else.
 * perHead: per image and per head, 2-D matMuls with per-head weights. On wasm a batched matMul runs
 *   at ~1.4 GFLOP/s while 2-D ones reach 10-20, matMul's transpose flags are ~10x slower, and tf.slice
 *   copies its whole input per piece, so the only activation split is that of the normalised tokens
 *   into images (ENGINE.md).
 * batched: the textbook [B, H, L, d] formulation, for backends whose batched matMul is fast.
 */
export type AttentionKernel = 'perHead' | 'batched';

const kernelByBackend = new Map<string, AttentionKernel>();
let forcedKernel: AttentionKernel | undefined;

export function attentionKernelFor(backend: string): AttentionKernel {
  let kernel = kernelByBackend.get(backend);
  if (!kernel) {
    kernel = backend === 'wasm' ? 'perHead' : 'batched';
    kernelByBackend.set(backend, kernel);
  }
  return kernel;
}

/** Forces a kernel on every backend (undefined: back to the per-backend choice). For tests and benchmarks. */
export function setAttentionKernel(kernel: AttentionKernel | undefined): void {
  forcedKernel = kernel;
}

function currentKernel(): AttentionKernel {
  return forcedKernel ?? attentionKernelFor(tf.getBackend());
}

/**
 * How side queries are scored against LN1(x) (the cached path of VQT).
 * perHead: each head's [d, D] slice of Wk^T and [D, d] slice of Wv, so the query-side products cost
 *   what the arithmetic needs; the softmax and transposes run once over the batch.
 * masked: rows masked to one head each, multiplied by the whole [D, D] weights (H times the work).
 *   The first formulation, kept to check the fast one against; also what runs when Wk or Wv train.
 */
export type SideQueryKernel = 'perHead' | 'masked';

let sideQueryKernel: SideQueryKernel = 'perHead';

/** Chooses the side-query kernel (undefined: the default, perHead). For tests and benchmarks. */
export function setSideQueryKernel(kernel: SideQueryKernel | undefined): void {
  sideQueryKernel = kernel ?? 'perHead';
}

/**
 * How the frozen forward (off the gradient tape) computes self-attention with the perHead kernel.
 * projectFirst: full q/k/v projections as large 2-D products, heads split through the host.
 * perHeadWeights: per image and head, [L, D] x [D, d] products (what the taped path does). For tests.
 */
export type FrozenForwardKernel = 'projectFirst' | 'perHeadWeights';

let frozenForwardKernel: FrozenForwardKernel = 'projectFirst';

/** Chooses the frozen forward's attention formulation (undefined: projectFirst). For tests and benchmarks. */
export function setFrozenForwardKernel(kernel: FrozenForwardKernel | undefined): void {
  frozenForwardKernel = kernel ?? 'projectFirst';
}

/**
 * How the perHead kernel computes self-attention while a gradient tape records (VPT, AdaptFormer,
 * LoRA, full fine-tuning: the backbone on the tape).
 * projectFirst: q, k, v as three large 2-D products, then multiHeadAttention (2-D products per image
 *   and head, its gradient written beside it).
 * perHeadWeights: per image and head, [L, D] x [D, d] products with per-head weight slices and
 *   autodiff: the first formulation, kept to check the fast one against. For tests and benchmarks.
 */
export type TapedAttentionKernel = 'projectFirst' | 'perHeadWeights';

let tapedAttentionKernel: TapedAttentionKernel = 'projectFirst';

/** Chooses the taped attention formulation (undefined: projectFirst). For tests and benchmarks. */
export function setTapedAttentionKernel(kernel: TapedAttentionKernel | undefined): void {
  tapedAttentionKernel = kernel ?? 'projectFirst';
}

/** Deltas hooks add to a frozen Linear's output (LoRA and the like). */
export type LinearDeltas = (name: LinearName, input: tf.Tensor2D) => tf.Tensor2D[];

/**
 * timm's Attention (attn.qkv split into q, k, v; attn.proj; optional q_norm / k_norm). It reads its
 * parameters at every call, so parameters a method makes trainable (tf.Variable) are what it runs with.
 */
export class Attention {
  readonly headDim: number;

  constructor(
    private readonly params: AttentionParams,
    readonly heads: number,
    readonly eps: number,
  ) {
    const dim = params.q.weight.shape[1];
    if (dim % heads !== 0) throw new Error(`attention: width ${dim} is not divisible by ${heads} heads`);
    this.headDim = dim / heads;
  }

  get qkNorm(): boolean {
    return this.params.qNorm !== undefined;
  }

  /** Nothing to free: the parameters belong to the model, and nothing is derived ahead of a call. */
  dispose(): void {}

  /** A Linear of this module plus the hooks' deltas. */
  project(name: 'q' | 'k' | 'v' | 'proj', input: tf.Tensor2D, deltas: LinearDeltas): tf.Tensor2D {
    const p = this.params[name];
    let out = linear(input, p.weight, p.bias);
    for (const delta of deltas(name, input)) out = tf.add(out, delta);
    return out;
  }

  /** proj(MSA(x)) for x [B*L, D] (already norm1'd): the attention branch before LayerScale and residual. */
  forward(x: tf.Tensor2D, batch: number, length: number, deltas: LinearDeltas): tf.Tensor2D {
    const qkvDeltas = (['q', 'k', 'v'] as const).map((name) => deltas(name, x));
    const adapted = qkvDeltas.some((d) => d.length > 0);
    const kernel = currentKernel();
    let context: tf.Tensor2D;
    if (kernel === 'batched' || adapted) {
      // With deltas on q, k or v the per-head weights do not tell the whole story: project fully first.
      const [q, k, v] = (['q', 'k', 'v'] as const).map((name, i) =>
        qkvDeltas[i].reduce<tf.Tensor2D>((acc, d) => tf.add(acc, d), linear(x, this.params[name].weight, this.params[name].bias)),
      );
      context =
        kernel === 'batched'
          ? this.batchedContext(q, k, v, batch, length)
          : this.projectsFirst()
            ? multiHeadAttention(q, k, v, batch, this.heads)
            : this.perHeadContextFromProjections(q, k, v, batch, length);
    } else {
      context = this.perHeadContext(x, batch);
    }
    return this.project('proj', context, deltas);
  }

  private normHeads<T extends tf.Tensor>(t: T, which: 'qNorm' | 'kNorm'): T {
    const p = this.params[which];
    return p ? layerNorm(t, p, this.eps) : t;
  }

  /**
   * Whether the perHead kernel takes full q, k, v projections into multiHeadAttention: always but with
   * qk-norm (normalised per head) or when a test forces the per-head-weights formulation.
   */
  private projectsFirst(): boolean {
    return !this.qkNorm && (isRecordingGradients() ? tapedAttentionKernel : frozenForwardKernel) === 'projectFirst';
  }

  /** projectedContext; otherwise per image and head with per-head weights derived from the current q/k/v parameters. */
  private perHeadContext(x: tf.Tensor2D, batch: number): tf.Tensor2D {
    if (this.projectsFirst()) return this.projectedContext(x, batch);
    const heads = (name: 'q' | 'k' | 'v') => this.headWeights(name);
    const [qh, kh, vh] = [heads('q'), heads('k'), heads('v')];
    const images = batch > 1 ? (tf.split(x, batch, 0) as tf.Tensor2D[]) : [x];
    const taped = (name: 'q' | 'k' | 'v') => derivesOnTape(this.params[name]);
    const [qt, kt, vt] = [taped('q'), taped('k'), taped('v')];
    return this.perHeadLoop(batch, (b, h) => [
      linear(images[b], qh[h].weight, qh[h].bias, qt),
      linear(images[b], kh[h].weight, kh[h].bias, kt),
      linear(images[b], vh[h].weight, vh[h].bias, vt),
    ]);
  }

  /**
   * q, k and v as three [B L, D] x [D, D] products (large 2-D matMuls run ~5x faster per FLOP on wasm
   * than B H small ones of [L, D] x [D, d]), then multiHeadAttention. Off the tape the projections are
   * freed as soon as the attention has read them.
   */
  private projectedContext(x: tf.Tensor2D, batch: number): tf.Tensor2D {
    const [q, k, v] = (['q', 'k', 'v'] as const).map((name) => linear(x, this.params[name].weight, this.params[name].bias));
    const context = multiHeadAttention(q, k, v, batch, this.heads);
    if (!isRecordingGradients()) tf.dispose([q, k, v]);
    return context;
  }

  private perHeadContextFromProjections(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, batch: number, length: number): tf.Tensor2D {
    const d = this.headDim;
    const perImage = (t: tf.Tensor2D) => (batch > 1 ? (tf.split(t, batch, 0) as tf.Tensor2D[]) : [t]);
    const [qs, ks, vs] = [perImage(q), perImage(k), perImage(v)];
    const head = (t: tf.Tensor2D, h: number) => tf.slice(t, [0, h * d], [length, d]);
    return this.perHeadLoop(batch, (b, h) => [head(qs[b], h), head(ks[b], h), head(vs[b], h)]);
  }

  private perHeadLoop(batch: number, qkv: (image: number, head: number) => [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D]): tf.Tensor2D {
    const scale = 1 / Math.sqrt(this.headDim);
    const perImage: tf.Tensor2D[] = [];
    for (let b = 0; b < batch; b++) {
      const perHead: tf.Tensor2D[] = [];
      for (let h = 0; h < this.heads; h++) {
        const [q, k, v] = qkv(b, h);
        const scaled = tf.mul(this.normHeads(q, 'qNorm'), scale) as tf.Tensor2D;
        const weights = tf.softmax(tf.matMul(scaled, tf.transpose(this.normHeads(k, 'kNorm'))));
        perHead.push(tf.matMul(weights, v));
      }
      perImage.push(this.heads > 1 ? tf.concat(perHead, 1) : perHead[0]);
    }
    return batch > 1 ? tf.concat(perImage, 0) : perImage[0];
  }

  private batchedContext(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, batch: number, length: number): tf.Tensor2D {
    const split = (t: tf.Tensor2D) => tf.transpose(tf.reshape(t, [batch, length, this.heads, this.headDim]), [0, 2, 1, 3]) as tf.Tensor4D;
    const qh = tf.mul(this.normHeads(split(q), 'qNorm'), 1 / Math.sqrt(this.headDim)) as tf.Tensor4D;
    const kh = this.normHeads(split(k), 'kNorm');
    const weights = tf.softmax(tf.matMul(qh, kh, false, true));
    const context = tf.matMul(weights, split(v)); // [B, H, L, d]
    return tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch * length, this.heads * this.headDim]) as tf.Tensor2D;
  }

  /** Per-head [D, d] weights and [d] biases of q, k or v, derived from the current parameters. */
  private headWeights(name: 'q' | 'k' | 'v'): LinearParams[] {
    const p = this.params[name];
    const weights = derive(
      p.weight,
      () => splitColumnsOnTape(p.weight, this.heads),
      () => splitColumnsThroughHost(p.weight, this.heads),
    );
    const biases = derive(p.bias, () => splitVectorOnTape(p.bias, this.heads));
    return weights.map((weight, h) => ({ weight, bias: biases[h] }));
  }

  /**
   * Attention context [B*T, D] (before proj) for side queries that attend to the block's tokens:
   * q [B*T or T, D] already projected; keys and values from ln1 [B, L, D] only.
   *
   * Scored straight against LN1(x) when it can be: the key bias shifts every score of a row equally
   * (softmax ignores it) and each attention row sums to one (the value bias adds once), so
   * softmax(Q K^T) V = softmax((Q Wk^T) LN1^T) LN1 Wv + bv. This is what lets a cache hold LN1(x) only.
   * Deltas on k or v (LoRA) and qk-norm break that identity; then keys and values are computed explicitly.
   */
  sideContext(ln1: tf.Tensor3D, q: tf.Tensor2D, perImage: boolean, count: number, deltas: LinearDeltas, mode: 'auto' | 'explicit'): tf.Tensor2D {
    const [batch, length, dim] = ln1.shape;
    const flat = tf.reshape(ln1, [batch * length, dim]) as tf.Tensor2D;
    const keyDeltas = deltas('k', flat);
    const valueDeltas = deltas('v', flat);
    const explicit = mode === 'explicit' || this.qkNorm || keyDeltas.length > 0 || valueDeltas.length > 0;
    return explicit
      ? this.sideContextExplicit(ln1, q, perImage, count, keyDeltas, valueDeltas)
      : sideQueryKernel === 'perHead' && !derivesOnTape(this.params.k) && !derivesOnTape(this.params.v)
        ? this.sideContextPerHead(ln1, q, perImage, count)
        : this.sideContextFromLn1(ln1, q, perImage, count);
  }

  /**
   * Row (b, h, t) of the scores is q[b, t, head h] Wk_h^T LN1(x_b)^T: per head a [rows, d] x [d, D]
   * product, then one attention over the frozen context for all heads, then per head the mixed rows
   * times Wv_h [D, d]. Needs frozen Wk and Wv (their per-head slices are made off the tape).
   */
  private sideContextPerHead(ln1: tf.Tensor3D, q: tf.Tensor2D, perImage: boolean, count: number): tf.Tensor2D {
    const batch = ln1.shape[0];
    const H = this.heads;
    const wk = this.params.k.weight;
    const wv = this.params.v.weight;
    const columns = (w: tf.Tensor2D) => untaped(() => splitColumnsThroughHost(w, H)); // W_h [D, d]
    const transposedColumns = (w: tf.Tensor2D) => untaped(() => splitColumnsTransposedThroughHost(w, H)); // W_h^T [d, D]
    const keys: FrozenHeadWeights = { source: wk, forward: transposedColumns(wk), backward: columns };
    const values: FrozenHeadWeights = { source: wv, forward: columns(wv), backward: transposedColumns };
    const scaled = tf.mul(q, 1 / Math.sqrt(this.headDim)) as tf.Tensor2D;
    const queries = perHeadKeyQueries(scaled, keys, batch, count, perImage) as tf.Tensor2D | tf.Tensor3D;
    const mixed = attendToFrozen(queries, ln1); // [B, H T, D]
    const context = tf.add(perHeadValues(mixed, values, count), this.params.v.bias) as tf.Tensor2D;
    tf.dispose([...keys.forward, ...values.forward]);
    return context;
  }

  /** [H, D]: row h is 1 on head h's columns. Built on the host (tf.oneHot refuses depth 1: one head). */
  private headMask(dim: number): tf.Tensor2D {
    const mask = new Float32Array(this.heads * dim);
    for (let h = 0; h < this.heads; h++) mask.fill(1, h * dim + h * this.headDim, h * dim + (h + 1) * this.headDim);
    return tf.tensor2d(mask, [this.heads, dim]);
  }

  private sideContextFromLn1(ln1: tf.Tensor3D, q: tf.Tensor2D, perImage: boolean, count: number): tf.Tensor2D {
    const [batch, , dim] = ln1.shape;
    const H = this.heads;
    const rows = q.shape[0];
    const headMask = this.headMask(dim);
    const wk = this.params.k.weight;
    const [keyProjectionT] = derive(wk, () => [tf.transpose(wk) as tf.Tensor2D]);
    // Row (r, h) of qk holds q[r, head h] Wk_h^T: one matMul over rows masked to one head each.
    const masked = tf.mul(tf.reshape(q, [rows, 1, dim]), headMask);
    const scaled = tf.mul(tf.reshape(masked, [rows * H, dim]), 1 / Math.sqrt(this.headDim)) as tf.Tensor2D;
    // linear(): the D x D products get gradients without matMul's slow transpose flags.
    const qk = linear(scaled, keyProjectionT, undefined, derivesOnTape(this.params.k));
    const mixed = attendToFrozen(perImage ? (tf.reshape(qk, [batch, count * H, dim]) as tf.Tensor3D) : qk, ln1, { legacy: true }); // [B, T*H, D]
    const values = linear(tf.reshape(mixed, [batch * count * H, dim]) as tf.Tensor2D, this.params.v.weight);
    const ownHead = tf.sum(tf.mul(tf.reshape(values, [batch * count, H, dim]), headMask), 1);
    return tf.add(ownHead, this.params.v.bias) as tf.Tensor2D;
  }

  /** The textbook formulation: explicit keys and values, batched per head. */
  private sideContextExplicit(
    ln1: tf.Tensor3D,
    q: tf.Tensor2D,
    perImage: boolean,
    count: number,
    keyDeltas: tf.Tensor2D[],
    valueDeltas: tf.Tensor2D[],
  ): tf.Tensor2D {
    const [batch, length, dim] = ln1.shape;
    const H = this.heads;
    const d = this.headDim;
    const flat = tf.reshape(ln1, [batch * length, dim]) as tf.Tensor2D;
    const splitHeads = (t: tf.Tensor, rowsPerImage: number) =>
      tf.transpose(tf.reshape(t, [batch, rowsPerImage, H, d]), [0, 2, 1, 3]) as tf.Tensor4D;
    const project = (p: LinearParams, deltas: tf.Tensor2D[]) =>
      deltas.reduce<tf.Tensor2D>((acc, delta) => tf.add(acc, delta), linear(flat, p.weight, p.bias));
    const k = this.normHeads(splitHeads(project(this.params.k, keyDeltas), length), 'kNorm');
    const v = splitHeads(project(this.params.v, valueDeltas), length);
    const queries = this.normHeads(splitHeads(perImage ? q : tf.tile(q, [batch, 1]), count), 'qNorm');
    const scores = tf.mul(tf.matMul(queries, tf.transpose(k, [0, 1, 3, 2])), 1 / Math.sqrt(d));
    const context = tf.matMul(tf.softmax(scores), v); // [B, H, T, d]
    return tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch * count, dim]) as tf.Tensor2D;
  }
}

