import * as tf from '@tensorflow/tfjs';
import { mixSeed, seededRandom, untaped, type Hook, type HookContext, type HostTensor } from '@vqt/core';
import { defaultInitRange, promptLayout, resolveVptConfig, type PromptLayout, type VptConfig } from './config.js';

/** Separates this hook's dropout stream from other hooks seeded by the same step. */
const DROPOUT_STREAM = 0x767074; // 'vpt'

export interface VptHookShape {
  depth: number;
  dim: number;
  /** Patch size, for the default init range. */
  patchSize: number;
}

/**
 * VPT's prompt tokens as a token-adapting hook. Before a prompted block the prompts go right after
 * CLS, [CLS, P, patches], with no position embedding; they produce queries, keys and values like
 * any token, so every original token sees them.
 *   Deep: block m gets its own P_m; afterBlock drops the prompt outputs, so the next block starts
 *         from [CLS, patches] and gets fresh prompts.
 *   Shallow: one P inserted before the first prompted block and carried; dropped after the last block.
 * Core tapes the backbone only from firstAdaptedBlock() on (depth - lastBlocks), and side queries of
 * a method stacked on this one read LN1 of the prompt-extended sequence.
 *
 * One variable per prompt set ([T, D]) rather than one [sets, T, D]: each block's gradient lands in its
 * own variable with no slice or pad in the backward pass. Files hold them stacked.
 */
export class VptHook implements Hook {
  readonly name = 'vpt';
  readonly config: VptConfig;
  readonly depth: number;
  readonly dim: number;
  readonly layout: PromptLayout;
  /** The prompt sets in block order: deep, block firstBlock + i's; shallow, the single set. */
  readonly prompts: tf.Variable<tf.Rank.R2>[];
  /** Half-width of the uniform init used. */
  readonly initRange: number;

  /** `config.seed` (default 0) seeds the init. */
  constructor(shape: VptHookShape, config: Partial<VptConfig> = {}) {
    this.config = resolveVptConfig(config);
    const seed = this.config.seed ?? 0;
    this.depth = shape.depth;
    this.dim = shape.dim;
    this.layout = promptLayout(this.config, shape.depth);
    const range = this.config.initRange ?? defaultInitRange(shape.patchSize, shape.dim);
    this.initRange = range;
    const T = this.config.prompts;
    this.prompts = Array.from({ length: this.layout.promptSets }, (_, i) => {
      // Host PRNG: the same values on every backend.
      const random = seededRandom(mixSeed(seed, this.layout.firstBlock + i, 0x9e7));
      const values = Float32Array.from({ length: T * shape.dim }, () => (2 * random() - 1) * range);
      return tf.tidy(() => tf.variable(tf.tensor2d(values, [T, shape.dim]), true, freshVariableName(`vpt.prompts.${i}`)));
    });
  }

  get numPrompts(): number {
    return this.config.prompts;
  }

  trainableVariables(): tf.Variable[] {
    return this.prompts;
  }

  firstAdaptedBlock(): number {
    return this.layout.firstBlock;
  }

  beforeBlock(tokens: tf.Tensor3D, ctx: HookContext): tf.Tensor3D {
    this.checkContext(ctx);
    const { firstBlock } = this.layout;
    const inserts = this.config.deep ? ctx.block >= firstBlock : ctx.block === firstBlock;
    if (!inserts) return tokens;
    const [batch, length, dim] = tokens.shape;
    const P = this.prompts[this.config.deep ? ctx.block - firstBlock : 0];
    const perImage = this.withDropout(tf.tile(tf.expandDims(P, 0), [batch, 1, 1]) as tf.Tensor3D, ctx);
    const cls = tf.slice(tokens, [0, 0, 0], [batch, 1, dim]);
    const rest = tf.slice(tokens, [0, 1, 0], [batch, length - 1, dim]);
    return tf.concat([cls, perImage, rest], 1);
  }

