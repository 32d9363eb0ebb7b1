import * as tf from '@tensorflow/tfjs';
import { adaptsTokens, type Hook, type HookContext, type TapPoint } from '../hooks.js';
import { layerNorm } from '../ops/layer-norm.js';
import { linear } from '../ops/linear.js';
import { isRecordingGradients, untaped } from '../ops/tape.js';
import { VitBlock, type BlockRun } from './block.js';
import { blockActivationBytes, canCheckpoint, checkpointed, defaultCheckpointBudget, type CheckpointingMode } from './checkpointing.js';
import { gridSize, numTokens, posEmbedRows, prefixTokens, resolveConfig, validateConfig, type ResolvedVitConfig, type VitConfig } from './config.js';
import type { VitParams } from './params.js';

export interface ForwardOptions {
  hooks?: readonly Hook[];
  training?: boolean;
  /** Also return every block's output [B, 1 + N, D] (like timm's forward_intermediates, without register tokens). */
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
  /** Per-block gradient checkpointing of the taped blocks (default: the model's `checkpointing`). */
  checkpointing?: CheckpointingMode;
}

export interface ForwardResult {
  /**
   * The image feature [B, D]: the final normalised CLS token, or with config.globalPool 'avg' the
   * average of the patch tokens (normalised by fc_norm when config.fcNorm). The methods' "final CLS".
   */
  cls: tf.Tensor2D;
  /** Every block's output [B, 1 + N, D]: CLS and patches; register tokens are dropped, as timm's forward_intermediates does. */
  blocks?: tf.Tensor3D[];
}

/**
 * A timm-compatible Vision Transformer (timm's VisionTransformer with the variants of VitConfig:
 * pre-norm, LayerScale, registers, qk-norm, average pooling with fc_norm, QuickGELU, no_embed_class)
 * that takes NCHW float32 images [B, 3, H, W], already normalised.
 *
 * Call forward inside tf.tidy (or dispose its results). Plugins reach into it only through hooks.
 */
export class VisionTransformer {
  readonly blocks: VitBlock[];
  /**
   * Gradient checkpointing for methods that backpropagate through blocks: 'auto' recomputes each
   * taped block in the backward pass when their activations would pass `checkpointBudgetBytes`.
   */
  checkpointing: CheckpointingMode = 'auto';
  checkpointBudgetBytes?: number;
  /** The config with every variant field spelled out. */
  readonly resolved: ResolvedVitConfig;
  /** tf.Variable names must be unique in the engine: makeTrainable names them `vit<n>/<parameter>`. */
  private readonly variablePrefix = `vit${nextModelId++}`;

  constructor(
    readonly config: VitConfig,
    readonly params: VitParams,
  ) {
    validateConfig(config);
    const c = (this.resolved = resolveConfig(config));
    const rows = posEmbedRows(c);
    if (params.posEmbed.shape[0] !== rows) {
      throw new Error(`pos_embed has ${params.posEmbed.shape[0]} rows, the ${config.imageSize}px grid needs ${rows}`);
    }
    const problems = [
      c.registerTokens > 0 && params.regTokens?.shape[0] !== c.registerTokens && `${c.registerTokens} register tokens need reg_token [${c.registerTokens}, D]`,
      c.registerTokens === 0 && params.regTokens && 'reg_token given, config.registerTokens is 0',
      c.preNorm !== Boolean(params.normPre) && `config.preNorm is ${c.preNorm} but norm_pre is ${params.normPre ? 'given' : 'missing'}`,
      c.fcNorm !== Boolean(params.fcNorm) && `config.fcNorm is ${c.fcNorm} but fc_norm is ${params.fcNorm ? 'given' : 'missing'}`,
      c.fcNorm === Boolean(params.norm) && `config.fcNorm is ${c.fcNorm} but the final norm is ${params.norm ? 'given' : 'missing'}`,
      params.blocks.length !== c.depth && `config.depth is ${c.depth}, got ${params.blocks.length} blocks`,
      params.blocks.some((b) => c.layerScale !== Boolean(b.ls1 && b.ls2)) && `config.layerScale is ${c.layerScale}, the blocks' ls1/ls2 disagree`,
      params.blocks.some((b) => c.qkNorm !== Boolean(b.qNorm && b.kNorm)) && `config.qkNorm is ${c.qkNorm}, the blocks' q_norm/k_norm disagree`,
    ].filter((p): p is string => typeof p === 'string');
    if (problems.length) throw new Error(`ViT parameters do not match the config: ${problems.join('; ')}`);
    this.blocks = params.blocks.map((block) => new VitBlock(block, { heads: c.heads, eps: c.eps, activation: c.activation }));
  }

