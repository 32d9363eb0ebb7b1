import * as tf from '@tensorflow/tfjs';
import { mixSeed, seededRandom, untaped, type Hook, type HookContext, type HostTensor } from '@vqt/core';
import { defaultInitRange, resolveVqtConfig, type VqtConfig } from './config.js';
import { namedVariable } from './variables.js';

/** Separates the dropout streams of this hook from other hooks seeded from the same step. */
const DROPOUT_STREAM = 0x767174; // 'vqt'

export interface VqtHookShape {
  depth: number;
  dim: number;
  /** Patch size, for the default init range. */
  patchSize: number;
}

/**
 * VQT's per-block query tokens as a side-query hook: block m's queries P_m [T, D] attend to the
 * block's own tokens and go through the rest of the block; the tokens never see them.
 *
 * One variable per block ([T, D]) rather than one [depth, T, D]: each block's gradient then lands
 * in its own variable with no slice/pad in the backward pass. The adapter stacks them.
 */
export class VqtHook implements Hook {
  readonly name = 'vqt';
  readonly config: VqtConfig;
  readonly depth: number;
  readonly dim: number;
  /** Block m's queries [T, D]. */
  readonly queries: tf.Variable[];
  /** The init bound used: config.initRange, or VPT's sqrt(6 / (3 p^2 + D)). */
  readonly initRange: number;
  private outputs: (tf.Tensor3D | undefined)[] = [];

  constructor(shape: VqtHookShape, config: Partial<VqtConfig> = {}) {
    this.config = resolveVqtConfig(config);
    this.depth = shape.depth;
    this.dim = shape.dim;
    const range = this.config.initRange ?? defaultInitRange(shape.patchSize, shape.dim);
    this.initRange = range;
    const { queries: T, seed } = this.config;
    this.queries = Array.from({ length: shape.depth }, (_, m) => {
      // Host PRNG: the same values on every backend.
      const random = seededRandom(mixSeed(seed, m, 0x9e7));
      const values = Float32Array.from({ length: T * shape.dim }, () => (2 * random() - 1) * range);
      return namedVariable(tf.tensor2d(values, [T, shape.dim]), `vqt.queries.${m}`);
    });
  }

  get numQueries(): number {
    return this.config.queries;
  }

  trainableVariables(): tf.Variable[] {
    return this.queries;
  }

  sideQueries(ctx: HookContext): tf.Tensor2D | tf.Tensor3D {
    if (ctx.depth !== this.depth || ctx.dim !== this.dim) {
      throw new Error(`vqt: queries were made for depth ${this.depth}, dim ${this.dim}; the backbone has depth ${ctx.depth}, dim ${ctx.dim}`);
    }
    const P = this.queries[ctx.block] as tf.Tensor2D;
    const rate = this.config.dropout;
    if (!ctx.training || rate === 0) return P;
    // Per-example mask, kept off the tape: it is a constant of the step, not a function of P.
    const mask = untaped(() =>
      tf.tidy(() => {
        const uniform = tf.randomUniform([ctx.batchSize, this.numQueries, this.dim], 0, 1, 'float32', mixSeed(ctx.seed, ctx.block, DROPOUT_STREAM));
        return tf.div(tf.floor(tf.add(uniform, 1 - rate)), 1 - rate);
      }),
    );
    return tf.mul(tf.expandDims(P, 0), mask) as tf.Tensor3D;
  }

  sideQueryOutput(output: tf.Tensor3D, ctx: HookContext): void {
    this.outputs[ctx.block] = ctx.keep(output);
  }

  /**
   * The query outputs Z'_m [B, T, D] of the last forward (or replay), in block order; clears them.
   * They belong to the scope the forward ran in.
   */
  takeOutputs(): tf.Tensor3D[] {
    const outputs = this.outputs;
    this.outputs = [];
    if (outputs.length !== this.depth || outputs.some((o) => o === undefined)) {
      throw new Error(`vqt: expected query outputs from all ${this.depth} blocks; run vit.forward or vit.replaySideQueries with this hook first`);
    }
    return outputs as tf.Tensor3D[];
  }

  /** All queries stacked [depth, T, D] (the adapter's `vqt.queries`); the caller disposes it. */
  stackedQueries(): tf.Tensor3D {
    return tf.stack(this.queries) as tf.Tensor3D;
  }

  /** Sets the queries from a [depth, T, D] array. */
  setQueries(values: HostTensor | tf.Tensor): void {
    const shape = values.shape;
    const expected = [this.depth, this.numQueries, this.dim];
    if (shape.length !== 3 || shape.some((s, i) => s !== expected[i])) {
      throw new Error(`vqt: queries must be [${expected.join(', ')}], got [${shape.join(', ')}]`);
    }
    const data = values instanceof tf.Tensor ? (values.dataSync() as Float32Array) : values.data;
    const perBlock = this.numQueries * this.dim;
    this.queries.forEach((q, m) => {
      tf.tidy(() => q.assign(tf.tensor2d(data.subarray(m * perBlock, (m + 1) * perBlock), [this.numQueries, this.dim])));
    });
  }

  dispose(): void {
    this.outputs = [];
    tf.dispose(this.queries);
  }
}
