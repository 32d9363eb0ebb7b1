import * as tf from '@tensorflow/tfjs';
import type { Hook, HookContext, LinearName, TapPoint } from '../hooks.js';
import { attendToFrozen } from '../ops/attend-frozen.js';
import { gelu } from '../ops/gelu.js';
import { layerNorm } from '../ops/layer-norm.js';
import { linear } from '../ops/linear.js';
import type { BlockParams, LinearParams } from './params.js';

/** What a block run needs besides its input: the hooks and a context per call. */
export interface BlockRun {
  hooks: readonly Hook[];
  ctx: HookContext;
  wantsTap(point: TapPoint): boolean;
}

/**
 * One pre-norm ViT block (timm's Block: norm1 -> attn -> residual, norm2 -> mlp -> residual).
 *
 * Attention runs per image and per head as 2-D matMuls with pre-split per-head weights: on wasm a
 * batched matMul runs at ~1.4 GFLOP/s while 2-D ones reach 10-20, and slicing copies its whole input,
 * so the only split is the cheap one of the normalised tokens into images.
 */
export class VitBlock {
  readonly heads: number;
  readonly headDim: number;
  private readonly qHeads: LinearParams[];
  private readonly kHeads: LinearParams[];
  private readonly vHeads: LinearParams[];
  /** [d, D] per head: Wk_h transposed, for side queries scored directly against LN1(x). */
  private readonly keyProjectionT: tf.Tensor2D;
  /** [H, D]: row h is 1 on head h's columns. */
  private readonly headMask: tf.Tensor2D;

  constructor(readonly params: BlockParams, heads: number) {
    const dim = params.q.weight.shape[0];
    this.heads = heads;
    this.headDim = dim / heads;
    const split = (p: LinearParams) =>
      Array.from({ length: heads }, (_, h) => ({
        weight: tf.slice(p.weight, [0, h * this.headDim], [dim, this.headDim]),
        bias: tf.slice(p.bias, [h * this.headDim], [this.headDim]),
      }));
    this.qHeads = split(params.q);
    this.kHeads = split(params.k);
    this.vHeads = split(params.v);
    this.keyProjectionT = tf.transpose(params.k.weight);
    this.headMask = tf.tidy(() =>
      tf.oneHot(tf.div(tf.range(0, dim, 1, 'int32'), this.headDim).toInt(), heads).transpose().toFloat(),
    ) as tf.Tensor2D;
  }

  dispose(): void {
    for (const p of [...this.qHeads, ...this.kHeads, ...this.vHeads]) tf.dispose([p.weight, p.bias]);
    tf.dispose([this.keyProjectionT, this.headMask]);
  }

  /** The original tokens' path. Returns the block output and LN1 of its (possibly extended) input. */
  forwardTokens(input: tf.Tensor3D, run: BlockRun): { output: tf.Tensor3D; ln1: tf.Tensor3D } {
    const { hooks, ctx } = run;
    let tokens = input;
    for (const hook of hooks) if (hook.beforeBlock) tokens = hook.beforeBlock(tokens, ctx);
    const [batch, length, dim] = tokens.shape;
    const x = tf.reshape(tokens, [batch * length, dim]) as tf.Tensor2D;

    const ln1 = layerNorm(x, this.params.norm1);
    tapTokens(run, 'ln1', ln1, batch, length);
    const attn = this.linearWithDeltas('proj', this.selfAttention(ln1, batch, length, run), run);
    tapTokens(run, 'attn', attn, batch, length);
    const x1 = tf.add(x, attn) as tf.Tensor2D;
    let output = tf.add(x1, this.mlp(x1, run, batch, length));
    for (const hook of hooks) {
      const parallel = hook.mlpParallel?.(x1, ctx);
      if (parallel) output = tf.add(output, parallel);
    }
    let out3 = tf.reshape(output, [batch, length, dim]) as tf.Tensor3D;
    for (const hook of hooks) if (hook.afterBlock) out3 = hook.afterBlock(out3, ctx);
    if (run.wantsTap('blockOut')) for (const hook of hooks) hook.tap?.('blockOut', out3, ctx);
    return { output: out3, ln1: tf.reshape(ln1, [batch, length, dim]) };
  }

