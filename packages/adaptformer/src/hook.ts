import * as tf from '@tensorflow/tfjs';
import { linear, mixSeed, seededRandom, type Hook, type HookContext, type HostTensor } from '@vqt/core';

/** Prefix of AdaptFormer's tensors in adapter files. */
export const ADAPTFORMER_PREFIX = 'adaptformer.';

/** One block's adapter, stored input-major for core's linear(): down [D, r], up [r, D]. */
export interface AdapterModule {
  down: tf.Variable<tf.Rank.R2>;
  downBias: tf.Variable<tf.Rank.R1>;
  up: tf.Variable<tf.Rank.R2>;
  upBias: tf.Variable<tf.Rank.R1>;
}

export interface AdaptFormerHookOptions {
  dim: number;
  bottleneck: number;
  scale: number;
  dropout: number;
  /** Adapted blocks, ascending. */
  blocks: readonly number[];
}

/** The four tensor names of block m's adapter in files (torch [out, in] layout). */
export function adapterTensorNames(block: number): { downWeight: string; downBias: string; upWeight: string; upBias: string } {
  const base = `${ADAPTFORMER_PREFIX}blocks.${block}`;
  return { downWeight: `${base}.down.weight`, downBias: `${base}.down.bias`, upWeight: `${base}.up.weight`, upBias: `${base}.up.bias` };
}

/**
 * AdaptFormer's parallel adapter as a core Hook (mlpParallel): s * up(ReLU(down(x1))) is added to the
 * block output beside the frozen MLP, for the chosen blocks only.
 */
export class AdaptFormerHook implements Hook {
  readonly name = 'adaptformer';
  readonly modules: ReadonlyMap<number, AdapterModule>;

  private constructor(
    readonly options: AdaptFormerHookOptions,
    modules: Map<number, AdapterModule>,
  ) {
    this.modules = modules;
  }

  /**
   * Fresh adapters as the reference initialises them: down kaiming-uniform(a = sqrt 5), i.e.
   * U(+-1/sqrt(D)) like torch's nn.Linear default; up and both biases zero, so the adapted model
   * starts as the frozen one. Deterministic from the seed.
   */
  static initialised(options: AdaptFormerHookOptions, seed: number): AdaptFormerHook {
    checkOptions(options);
    const { dim, bottleneck } = options;
    const bound = 1 / Math.sqrt(dim);
    const modules = new Map<number, AdapterModule>();
    for (const m of options.blocks) {
      const random = seededRandom(mixSeed(seed, m, 0xadf));
      const down = Float32Array.from({ length: dim * bottleneck }, () => (2 * random() - 1) * bound);
      modules.set(m, makeModule(m, tf.tensor2d(down, [dim, bottleneck]), tf.zeros([bottleneck]), tf.zeros([bottleneck, dim]), tf.zeros([dim])));
    }
    return new AdaptFormerHook(options, modules);
  }

