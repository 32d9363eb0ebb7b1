import type * as tf from '@tensorflow/tfjs';

/**
 * The Hook interface: the only way a plugin touches the backbone.
 *
 * Points, in the order a block runs them (x is the token sequence [B, L, D]):
 *   beforeBlock(x) -> norm1 -> attention (linearDelta 'q' | 'k' | 'v' | 'proj') -> residual
 *   -> norm2 -> mlp (linearDelta 'fc1' | 'fc2') (+ mlpParallel) -> residual -> afterBlock(x)
 *   side queries: extra rows attending to the block's own tokens (keys/values only from them),
 *   then through the rest of the block; the tokens never see them.
 *   taps: read-only views of intermediate values.
 *
 * A hook that implements beforeBlock, afterBlock, linearDelta or mlpParallel adapts the tokens;
 * when such a hook has trainable variables the backbone from its first block on is recorded for
 * gradients. Otherwise (taps, side queries) the backbone runs off the gradient tape and only
 * the hook's own computations are recorded.
 */
export interface Hook {
  readonly name: string;
  /** Variables the hook trains. Core keeps every computation none of them reach off the tape. */
  trainableVariables(): tf.Variable[];
  /** First block this hook adapts (defaults to 0); blocks before it never enter the tape. */
  firstAdaptedBlock?(): number;

  beforeBlock?(tokens: tf.Tensor3D, ctx: HookContext): tf.Tensor3D;
  afterBlock?(tokens: tf.Tensor3D, ctx: HookContext): tf.Tensor3D;
  /** A delta added to a frozen Linear's output: input [rows, in] -> [rows, out]. */
  linearDelta?(layer: LinearName, input: tf.Tensor2D, ctx: HookContext): tf.Tensor2D | undefined;
  /** A module in parallel with the MLP: input x1 [rows, D] (the MLP's residual input); output added to the block output. */
  mlpParallel?(x1: tf.Tensor2D, ctx: HookContext): tf.Tensor2D | undefined;
  /** Extra query rows for this block: [T, D] shared by the batch or [B, T, D]. */
  sideQueries?(ctx: HookContext): tf.Tensor2D | tf.Tensor3D | undefined;
  /** The side queries after the whole block, [B, T, D] (no final norm). */
  sideQueryOutput?(output: tf.Tensor3D, ctx: HookContext): void;
  /** A read-only view. Token taps (and 'finalSequence') are [B, L, C]; 'finalCls' is [B, D]. */
  tap?(point: TapPoint, value: tf.Tensor, ctx: HookContext): void;
  /** Which tap points this hook wants; core skips computing the others. Default: all. */
  readonly tapPoints?: readonly TapPoint[];
}

/** The frozen Linear layers of a block that `linearDelta` can add to (LoRA's targets). */
export type LinearName = 'q' | 'k' | 'v' | 'proj' | 'fc1' | 'fc2';

/**
 * Token taps are the whole sequence the blocks see: [CLS, registers, patches] (ctx.prefixTokens).
 * patchEmbed: patch embeddings with CLS (and registers) prepended, before the position embedding (ctx.block = -1).
 * embed: block 0's input (after the position embedding and, with config.preNorm, norm_pre; ctx.block = -1).
 * ln1: norm1 output; attn: proj(attention) before the residual; mlpHidden: GELU(fc1(.));
 * mlpOut: fc2 output before the residual; blockOut: the block output;
 * finalSequence: the final normalised sequence [B, L, D] (ctx.block = depth); finalCls: the image feature [B, D], the final
 * normalised CLS, or with config.globalPool 'avg' the average of the patch tokens (after fc_norm when config.fcNorm).
 * patchEmbed and finalSequence cost extra work, so core computes them only when a hook asks for them.
 */
export type TapPoint = 'patchEmbed' | 'embed' | 'ln1' | 'attn' | 'mlpHidden' | 'mlpOut' | 'blockOut' | 'finalSequence' | 'finalCls';

/** Where in the model a hook is called, and for which step. */
export interface HookContext {
  /** Block index, -1 for 'patchEmbed' and 'embed', depth for 'finalSequence' and 'finalCls'. */
  readonly block: number;
  readonly depth: number;
  readonly dim: number;
  /**
   * Tokens before the patches in the sequences hooks see: CLS, then the register tokens
   * (1 + config.registerTokens). Absent means 1.
   */
  readonly prefixTokens?: number;
  readonly batchSize: number;
  readonly training: boolean;
  /** A seed for this step's randomness (dropout); combine with the block index. */
  readonly seed: number;
  /** Keeps a tensor the hook stores past the block's internal tf.tidy (it joins the caller's scope). */
  keep<T extends tf.Tensor>(tensor: T): T;
}

/** Whether the hook changes the backbone's tokens (then it can be the base VQT stacks on). */
export function adaptsTokens(hook: Hook): boolean {
  return Boolean(hook.beforeBlock || hook.afterBlock || hook.linearDelta || hook.mlpParallel);
}