  afterBlock(tokens: tf.Tensor3D, ctx: HookContext): tf.Tensor3D {
    const drops = this.config.deep ? ctx.block >= this.layout.firstBlock : ctx.block === ctx.depth - 1;
    if (!drops) return tokens;
    const [batch, length, dim] = tokens.shape;
    const T = this.numPrompts;
    if (length < 1 + T) throw new Error(`vpt: block ${ctx.block} output has ${length} tokens, fewer than CLS + ${T} prompts`);
    const cls = tf.slice(tokens, [0, 0, 0], [batch, 1, dim]);
    const rest = tf.slice(tokens, [0, 1 + T, 0], [batch, length - 1 - T, dim]);
    return tf.concat([cls, rest], 1);
  }

  /** All prompt sets stacked, [sets, T, D] (the adapter's `vpt.prompts`); the caller disposes it. */
  stackedPrompts(): tf.Tensor3D {
    return tf.stack(this.prompts) as tf.Tensor3D;
  }

  /** Sets the prompts from a [sets, T, D] array (`vpt.prompts`); `name` labels errors (a file and tensor). */
  setPrompts(values: HostTensor | tf.Tensor, name = 'vpt.prompts'): void {
    const expected = [this.layout.promptSets, this.numPrompts, this.dim];
    const shape = values.shape;
    if (shape.length !== 3 || shape.some((s, i) => s !== expected[i])) {
      const what = this.config.deep ? `${this.layout.promptSets} prompted blocks` : 'shallow prompts';
      throw new Error(`${name} must be [${expected.join(', ')}] (${what}, ${this.numPrompts} prompts, dim ${this.dim}), got [${shape.join(', ')}]`);
    }
    const data = values instanceof tf.Tensor ? (values.dataSync() as Float32Array) : values.data;
    if (!data.every(Number.isFinite)) throw new Error(`${name} holds NaN or infinite values`);
    const perSet = this.numPrompts * this.dim;
    this.prompts.forEach((P, i) => tf.tidy(() => P.assign(tf.tensor2d(data.subarray(i * perSet, (i + 1) * perSet), [this.numPrompts, this.dim]))));
  }

  /**
   * This hook frozen, for a method stacked on it: no trainable variables (so core keeps the backbone
   * off the tape) and no prompt dropout even in a training forward, so the adapted features it hands
   * to the method on top are deterministic (a feature cache of them stays valid). Shares the prompts.
   */
  frozen(): Hook {
    const inference = (ctx: HookContext): HookContext => ({ ...ctx, training: false });
    return {
      name: this.name,
      trainableVariables: () => [],
      firstAdaptedBlock: () => this.firstAdaptedBlock(),
      beforeBlock: (tokens, ctx) => this.beforeBlock(tokens, inference(ctx)),
      afterBlock: (tokens, ctx) => this.afterBlock(tokens, inference(ctx)),
    };
  }

  parameterCount(): number {
    return this.prompts.reduce((n, P) => n + P.size, 0);
  }

  dispose(): void {
    tf.dispose(this.prompts);
  }

  /** Per image and element (torch's nn.Dropout on the expanded prompts); the mask is a constant of the step. */
  private withDropout(prompts: tf.Tensor3D, ctx: HookContext): tf.Tensor3D {
    const rate = this.config.dropout;
    if (!ctx.training || rate === 0) return prompts;
    const mask = untaped(() =>
      tf.tidy(() => {
        const uniform = tf.randomUniform(prompts.shape, 0, 1, 'float32', mixSeed(ctx.seed, ctx.block, DROPOUT_STREAM));
        return tf.div(tf.floor(tf.add(uniform, 1 - rate)), 1 - rate);
      }),
    );
    return tf.mul(prompts, mask);
  }

  private checkContext(ctx: HookContext): void {
    if (ctx.depth !== this.depth || ctx.dim !== this.dim) {
      throw new Error(`vpt: prompts were made for depth ${this.depth}, dim ${this.dim}; the backbone has depth ${ctx.depth}, dim ${ctx.dim}`);
    }
  }
}

/**
 * tfjs refuses a second live variable with the same name, so a second model in one process (tests,
 * a grid search) gets a numbered suffix. Files never use these names.
 */
function freshVariableName(base: string): string {
  const taken = tf.engine().registeredVariables;
  if (!(base in taken)) return base;
  for (let i = 1; ; i++) if (!(`${base}#${i}` in taken)) return `${base}#${i}`;
}