  /**
   * From an adapter file's tensors (torch layout: down.weight [r, D], down.bias [r], up.weight [D, r],
   * up.bias [D]). Tensors of this method that are missing, unexpected or misshapen are errors naming them.
   */
  static fromTensors(options: AdaptFormerHookOptions, tensors: ReadonlyMap<string, HostTensor>): AdaptFormerHook {
    checkOptions(options);
    const { dim, bottleneck: r } = options;
    const expected = new Map<string, number[]>();
    for (const m of options.blocks) {
      const names = adapterTensorNames(m);
      expected.set(names.downWeight, [r, dim]).set(names.downBias, [r]).set(names.upWeight, [dim, r]).set(names.upBias, [dim]);
    }
    const own = [...tensors.keys()].filter((key) => key.startsWith(ADAPTFORMER_PREFIX));
    const unexpected = own.filter((key) => !expected.has(key));
    if (unexpected.length) {
      throw new Error(`unexpected tensor ${unexpected[0]} (adapted blocks: ${options.blocks.join(', ')}; bottleneck ${r})`);
    }
    for (const [name, shape] of expected) {
      const t = tensors.get(name);
      if (!t) throw new Error(`missing tensor ${name}`);
      if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
        throw new Error(`tensor ${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
      }
      if (t.data.some((v) => !Number.isFinite(v))) throw new Error(`tensor ${name} holds NaN or infinite values`);
    }
    const modules = new Map<number, AdapterModule>();
    for (const m of options.blocks) {
      const names = adapterTensorNames(m);
      const get = (name: string) => tensors.get(name)!;
      modules.set(
        m,
        makeModule(
          m,
          tf.tidy(() => tf.transpose(tf.tensor2d(get(names.downWeight).data, [r, dim]))),
          tf.tensor1d(get(names.downBias).data),
          tf.tidy(() => tf.transpose(tf.tensor2d(get(names.upWeight).data, [dim, r]))),
          tf.tensor1d(get(names.upBias).data),
        ),
      );
    }
    return new AdaptFormerHook(options, modules);
  }

  trainableVariables(): tf.Variable[] {
    return [...this.modules.values()].flatMap((a) => [a.down, a.downBias, a.up, a.upBias]);
  }

  /** Blocks before the first adapter need no backward pass: core keeps them off the tape. */
  firstAdaptedBlock(): number {
    return Math.min(...this.options.blocks);
  }

  parameterCount(): number {
    return this.trainableVariables().reduce((n, v) => n + v.size, 0);
  }

  mlpParallel(x1: tf.Tensor2D, ctx: HookContext): tf.Tensor2D | undefined {
    return this.adapt(x1, ctx, ctx.training);
  }

  /**
   * The same adapters with nothing to train and no dropout, even in a training step: what a method
   * stacked on a fitted AdaptFormer reads through (a frozen module in eval mode), so features from
   * images and from a cache built in inference agree.
   */
  frozen(): Hook {
    return {
      name: this.name,
      trainableVariables: () => [],
      firstAdaptedBlock: () => this.firstAdaptedBlock(),
      mlpParallel: (x1, ctx) => this.adapt(x1, ctx, false),
    };
  }

  private adapt(x1: tf.Tensor2D, ctx: HookContext, dropout: boolean): tf.Tensor2D | undefined {
    const module = this.modules.get(ctx.block);
    if (!module) return undefined;
    let hidden = tf.relu(linear(x1, module.down, module.downBias));
    if (dropout && this.options.dropout > 0) {
      hidden = tf.dropout(hidden, this.options.dropout, undefined, mixSeed(ctx.seed, ctx.block, 0xadf)) as tf.Tensor2D;
    }
    return tf.mul(linear(hidden, module.up, module.upBias), this.options.scale) as tf.Tensor2D;
  }

  /** The adapters in the file layout (torch [out, in]). New tensors: the caller disposes them. */
  exportTensors(): Record<string, tf.Tensor> {
    return tf.tidy(() => {
      const out: Record<string, tf.Tensor> = {};
      for (const [m, a] of this.modules) {
        const names = adapterTensorNames(m);
        out[names.downWeight] = tf.transpose(a.down);
        out[names.downBias] = tf.clone(a.downBias);
        out[names.upWeight] = tf.transpose(a.up);
        out[names.upBias] = tf.clone(a.upBias);
      }
      return out;
    });
  }

  dispose(): void {
    tf.dispose(this.trainableVariables());
  }
}

function checkOptions(options: AdaptFormerHookOptions): void {
  if (options.blocks.length === 0) throw new Error('AdaptFormerHook: no blocks to adapt');
  if (!Number.isInteger(options.bottleneck) || options.bottleneck < 1) throw new Error(`AdaptFormerHook: bottleneck must be a positive integer (got ${options.bottleneck})`);
  if (!(options.dropout >= 0 && options.dropout < 1)) throw new Error(`AdaptFormerHook: dropout must be in [0, 1) (got ${options.dropout})`);
}

/** Variables made from (and owning no copy of) the given tensors, named uniquely per hook. */
function makeModule(block: number, down: tf.Tensor, downBias: tf.Tensor, up: tf.Tensor, upBias: tf.Tensor): AdapterModule {
  const unique = `adaptformer.${block}.${Math.random().toString(36).slice(2, 8)}`;
  const variable = <R extends tf.Rank>(t: tf.Tensor, name: string): tf.Variable<R> => {
    const v = tf.variable(t, true, `${unique}.${name}`) as tf.Variable<R>;
    t.dispose();
    return v;
  };
  return {
    down: variable<tf.Rank.R2>(down, 'down'),
    downBias: variable<tf.Rank.R1>(downBias, 'downBias'),
    up: variable<tf.Rank.R2>(up, 'up'),
    upBias: variable<tf.Rank.R1>(upBias, 'upBias'),
  };
}