  /** fc2(GELU(fc1(LN2(x1)))) for rows x1 [rows, D]; taps only for the original tokens. */
  private mlp(x1: tf.Tensor2D, run: BlockRun, batch?: number, length?: number): tf.Tensor2D {
    const hidden = gelu(this.linearWithDeltas('fc1', layerNorm(x1, this.params.norm2), run));
    if (batch !== undefined && length !== undefined) tapTokens(run, 'mlpHidden', hidden, batch, length);
    const out = this.linearWithDeltas('fc2', hidden, run);
    if (batch !== undefined && length !== undefined) tapTokens(run, 'mlpOut', out, batch, length);
    return out;
  }

  private linearWithDeltas(name: LinearName, input: tf.Tensor2D, run: BlockRun): tf.Tensor2D {
    let out = linear(input, this.params[name].weight, this.params[name].bias);
    for (const delta of this.deltas(name, input, run)) out = tf.add(out, delta);
    return out;
  }

  private deltas(name: LinearName, input: tf.Tensor2D, run: BlockRun): tf.Tensor2D[] {
    const found: tf.Tensor2D[] = [];
    for (const hook of run.hooks) {
      const delta = hook.linearDelta?.(name, input, run.ctx);
      if (delta) found.push(delta);
    }
    return found;
  }

  /** Multi-head self-attention over ln1 [B*L, D], before proj. */
  private selfAttention(ln1: tf.Tensor2D, batch: number, length: number, run: BlockRun): tf.Tensor2D {
    const scale = 1 / Math.sqrt(this.headDim);
    const images = batch > 1 ? (tf.split(ln1, batch, 0) as tf.Tensor2D[]) : [ln1];
    const qkvDeltas = (['q', 'k', 'v'] as const).map((name) => this.deltas(name, ln1, run));
    const adapted = qkvDeltas.some((d) => d.length > 0);
    // With deltas on q/k/v the per-head weights no longer tell the whole story: project fully, then slice.
    const full = adapted
      ? (['q', 'k', 'v'] as const).map((name, i) => {
          let out: tf.Tensor2D = linear(ln1, this.params[name].weight, this.params[name].bias);
          for (const delta of qkvDeltas[i]) out = tf.add(out, delta);
          return batch > 1 ? (tf.split(out, batch, 0) as tf.Tensor2D[]) : [out];
        })
      : undefined;
    const headOf = (which: 0 | 1 | 2, heads: LinearParams[], image: number, h: number): tf.Tensor2D =>
      full
        ? tf.slice(full[which][image], [0, h * this.headDim], [length, this.headDim])
        : linear(images[image], heads[h].weight, heads[h].bias);

    const perImage: tf.Tensor2D[] = [];
    for (let b = 0; b < batch; b++) {
      const perHead: tf.Tensor2D[] = [];
      for (let h = 0; h < this.heads; h++) {
        const q = tf.mul(headOf(0, this.qHeads, b, h), scale) as tf.Tensor2D;
        const k = headOf(1, this.kHeads, b, h);
        const v = headOf(2, this.vHeads, b, h);
        const weights = tf.softmax(tf.matMul(q, tf.transpose(k)));
        perHead.push(tf.matMul(weights, v));
      }
      perImage.push(this.heads > 1 ? tf.concat(perHead, 1) : perHead[0]);
    }
    return batch > 1 ? tf.concat(perImage, 0) : perImage[0];
  }

