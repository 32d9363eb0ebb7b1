import * as tf from '@tensorflow/tfjs';
import { adaptsTokens, type Hook, type HookContext, type TapPoint } from '../hooks.js';
import { layerNorm } from '../ops/layer-norm.js';
import { linear } from '../ops/linear.js';
import { isRecordingGradients, untaped } from '../ops/tape.js';
import { VitBlock, type BlockRun } from './block.js';
import { gridSize, numTokens, validateConfig, type VitConfig } from './config.js';
import type { VitParams } from './params.js';

export interface ForwardOptions {
  hooks?: readonly Hook[];
  training?: boolean;
  /** Also return every block's output [B, L, D] (like timm's forward_intermediates). */
  returnBlocks?: boolean;
  /** Seed for this step's randomness in hooks (dropout). */
  seed?: number;
  /**
   * Record the frozen backbone for gradients even when no trainable variable needs it, as the
   * PyTorch reference code does. Only for measuring what keeping it off the tape saves.
   */
  tapeBackbone?: boolean;
  /** Testing aid: compute side queries with explicit keys/values instead of from LN1(x). */
  sideQueryMode?: 'auto' | 'explicit';
}

export interface ForwardResult {
  /** Final normalised CLS token [B, D]. */
  cls: tf.Tensor2D;
  blocks?: tf.Tensor3D[];
}

/**
 * A timm-compatible Vision Transformer (pre-norm, LayerNorm eps 1e-6, exact GELU) that takes
 * NCHW float32 images [B, 3, H, W], already normalised.
 *
 * Call forward inside tf.tidy (or dispose its results). Plugins reach into it only through hooks.
 */
export class VisionTransformer {
  readonly blocks: VitBlock[];

  constructor(
    readonly config: VitConfig,
    readonly params: VitParams,
  ) {
    validateConfig(config);
    const tokens = numTokens(config);
    if (params.posEmbed.shape[0] !== tokens) {
      throw new Error(`pos_embed has ${params.posEmbed.shape[0]} rows, the ${config.imageSize}px grid needs ${tokens}`);
    }
    this.blocks = params.blocks.map((block) => new VitBlock(block, config.heads));
  }

  get numTokens(): number {
    return numTokens(this.config);
  }

  /** Number of parameters in the frozen backbone (without the checkpoint's classifier head). */
  parameterCount(): number {
    const { head: _head, ...rest } = this.params;
    return collectTensors(rest).reduce((n, t) => n + t.size, 0);
  }

  dispose(): void {
    for (const block of this.blocks) block.dispose();
    tf.dispose(collectTensors(this.params));
  }

  /** Patch embedding, CLS and position embedding: [B, 3, H, W] -> [B, 1 + N, D]. */
  embed(images: tf.Tensor4D): tf.Tensor3D {
    return tf.tidy(() => tf.add(this.patchTokensWithCls(images), this.params.posEmbed) as tf.Tensor3D);
  }

  /** Patch embeddings with CLS prepended, before the position embedding: [B, 1 + N, D]. */
  patchTokensWithCls(images: tf.Tensor4D): tf.Tensor3D {
    const { imageSize, patchSize: p, dim } = this.config;
    const [batch, channels, height, width] = images.shape;
    if (channels !== 3 || height !== imageSize || width !== imageSize) {
      throw new Error(`expected images [B, 3, ${imageSize}, ${imageSize}], got [${images.shape.join(', ')}]`);
    }
    const g = gridSize(this.config);
    return tf.tidy(() => {
      // Unfold into patches with rank <= 4 transposes only (rank 5+ is ~30x slower on wasm).
      const rowsSplit = tf.transpose(tf.reshape(images, [batch * 3 * g, p, g, p]), [0, 2, 1, 3]);
      const byPatch = tf.transpose(tf.reshape(rowsSplit, [batch, 3, g * g, p * p]), [0, 2, 1, 3]);
      const patches = tf.reshape(byPatch, [batch * g * g, 3 * p * p]) as tf.Tensor2D;
      const embedded = tf.reshape(linear(patches, this.params.patchEmbed.weight, this.params.patchEmbed.bias), [batch, g * g, dim]);
      const cls = tf.tile(tf.reshape(this.params.clsToken, [1, 1, dim]), [batch, 1, 1]);
      return tf.concat([cls, embedded], 1) as tf.Tensor3D;
    });
  }

