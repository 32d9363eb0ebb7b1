import * as tf from '@tensorflow/tfjs';
import {
  cloneParams,
  linear,
  mixSeed,
  seededRandom,
  VisionTransformer,
  type BlockParams,
  type Hook,
  type HookContext,
  type HostTensor,
  type LinearName,
  type VitParams,
} from '@vqt/core';
import { LORA_TARGETS } from './config.js';

/** Prefix of LoRA's tensors in adapter files. */
export const LORA_PREFIX = 'lora.';

/** One Linear's delta, stored input-major for core's linear(): a = A^T [in, r], b = B^T [r, out]. */
export interface LoraPair {
  a: tf.Variable<tf.Rank.R2>;
  b: tf.Variable<tf.Rank.R2>;
}

/** [in, out] of each Linear a block has, e.g. fc1: [D, 4D]. */
export type LinearShapes = Record<LinearName, readonly [number, number]>;

export interface LoraHookOptions {
  rank: number;
  alpha: number;
  targets: readonly LinearName[];
  dropout: number;
  /** Adapted blocks, ascending. */
  blocks: readonly number[];
  shapes: LinearShapes;
}

/** The Linears' [in, out] shapes of a backbone (all blocks share them). */
export function linearShapes(vit: VisionTransformer): LinearShapes {
  const block = vit.params.blocks[0];
  return Object.fromEntries(LORA_TARGETS.map((t) => [t, block[t].weight.shape as [number, number]])) as unknown as LinearShapes;
}

/** The two tensor names of one delta in files (PEFT's names, torch [out, in] layout). */
export function loraTensorNames(block: number, target: LinearName): { a: string; b: string } {
  const base = `${LORA_PREFIX}blocks.${block}.${target}`;
  return { a: `${base}.lora_A`, b: `${base}.lora_B` };
}

/**
 * LoRA as a core Hook (linearDelta): (alpha / r) * x A^T B^T is added to the chosen frozen Linears of
 * the chosen blocks. Both products go through core's linear(), which gives trainable weights a
 * gradient without matMul's slow transpose flags.
 */
export class LoraHook implements Hook {
  readonly name = 'lora';
  readonly modules: ReadonlyMap<number, ReadonlyMap<LinearName, LoraPair>>;
  /** alpha / rank. */
  readonly scaling: number;

  private constructor(
    readonly options: LoraHookOptions,
    modules: Map<number, Map<LinearName, LoraPair>>,
  ) {
    this.modules = modules;
    this.scaling = options.alpha / options.rank;
  }

  /**
   * Fresh deltas as PEFT initialises them: A kaiming-uniform(a = sqrt 5), i.e. U(+-1/sqrt(in)),
   * B zero, so the adapted model starts as the frozen one. Deterministic from the seed.
   */
  static initialised(options: LoraHookOptions, seed: number): LoraHook {
    checkOptions(options);
    const r = options.rank;
    const modules = new Map<number, Map<LinearName, LoraPair>>();
    for (const m of options.blocks) {
      const pairs = new Map<LinearName, LoraPair>();
      for (const t of options.targets) {
        const [inputs, outputs] = options.shapes[t];
        const bound = 1 / Math.sqrt(inputs);
        const random = seededRandom(mixSeed(seed, m, LORA_TARGETS.indexOf(t), 0x10a));
        const a = Float32Array.from({ length: inputs * r }, () => (2 * random() - 1) * bound);
        pairs.set(t, makePair(m, t, tf.tensor2d(a, [inputs, r]), tf.zeros([r, outputs])));
      }
      modules.set(m, pairs);
    }
    return new LoraHook(options, modules);
  }

