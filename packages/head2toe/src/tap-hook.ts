import * as tf from '@tensorflow/tfjs';
import type { Hook, HookContext, TapPoint } from '@vqt/core';
import { l2NormalizeRows, poolTokens } from './pooling.js';
import { HEAD2TOE_TAP_POINTS, tapKey, type TapLayout } from './taps.js';

/**
 * A read-only hook that pools and L2-normalises each Head2Toe tap as the backbone produces it and
 * keeps only that small [B, width] piece (ctx.keep): the raw taps ([B, 197, 3072] per block for
 * ViT-B) are freed with their block, so memory does not grow with depth.
 *
 * One instance serves one forward: read features() afterwards, inside the same tf.tidy.
 */
export class Head2ToeTapHook implements Hook {
  readonly name = 'head2toe';
  readonly tapPoints: readonly TapPoint[] = HEAD2TOE_TAP_POINTS;
  private readonly byKey: Map<string, TapLayout>;
  private readonly collected = new Map<string, tf.Tensor2D>();

  /** `matrices` maps a layout name to its pooling matrix (absent when g = L). */
  constructor(
    private readonly layout: readonly TapLayout[],
    private readonly matrices: ReadonlyMap<string, tf.Tensor2D>,
  ) {
    this.byKey = new Map(layout.map((entry) => [tapKey(entry.point, entry.block), entry]));
  }

  trainableVariables(): tf.Variable[] {
    return [];
  }

  tap(point: TapPoint, value: tf.Tensor, ctx: HookContext): void {
    const entry = this.byKey.get(tapKey(point, ctx.block));
    if (!entry) return;
    const piece = tf.tidy(() => {
      const flat = point === 'finalCls' ? (value as tf.Tensor2D) : poolTokens(value as tf.Tensor3D, this.matrices.get(entry.name));
      return l2NormalizeRows(flat);
    });
    if (piece.shape[1] !== entry.width) {
      piece.dispose();
      throw new Error(`head2toe: tap ${entry.name} gave ${value.shape.join('x')} values, the layout expects width ${entry.width}`);
    }
    this.collected.get(entry.name)?.dispose();
    this.collected.set(entry.name, ctx.keep(piece));
  }

  /** [B, F]: the pieces concatenated in layout order. */
  features(): tf.Tensor2D {
    const missing = this.layout.filter((entry) => !this.collected.has(entry.name)).map((entry) => entry.name);
    if (missing.length > 0) throw new Error(`head2toe: taps not seen during the forward: ${missing.join(', ')}`);
    return tf.concat(
      this.layout.map((entry) => this.collected.get(entry.name)!),
      1,
    ) as tf.Tensor2D;
  }
}