  /** Length of the sequence the blocks see: CLS, registers, patches. */
  get numTokens(): number {
    return numTokens(this.config);
  }

  /** CLS and register tokens, before the patches. */
  get prefixTokens(): number {
    return prefixTokens(this.config);
  }

  /** Number of parameters in the frozen backbone (without the checkpoint's classifier head). */
  parameterCount(): number {
    return [...this.namedParameters().values()].reduce((n, t) => n + t.size, 0);
  }

  /**
   * The backbone's parameters by timm-like name ('blocks.0.attn.q.weight', 'norm.bias', ...), without
   * the classifier head. Linear weights are input-major [in, out]; q, k and v are timm's attn.qkv split.
   */
  namedParameters(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    const visit = (prefix: string, value: unknown) => {
      if (value instanceof tf.Tensor) out.set(prefix, value);
      else if (Array.isArray(value)) value.forEach((v, i) => visit(`${prefix}.${i}`, v));
      else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) visit(prefix ? `${prefix}.${PARAM_NAMES[k] ?? k}` : PARAM_NAMES[k] ?? k, v);
    };
    const { head: _head, ...rest } = this.params;
    visit('', rest);
    return out;
  }

  /**
   * Makes backbone parameters trainable, in place: each chosen parameter is replaced by a trainable
   * tf.Variable holding its values (the old tensor is disposed), and the model runs with it from the
   * next call on (nothing is snapshotted at construction). Full fine-tuning: `vit.makeTrainable()`;
   * a part: `vit.makeTrainable((name) => name.startsWith('blocks.11.'))`. Returns the variables by
   * parameter name (each variable's own name is `vit<n>/<parameter name>`, unique in the engine).
   */
  makeTrainable(select: (name: string) => boolean = () => true): Map<string, tf.Variable> {
    const chosen = new Map<string, tf.Variable>();
    const replace = (prefix: string, holder: Record<string, unknown>) => {
      for (const [key, value] of Object.entries(holder)) {
        const name = prefix ? `${prefix}.${PARAM_NAMES[key] ?? key}` : PARAM_NAMES[key] ?? key;
        if (value instanceof tf.Variable && value.trainable) {
          if (select(name)) chosen.set(name, value);
        } else if (value instanceof tf.Tensor) {
          if (!select(name)) continue;
          const variable = tf.variable(value, true, `${this.variablePrefix}/${name}`);
          value.dispose();
          holder[key] = variable;
          chosen.set(name, variable);
        } else if (Array.isArray(value)) {
          value.forEach((v, i) => replace(`${name}.${i}`, v as Record<string, unknown>));
        } else if (value && typeof value === 'object') {
          replace(name, value as Record<string, unknown>);
        }
      }
    };
    const { head, ...rest } = this.params;
    void head;
    replace('', rest as unknown as Record<string, unknown>);
    // `rest` is a copy of the top level: write its replaced top-level tensors back.
    Object.assign(this.params, rest);
    return chosen;
  }

  /**
   * The first part of the backbone with a trainable parameter: -1 for the embedding (patch, CLS,
   * position, registers), m for block m, Infinity when none. Earlier blocks stay off the tape.
   */
  private firstTrainableBlock(): number {
    const trainable = (value: unknown) => collectTensors(value).some((t) => t instanceof tf.Variable && t.trainable);
    const { blocks, norm, fcNorm, head: _head, ...embedding } = this.params;
    if (trainable(embedding)) return -1;
    const m = blocks.findIndex((block) => trainable(block));
    if (m >= 0) return m;
    return trainable([norm, fcNorm]) ? blocks.length : Infinity;
  }

  dispose(): void {
    for (const block of this.blocks) block.dispose();
    tf.dispose(collectTensors(this.params));
  }

  /**
   * Patch embedding, CLS, registers, position embedding and (config.preNorm) norm_pre:
   * [B, 3, H, W] -> [B, 1 + R + N, D], block 0's input.
   */
  embed(images: tf.Tensor4D): tf.Tensor3D {
    return tf.tidy(() => this.addPositions(this.patchTokensWithCls(images)));
  }

  /** Position embedding and norm_pre on patchTokensWithCls' output. */
  private addPositions(raw: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const { noEmbedClass, eps } = this.resolved;
      const [batch, length, dim] = raw.shape;
      const prefix = this.prefixTokens;
      // timm's _pos_embed: no_embed_class adds the position embedding to the patches only.
      const tokens = noEmbedClass
        ? tf.concat([tf.slice(raw, [0, 0, 0], [batch, prefix, dim]), tf.add(tf.slice(raw, [0, prefix, 0], [batch, length - prefix, dim]), this.params.posEmbed)], 1)
        : tf.add(raw, this.params.posEmbed);
      return (this.params.normPre ? layerNorm(tokens, this.params.normPre, eps) : tokens) as tf.Tensor3D;
    });
  }

  /** Patch embeddings with CLS and registers prepended, before the position embedding: [B, 1 + R + N, D]. */
  patchTokensWithCls(images: tf.Tensor4D): tf.Tensor3D {
    const { imageSize, patchSize: p, dim } = this.resolved;
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
      const prefix = [this.params.clsToken, ...(this.params.regTokens ? [this.params.regTokens] : [])];
      const prefixRows = tf.tile(tf.expandDims(prefix.length > 1 ? tf.concat(prefix, 0) : prefix[0], 0), [batch, 1, 1]);
      return tf.concat([prefixRows, embedded], 1) as tf.Tensor3D;
    });
  }

  /** The image feature from the last block's output [B, L, D]: timm's norm -> pool -> fc_norm. */
  pool(last: tf.Tensor3D): tf.Tensor2D {
    const { dim, eps, globalPool } = this.resolved;
    const [batch, length] = last.shape;
    const prefix = this.prefixTokens;
    return tf.tidy(() => {
      let pooled: tf.Tensor2D;
      if (globalPool === 'token') {
        const cls = tf.reshape(tf.slice(last, [0, 0, 0], [batch, 1, dim]), [batch, dim]) as tf.Tensor2D;
        pooled = this.params.norm ? layerNorm(cls, this.params.norm, eps) : cls;
      } else {
        const normed = this.params.norm ? layerNorm(last, this.params.norm, eps) : last;
        pooled = tf.mean(tf.slice(normed, [0, prefix, 0], [batch, length - prefix, dim]), 1) as tf.Tensor2D;
      }
      return this.params.fcNorm ? layerNorm(pooled, this.params.fcNorm, eps) : pooled;
    });
  }

  /** [CLS, registers, patches] -> [CLS, patches]. */
  private withoutRegisters(tokens: tf.Tensor3D): tf.Tensor3D {
    const registers = this.resolved.registerTokens;
    if (registers === 0) return tokens;
    const [batch, length, dim] = tokens.shape;
    return tf.tidy(() => tf.concat([tf.slice(tokens, [0, 0, 0], [batch, 1, dim]), tf.slice(tokens, [0, 1 + registers, 0], [batch, length - 1 - registers, dim])], 1));
  }

  forward(images: tf.Tensor4D, options: ForwardOptions = {}): ForwardResult {
    const hooks = options.hooks ?? [];
    const batch = images.shape[0];
    const firstTaped = options.tapeBackbone ? -1 : Math.min(isRecordingGradients() ? this.firstTrainableBlock() : Infinity, this.firstTapedBlock(hooks));
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
        embedded = this.addPositions(root);
        if (!retained.has(root)) root.dispose();
      } else {
        embedded = this.embed(images);
      }
      this.tapAll(hooks, 'embed', embedded, ctx);
      return embedded;
    });

    const checkpoint = this.checkpointTapedBlocks(hooks, options, batch, firstTaped);
    // A recomputed block computes gradients for what it reads: the hooks' variables, and its own weights
    // when trainable. Backbone weights a hook reports (full fine-tuning's hook lists all of them) count
    // only for their own block: every other block would return a zero gradient for each of them, and
    // at ViT-B that is a whole model of zeros per block.
    const backboneVariables = checkpoint ? new Set(collectTensors(this.params)) : new Set<tf.Tensor>();
    const hookVariables = checkpoint ? [...new Set(hooks.flatMap((h) => h.trainableVariables()))].filter((v) => !backboneVariables.has(v)) : [];
    const trainableOf = (m: number) => [...hookVariables, ...collectTensors(this.params.blocks[m]).filter((t): t is tf.Variable => t instanceof tf.Variable && t.trainable)];
    for (let m = 0; m < this.blocks.length; m++) {
      const block = this.blocks[m];
      const input = x;
      const runBlock = (tokens: tf.Tensor3D, keep: Set<tf.Tensor>) => block.forwardTokens(tokens, this.blockRun(m, batch, options, hooks, keep));
      const [output, ln1] = (
        checkpoint && m >= firstTaped
          ? [checkpointed((tokens) => tf.tidy(() => runBlock(tokens, new Set()).output), input, trainableOf(m)), undefined]
          : onTape(m, () =>
              this.tidyKeeping(retained, (keep) => {
                const { output: out, ln1: normed } = runBlock(input, keep);
                return [out, normed];
              }),
            )
      ) as [tf.Tensor3D, tf.Tensor3D | undefined];
      // Side queries are all that is recorded when the backbone itself needs no gradient.
      if (ln1) {
        this.tidyKeeping(retained, (keep) => {
          this.runSideQueries(block, ln1, this.blockRun(m, batch, options, hooks, keep), options.sideQueryMode);
          return [];
        });
      }
      x = output;
      if (options.returnBlocks) blocks.push(this.withoutRegisters(x));
      const inputIsReturned = options.returnBlocks && m > 0 && this.resolved.registerTokens === 0;
      if (!inputIsReturned && !retained.has(input)) input.dispose();
      if (ln1 && !retained.has(ln1)) ln1.dispose();
    }

    const last = x;
    const cls = onTape(this.blocks.length, () => this.pool(last));
    const finalCtx = this.context(this.blocks.length, batch, options, retained);
    if (wantsTap(hooks, 'finalSequence')) {
      const { eps } = this.resolved;
      const sequence = onTape(this.blocks.length, () => (this.params.norm ? layerNorm(last, this.params.norm, eps) : tf.clone(last)));
      this.tapAll(hooks, 'finalSequence', sequence, finalCtx);
      if (!retained.has(sequence)) sequence.dispose();
    }
    this.tapAll(hooks, 'finalCls', cls, finalCtx);
    const lastIsReturned = options.returnBlocks && this.resolved.registerTokens === 0;
    if (!lastIsReturned && !retained.has(last)) last.dispose();
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

  /**
   * How a training step through these hooks runs at this batch size: the blocks on the tape, whether
   * they are checkpointed, and the largest chunk of rows (gradient accumulation) whose activations
   * fit the budget: with checkpointing one block is alive at a time, without it every taped block.
   */
  trainingPlan(hooks: readonly Hook[], batch: number): { tapedBlocks: number; checkpointed: boolean; microBatch: number } {
    const first = Math.max(0, Math.min(this.firstTrainableBlock(), this.firstTapedBlock(hooks, true)));
    const tapedBlocks = Number.isFinite(first) ? this.blocks.length - first : 0;
    if (tapedBlocks === 0) return { tapedBlocks, checkpointed: false, microBatch: batch };
    const { checkpointed, perBlock, budget } = this.checkpointRule(hooks, this.checkpointing, batch, tapedBlocks);
    if (perBlock * tapedBlocks <= budget) return { tapedBlocks, checkpointed, microBatch: batch };
    const alive = checkpointed ? 1 : tapedBlocks;
    return { tapedBlocks, checkpointed, microBatch: Math.max(1, Math.min(batch, Math.floor((batch * budget) / (perBlock * alive)))) };
  }

  /** Whether the taped blocks run checkpointed: never with taps or side queries (they would see blocks twice). */
  private checkpointTapedBlocks(hooks: readonly Hook[], options: ForwardOptions, batch: number, firstTaped: number): boolean {
    if (firstTaped >= this.blocks.length) return false;
    return this.checkpointRule(hooks, options.checkpointing ?? this.checkpointing, batch, this.blocks.length - firstTaped).checkpointed;
  }

  /**
   * The one rule the plan and the forward share. 'auto' checkpoints when the taped blocks'
   * activations pass the activation budget, and only with two or more taped blocks: one block's
   * recomputation holds the same activations as keeping them.
   */
  private checkpointRule(hooks: readonly Hook[], mode: CheckpointingMode, batch: number, tapedBlocks: number): { checkpointed: boolean; perBlock: number; budget: number } {
    const { dim, heads, mlpRatio } = this.config;
    const perBlock = blockActivationBytes(batch, this.numTokens, dim, heads, mlpRatio);
    const budget = this.activationBudget(hooks);
    const allowed = mode !== 'off' && canCheckpoint(hooks);
    const checkpointed = allowed && (mode === 'on' || (tapedBlocks > 1 && perBlock * tapedBlocks > budget));
    return { checkpointed, perBlock, budget };
  }

  /**
   * The budget left for activations: the checkpoint budget less a step's gradient buffers (each
   * trainable variable's gradient and, under micro-batching, its running sum). Negligible for
   * adapters; for full fine-tuning of ViT-B/16 it is 2 x 344 MB, which with the weights, their copy
   * and Adam's state exhausted the 4 GiB wasm heap at 12-image chunks. At least a quarter remains.
   */
  private activationBudget(hooks: readonly Hook[]): number {
    const budget = this.checkpointBudgetBytes ?? defaultCheckpointBudget();
    const own = collectTensors(this.params).filter((t) => t instanceof tf.Variable && t.trainable);
    const variables = new Set<tf.Tensor>([...own, ...hooks.flatMap((h) => h.trainableVariables())]);
    const gradientBytes = 2 * 4 * [...variables].reduce((n, v) => n + v.size, 0);
    return Math.max(budget / 4, budget - gradientBytes);
  }

  private firstTapedBlock(hooks: readonly Hook[], planning = false): number {
    if (!planning && !isRecordingGradients()) return Infinity;
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
      prefixTokens: this.prefixTokens,
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

let nextModelId = 0;

/** Parameter field -> timm name part, where they differ. */
const PARAM_NAMES: Record<string, string> = {
  patchEmbed: 'patch_embed.proj',
  clsToken: 'cls_token',
  regTokens: 'reg_token',
  posEmbed: 'pos_embed',
  normPre: 'norm_pre',
  fcNorm: 'fc_norm',
  q: 'attn.q',
  k: 'attn.k',
  v: 'attn.v',
  proj: 'attn.proj',
  qNorm: 'attn.q_norm',
  kNorm: 'attn.k_norm',
  fc1: 'mlp.fc1',
  fc2: 'mlp.fc2',
  ls1: 'ls1.gamma',
  ls2: 'ls2.gamma',
};

function wantsTap(hooks: readonly Hook[], point: TapPoint): boolean {
  return hooks.some((h) => h.tap && (!h.tapPoints || h.tapPoints.includes(point)));
}

/**
 * A copy of a parameter tree (plain objects and arrays, as VitParams) with every tensor cloned, so
 * the copy can be fine-tuned, merged into or disposed without touching the original. New tensors:
 * the caller disposes them (or clones inside a tidy and returns them).
 */
export function cloneParams<T>(tree: T): T {
  const copy = (value: unknown): unknown => {
    if (value instanceof tf.Tensor) return tf.clone(value);
    if (Array.isArray(value)) return value.map(copy);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, copy(v)]));
    return value;
  };
  return copy(tree) as T;
}

function collectTensors(value: unknown): tf.Tensor[] {
  if (value instanceof tf.Tensor) return [value];
  if (Array.isArray(value)) return value.flatMap(collectTensors);
  if (value && typeof value === 'object') return Object.values(value).flatMap(collectTensors);
  return [];
}