  forward(images: tf.Tensor4D, options: ForwardOptions = {}): ForwardResult {
    const hooks = options.hooks ?? [];
    const batch = images.shape[0];
    const firstTaped = options.tapeBackbone ? -1 : this.firstTapedBlock(hooks);
    const onTape = <T>(block: number, fn: () => T): T => (block >= firstTaped ? fn() : untaped(fn));
    // Tensors hooks asked to keep (ctx.keep) leave each block's tidy and are never disposed here.
    const retained = new Set<tf.Tensor>();
    const blocks: tf.Tensor3D[] = [];

    let x = onTape(-1, () => {
      const ctx = this.context(-1, batch, options, retained);
      let embedded: tf.Tensor3D;
      if (wantsTap(hooks, 'patchEmbed')) {
        const root = this.patchTokensWithCls(images);
        this.tapAll(hooks, 'patchEmbed', root, ctx);
        embedded = tf.add(root, this.params.posEmbed) as tf.Tensor3D;
        if (!retained.has(root)) root.dispose();
      } else {
        embedded = this.embed(images);
      }
      this.tapAll(hooks, 'embed', embedded, ctx);
      return embedded;
    });

    for (let m = 0; m < this.blocks.length; m++) {
      const block = this.blocks[m];
      const input = x;
      const [output, ln1] = onTape(m, () =>
        this.tidyKeeping(retained, (keep) => {
          const { output: out, ln1: normed } = block.forwardTokens(input, this.blockRun(m, batch, options, hooks, keep));
          return [out, normed];
        }),
      ) as [tf.Tensor3D, tf.Tensor3D];
      // Side queries are all that is recorded when the backbone itself needs no gradient.
      this.tidyKeeping(retained, (keep) => {
        this.runSideQueries(block, ln1, this.blockRun(m, batch, options, hooks, keep), options.sideQueryMode);
        return [];
      });
      x = output;
      if (options.returnBlocks) blocks.push(x);
      const inputIsReturned = options.returnBlocks && m > 0;
      if (!inputIsReturned && !retained.has(input)) input.dispose();
      if (!retained.has(ln1)) ln1.dispose();
    }

    const last = x;
    const cls = onTape(this.blocks.length, () =>
      tf.tidy(() => {
        const first = tf.reshape(tf.slice(last, [0, 0, 0], [batch, 1, this.config.dim]), [batch, this.config.dim]);
        return layerNorm(first, this.params.norm) as tf.Tensor2D;
      }),
    );
    const finalCtx = this.context(this.blocks.length, batch, options, retained);
    if (wantsTap(hooks, 'finalSequence')) {
      const sequence = onTape(this.blocks.length, () => layerNorm(last, this.params.norm));
      this.tapAll(hooks, 'finalSequence', sequence, finalCtx);
      if (!retained.has(sequence)) sequence.dispose();
    }
    this.tapAll(hooks, 'finalCls', cls, finalCtx);
    if (!options.returnBlocks && !retained.has(last)) last.dispose();
    return options.returnBlocks ? { cls, blocks } : { cls };
  }

  /**
   * Runs only the side queries of every block from cached LN1 outputs (one [B, L, D] per block):
   * the whole cost of a VQT epoch once the frozen features are cached.
   */
  replaySideQueries(ln1PerBlock: readonly tf.Tensor3D[], options: Omit<ForwardOptions, 'returnBlocks'> = {}): void {
    if (ln1PerBlock.length !== this.blocks.length) {
      throw new Error(`replaySideQueries: got ${ln1PerBlock.length} cached LN1 tensors for ${this.blocks.length} blocks`);
    }
    const hooks = options.hooks ?? [];
    const retained = new Set<tf.Tensor>();
    ln1PerBlock.forEach((ln1, m) => {
      this.tidyKeeping(retained, (keep) => {
        this.runSideQueries(this.blocks[m], ln1, this.blockRun(m, ln1.shape[0], options, hooks, keep), options.sideQueryMode);
        return [];
      });
    });
  }

  private runSideQueries(block: VitBlock, ln1: tf.Tensor3D, run: BlockRun, mode: 'auto' | 'explicit' = 'auto'): void {
    for (const hook of run.hooks) {
      const queries = hook.sideQueries?.(run.ctx);
      if (!queries) continue;
      const out = block.sideQueries(ln1, queries, run, mode);
      hook.sideQueryOutput?.(out, run.ctx);
    }
  }

  private firstTapedBlock(hooks: readonly Hook[]): number {
    if (!isRecordingGradients()) return Infinity;
    let first = Infinity;
    for (const hook of hooks) {
      if (adaptsTokens(hook) && hook.trainableVariables().length > 0) {
        first = Math.min(first, hook.firstAdaptedBlock?.() ?? 0);
      }
    }
    return first;
  }

  /** tf.tidy that also lets hooks keep tensors (ctx.keep) past the scope. */
  private tidyKeeping(retained: Set<tf.Tensor>, fn: (keep: Set<tf.Tensor>) => tf.Tensor[]): tf.Tensor[] {
    const keep = new Set<tf.Tensor>();
    const out = tf.tidy(() => [...fn(keep), ...keep]);
    for (const t of keep) retained.add(t);
    return out.slice(0, out.length - keep.size);
  }

  private tapAll(hooks: readonly Hook[], point: TapPoint, value: tf.Tensor, ctx: HookContext): void {
    if (wantsTap(hooks, point)) for (const hook of hooks) hook.tap?.(point, value, ctx);
  }

  private blockRun(block: number, batch: number, options: ForwardOptions, hooks: readonly Hook[], kept: Set<tf.Tensor>): BlockRun {
    return {
      hooks,
      ctx: this.context(block, batch, options, kept),
      wantsTap: (point) => wantsTap(hooks, point),
    };
  }

  private context(block: number, batch: number, options: ForwardOptions, kept: Set<tf.Tensor>): HookContext {
    return {
      block,
      depth: this.blocks.length,
      dim: this.config.dim,
      batchSize: batch,
      training: options.training ?? false,
      seed: options.seed ?? 0,
      keep: <T extends tf.Tensor>(t: T): T => {
        kept.add(t);
        return t;
      },
    };
  }
}

function wantsTap(hooks: readonly Hook[], point: TapPoint): boolean {
  return hooks.some((h) => h.tap && (!h.tapPoints || h.tapPoints.includes(point)));
}

function collectTensors(value: unknown): tf.Tensor[] {
  if (value instanceof tf.Tensor) return [value];
  if (Array.isArray(value)) return value.flatMap(collectTensors);
  if (value && typeof value === 'object') return Object.values(value).flatMap(collectTensors);
  return [];
}