  /**
   * From an adapter file's tensors (PEFT layout: lora_A [r, in], lora_B [out, r]). Tensors of this
   * method that are missing, unexpected or misshapen are errors naming them.
   */
  static fromTensors(options: LoraHookOptions, tensors: ReadonlyMap<string, HostTensor>): LoraHook {
    checkOptions(options);
    const r = options.rank;
    const expected = new Map<string, number[]>();
    for (const m of options.blocks) {
      for (const t of options.targets) {
        const [inputs, outputs] = options.shapes[t];
        const names = loraTensorNames(m, t);
        expected.set(names.a, [r, inputs]).set(names.b, [outputs, r]);
      }
    }
    const unexpected = [...tensors.keys()].filter((key) => key.startsWith(LORA_PREFIX) && !expected.has(key));
    if (unexpected.length) {
      throw new Error(`unexpected tensor ${unexpected[0]} (adapted blocks: ${options.blocks.join(', ')}; targets ${options.targets.join(', ')}; rank ${r})`);
    }
    for (const [name, shape] of expected) {
      const t = tensors.get(name);
      if (!t) throw new Error(`missing tensor ${name}`);
      if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
        throw new Error(`tensor ${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
      }
      if (t.data.some((v) => !Number.isFinite(v))) throw new Error(`tensor ${name} holds NaN or infinite values`);
    }
    const modules = new Map<number, Map<LinearName, LoraPair>>();
    for (const m of options.blocks) {
      const pairs = new Map<LinearName, LoraPair>();
      for (const t of options.targets) {
        const names = loraTensorNames(m, t);
        const a = tensors.get(names.a)!;
        const b = tensors.get(names.b)!;
        pairs.set(
          t,
          makePair(
            m,
            t,
            tf.tidy(() => tf.transpose(tf.tensor2d(a.data, a.shape as [number, number]))),
            tf.tidy(() => tf.transpose(tf.tensor2d(b.data, b.shape as [number, number]))),
          ),
        );
      }
      modules.set(m, pairs);
    }
    return new LoraHook(options, modules);
  }

  trainableVariables(): tf.Variable[] {
    return [...this.modules.values()].flatMap((pairs) => [...pairs.values()].flatMap((p) => [p.a, p.b]));
  }

  /** Blocks before the first adapted one need no backward pass: core keeps them off the tape. */
  firstAdaptedBlock(): number {
    return Math.min(...this.options.blocks);
  }

  parameterCount(): number {
    return this.trainableVariables().reduce((n, v) => n + v.size, 0);
  }

  linearDelta(layer: LinearName, input: tf.Tensor2D, ctx: HookContext): tf.Tensor2D | undefined {
    return this.delta(layer, input, ctx, ctx.training);
  }

  /**
   * The same deltas with nothing to train and no dropout, even in a training step: what a method
   * stacked on a fitted LoRA reads through (a frozen module in eval mode), so features from images
   * and from a cache built in inference agree.
   */
  frozen(): Hook {
    return {
      name: this.name,
      trainableVariables: () => [],
      firstAdaptedBlock: () => this.firstAdaptedBlock(),
      linearDelta: (layer, input, ctx) => this.delta(layer, input, ctx, false),
    };
  }

  private delta(layer: LinearName, input: tf.Tensor2D, ctx: HookContext, dropout: boolean): tf.Tensor2D | undefined {
    const pair = this.modules.get(ctx.block)?.get(layer);
    if (!pair) return undefined;
    let x = input;
    if (dropout && this.options.dropout > 0) {
      x = tf.dropout(x, this.options.dropout, undefined, mixSeed(ctx.seed, ctx.block, LORA_TARGETS.indexOf(layer), 0x10a)) as tf.Tensor2D;
    }
    // Scale the [rows, r] intermediate rather than the [rows, out] delta.
    return linear(tf.mul(linear(x, pair.a), this.scaling) as tf.Tensor2D, pair.b);
  }

  /** The deltas in PEFT's layout (lora_A [r, in], lora_B [out, r]). New tensors: the caller disposes them. */
  exportTensors(): Record<string, tf.Tensor> {
    return tf.tidy(() => {
      const out: Record<string, tf.Tensor> = {};
      for (const [m, pairs] of this.modules) {
        for (const [t, pair] of pairs) {
          const names = loraTensorNames(m, t);
          out[names.a] = tf.transpose(pair.a);
          out[names.b] = tf.transpose(pair.b);
        }
      }
      return out;
    });
  }

  /**
   * The backbone's parameters with every delta folded in, W' = W + (alpha / r) A^T B^T in core's
   * input-major layout (PEFT's merge_and_unload). New tensors; unadapted ones share data with `params`
   * (tf.clone), so disposing either set leaves the other intact.
   */
  mergeParams(params: VitParams): VitParams {
    if (params.blocks.length <= Math.max(...this.options.blocks)) {
      throw new Error(`LoRA adapts block ${Math.max(...this.options.blocks)}, but the backbone has ${params.blocks.length} blocks`);
    }
    // Every parameter is copied (variants included: LayerScale, registers, qk-norm, ...); only the targets change.
    return tf.tidy(() => {
      const copy = cloneParams(params);
      copy.blocks.forEach((block, m) => {
        for (const t of LORA_TARGETS) {
          const pair = this.modules.get(m)?.get(t);
          if (!pair) continue;
          const weight = block[t].weight;
          if (weight.shape[0] !== pair.a.shape[0] || weight.shape[1] !== pair.b.shape[1]) {
            throw new Error(`LoRA delta for block ${m} ${t} is [${pair.a.shape[0]}, ${pair.b.shape[1]}], the backbone's weight is [${weight.shape.join(', ')}]`);
          }
          block[t] = { ...block[t], weight: tf.add(weight, tf.mul(tf.matMul(pair.a, pair.b), this.scaling)) as tf.Tensor2D };
        }
      });
      return copy as unknown as tf.TensorContainer;
    }) as unknown as VitParams;
  }

  /**
   * A new VisionTransformer with the deltas merged into its weights: it runs with no hooks and gives
   * the adapted outputs. The caller disposes it; this hook and `vit` stay usable.
   */
  merge(vit: VisionTransformer): VisionTransformer {
    return new VisionTransformer(vit.config, this.mergeParams(vit.params));
  }

  dispose(): void {
    tf.dispose(this.trainableVariables());
  }
}

function checkOptions(options: LoraHookOptions): void {
  if (options.blocks.length === 0) throw new Error('LoraHook: no blocks to adapt');
  if (options.targets.length === 0) throw new Error('LoraHook: no target Linears');
  if (!Number.isInteger(options.rank) || options.rank < 1) throw new Error(`LoraHook: rank must be a positive integer (got ${options.rank})`);
  if (!(options.alpha > 0)) throw new Error(`LoraHook: alpha must be > 0 (got ${options.alpha})`);
  if (!(options.dropout >= 0 && options.dropout < 1)) throw new Error(`LoraHook: dropout must be in [0, 1) (got ${options.dropout})`);
  for (const t of options.targets) if (!LORA_TARGETS.includes(t)) throw new Error(`LoraHook: unknown target "${t}" (targets: ${LORA_TARGETS.join(', ')})`);
}

/** Variables made from (and owning no copy of) the given tensors, named uniquely per hook. */
function makePair(block: number, target: LinearName, a: tf.Tensor, b: tf.Tensor): LoraPair {
  const unique = `lora.${block}.${target}.${Math.random().toString(36).slice(2, 8)}`;
  const pair = { a: tf.variable(a, true, `${unique}.A`) as tf.Variable<tf.Rank.R2>, b: tf.variable(b, true, `${unique}.B`) as tf.Variable<tf.Rank.R2> };
  tf.dispose([a, b]);
  return pair;
}
