import * as tf from '@tensorflow/tfjs';
import type { Hook, HookContext, LinearName, TapPoint } from '../hooks.js';
import { gelu, quickGelu } from '../ops/gelu.js';
import { layerNorm } from '../ops/layer-norm.js';
import { linear } from '../ops/linear.js';
import { Attention, type LinearDeltas } from './attention.js';
import type { Activation } from './config.js';
import type { BlockParams } from './params.js';

/** What a block run needs besides its input: the hooks and a context per call. */
export interface BlockRun {
  hooks: readonly Hook[];
  ctx: HookContext;
  wantsTap(point: TapPoint): boolean;
}

/** The block's settings that are not parameters. */
export interface BlockOptions {
  heads: number;
  /** LayerNorm epsilon (default 1e-6). */
  eps?: number;
  activation?: Activation;
}

/** timm's Mlp: fc2(act(fc1(x))), each Linear through the hooks' deltas. */
export class Mlp {
  constructor(readonly activation: Activation) {}

  forward(x: tf.Tensor2D, project: (name: 'fc1' | 'fc2', input: tf.Tensor2D) => tf.Tensor2D, tap?: (point: TapPoint, value: tf.Tensor2D) => void): tf.Tensor2D {
    const preActivation = project('fc1', x);
    const hidden = this.activation === 'quickGelu' ? quickGelu(preActivation) : gelu(preActivation);
    tap?.('mlpHidden', hidden);
    const out = project('fc2', hidden);
    tap?.('mlpOut', out);
    return out;
  }
}

/**
 * One pre-norm ViT block, timm's Block:
 *   x1  = x  + ls1(attn(norm1(x)))
 *   out = x1 + ls2(mlp(norm2(x1)))      (+ hooks' mlpParallel(x1))
 * The original tokens and side queries go through the same residual code; only the attention
 * differs (side queries take keys and values from the tokens only). Parameters are read at every
 * call, never copied, so a method may make them trainable.
 */
export class VitBlock {
  readonly heads: number;
  readonly headDim: number;
  readonly eps: number;
  readonly attn: Attention;
  readonly mlp: Mlp;

  constructor(
    readonly params: BlockParams,
    options: number | BlockOptions,
  ) {
    const { heads, eps = 1e-6, activation = 'gelu' } = typeof options === 'number' ? { heads: options } : options;
    this.heads = heads;
    this.eps = eps;
    this.attn = new Attention(params, heads, eps);
    this.headDim = this.attn.headDim;
    this.mlp = new Mlp(activation);
  }

  dispose(): void {
    this.attn.dispose();
  }

  /** The original tokens' path. Returns the block output and LN1 of its (possibly extended) input. */
  forwardTokens(input: tf.Tensor3D, run: BlockRun): { output: tf.Tensor3D; ln1: tf.Tensor3D } {
    const { hooks, ctx } = run;
    let tokens = input;
    for (const hook of hooks) if (hook.beforeBlock) tokens = hook.beforeBlock(tokens, ctx);
    const [batch, length, dim] = tokens.shape;
    const x = tf.reshape(tokens, [batch * length, dim]) as tf.Tensor2D;
    const tap = (point: TapPoint, value: tf.Tensor2D) => tapTokens(run, point, value, batch, length);

    const ln1 = layerNorm(x, this.params.norm1, this.eps);
    tap('ln1', ln1);
    const attn = this.attn.forward(ln1, batch, length, this.deltas(run));
    tap('attn', attn);
    const output = this.residualMlp(this.residualAttention(x, attn), run, tap);
    let out3 = tf.reshape(output, [batch, length, dim]) as tf.Tensor3D;
    for (const hook of hooks) if (hook.afterBlock) out3 = hook.afterBlock(out3, ctx);
    if (run.wantsTap('blockOut')) for (const hook of hooks) hook.tap?.('blockOut', out3, ctx);
    return { output: out3, ln1: tf.reshape(ln1, [batch, length, dim]) };
  }

  /**
   * Side queries (VQT): rows that attend to the block's tokens (keys/values from LN1(x) only) and then
   * go through the rest of the block. The tokens never see them.
   */
  sideQueries(ln1: tf.Tensor3D, queries: tf.Tensor2D | tf.Tensor3D, run: BlockRun, mode: 'auto' | 'explicit' = 'auto'): tf.Tensor3D {
    const [batch, , dim] = ln1.shape;
    const perImage = queries.rank === 3;
    const count = perImage ? queries.shape[1] : queries.shape[0];
    const rows = (perImage ? batch : 1) * count;
    const P = tf.reshape(queries, [rows, dim]) as tf.Tensor2D;
    const deltas = this.deltas(run);
    const q = this.attn.project('q', layerNorm(P, this.params.norm1, this.eps), deltas);
    const context = this.attn.sideContext(ln1, q, perImage, count, deltas, mode);
    const attn = this.attn.project('proj', context, deltas);
    const base = perImage ? P : (tf.tile(P, [batch, 1]) as tf.Tensor2D);
    const out = this.residualMlp(this.residualAttention(base, attn), run);
    return tf.reshape(out, [batch, count, dim]);
  }

  /** x + ls1 * attn */
  private residualAttention(x: tf.Tensor2D, attn: tf.Tensor2D): tf.Tensor2D {
    return tf.add(x, this.params.ls1 ? tf.mul(attn, this.params.ls1) : attn) as tf.Tensor2D;
  }

  /** x1 + ls2 * mlp(norm2(x1)) + every hook's mlpParallel(x1): the one MLP path for tokens and side queries. */
  private residualMlp(x1: tf.Tensor2D, run: BlockRun, tap?: (point: TapPoint, value: tf.Tensor2D) => void): tf.Tensor2D {
    const project = (name: 'fc1' | 'fc2', input: tf.Tensor2D) => this.linearWithDeltas(name, input, run);
    const mlp = this.mlp.forward(layerNorm(x1, this.params.norm2, this.eps), project, tap);
    let out = tf.add(x1, this.params.ls2 ? tf.mul(mlp, this.params.ls2) : mlp) as tf.Tensor2D;
    for (const hook of run.hooks) {
      const parallel = hook.mlpParallel?.(x1, run.ctx);
      if (parallel) out = tf.add(out, parallel);
    }
    return out;
  }

  private linearWithDeltas(name: 'fc1' | 'fc2', input: tf.Tensor2D, run: BlockRun): tf.Tensor2D {
    let out = linear(input, this.params[name].weight, this.params[name].bias);
    for (const delta of this.deltas(run)(name, input)) out = tf.add(out, delta);
    return out;
  }

  private deltas(run: BlockRun): LinearDeltas {
    return (name: LinearName, input: tf.Tensor2D) => {
      const found: tf.Tensor2D[] = [];
      for (const hook of run.hooks) {
        const delta = hook.linearDelta?.(name, input, run.ctx);
        if (delta) found.push(delta);
      }
      return found;
    };
  }
}

function tapTokens(run: BlockRun, point: TapPoint, value: tf.Tensor2D, batch: number, length: number): void {
  if (!run.wantsTap(point)) return;
  const tokens = tf.reshape(value, [batch, length, value.shape[1]]);
  for (const hook of run.hooks) hook.tap?.(point, tokens, run.ctx);
}