  /**
   * Side queries (VQT): rows that attend to the block's tokens (keys/values from LN1(x) only) and then
   * go through the rest of the block. The tokens never see them.
   *
   * Scored straight against LN1(x): the key bias shifts every score of a row equally (softmax ignores
   * it) and each attention row sums to one (the value bias adds once), so
   * softmax(Q K^T) V = softmax((Q Wk^T) LN1^T) LN1 Wv + bv. This is what lets a cache hold LN1(x) only.
   * Hooks with deltas on k or v (LoRA) break that identity; then keys and values are computed explicitly.
   */
  sideQueries(ln1: tf.Tensor3D, queries: tf.Tensor2D | tf.Tensor3D, run: BlockRun, mode: 'auto' | 'explicit' = 'auto'): tf.Tensor3D {
    const [batch, , dim] = ln1.shape;
    const perImage = queries.rank === 3;
    const count = perImage ? queries.shape[1] : queries.shape[0];
    const rows = (perImage ? batch : 1) * count;
    const P = tf.reshape(queries, [rows, dim]) as tf.Tensor2D;
    const q = this.linearWithDeltas('q', layerNorm(P, this.params.norm1), run);
    const flat = tf.reshape(ln1, [batch * ln1.shape[1], dim]) as tf.Tensor2D;
    const keyDeltas = this.deltas('k', flat, run);
    const valueDeltas = this.deltas('v', flat, run);
    const context =
      mode === 'explicit' || keyDeltas.length > 0 || valueDeltas.length > 0
        ? this.sideAttentionExplicit(ln1, q, perImage, count, keyDeltas, valueDeltas)
        : this.sideAttentionFromLn1(ln1, q, perImage, count);
    const attn = this.linearWithDeltas('proj', context, run);
    const base = perImage ? P : tf.tile(P, [batch, 1]);
    const p1 = tf.add(base, attn) as tf.Tensor2D;
    let out = tf.add(p1, this.mlp(p1, run));
    for (const hook of run.hooks) {
      const parallel = hook.mlpParallel?.(p1, run.ctx);
      if (parallel) out = tf.add(out, parallel);
    }
    return tf.reshape(out, [batch, count, dim]);
  }

  /** Attention context [B*T, D] for side queries from LN1(x), per the identity above. */
  private sideAttentionFromLn1(ln1: tf.Tensor3D, q: tf.Tensor2D, perImage: boolean, count: number): tf.Tensor2D {
    const [batch, , dim] = ln1.shape;
    const H = this.heads;
    const rows = q.shape[0];
    // Row (r, h) of qk holds q[r, head h] Wk_h^T: one matMul over rows masked to one head each.
    const masked = tf.mul(tf.reshape(q, [rows, 1, dim]), this.headMask);
    const scaled = tf.mul(tf.reshape(masked, [rows * H, dim]), 1 / Math.sqrt(this.headDim)) as tf.Tensor2D;
    // linear(): the D x D products get gradients without matMul's slow transpose flags.
    const qk = linear(scaled, this.keyProjectionT);
    const mixed = attendToFrozen(perImage ? (tf.reshape(qk, [batch, count * H, dim]) as tf.Tensor3D) : qk, ln1); // [B, T*H, D]
    const values = linear(tf.reshape(mixed, [batch * count * H, dim]) as tf.Tensor2D, this.params.v.weight);
    const ownHead = tf.sum(tf.mul(tf.reshape(values, [batch * count, H, dim]), this.headMask), 1);
    return tf.add(ownHead, this.params.v.bias) as tf.Tensor2D;
  }

  /** The textbook formulation: explicit keys and values, batched per head. */
  private sideAttentionExplicit(
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
    const k = splitHeads(project(this.params.k, keyDeltas), length);
    const v = splitHeads(project(this.params.v, valueDeltas), length);
    const queries = splitHeads(perImage ? q : tf.tile(q, [batch, 1]), count);
    const scores = tf.mul(tf.matMul(queries, tf.transpose(k, [0, 1, 3, 2])), 1 / Math.sqrt(d));
    const context = tf.matMul(tf.softmax(scores), v); // [B, H, T, d]
    return tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch * count, dim]) as tf.Tensor2D;
  }
}

function tapTokens(run: BlockRun, point: TapPoint, value: tf.Tensor2D, batch: number, length: number): void {
  if (!run.wantsTap(point)) return;
  const tokens = tf.reshape(value, [batch, length, value.shape[1]]);
  for (const hook of run.hooks) hook.tap?.(point, tokens, run.ctx);
}
