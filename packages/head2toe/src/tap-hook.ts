import * as tf from '@tensorflow/tfjs';
import type { Hook, HookContext, TapPoint } from '@vqt/core';
import type { Head2ToePooling } from './config.js';
import { l2NormalizeRows, poolTokens, unitNormalizeRows, type TokenPooling } from './pooling.js';
import { isTokenTap, tapKey, type TapLayout } from './taps.js';

/**
 * A read-only hook that pools and L2-normalises each Head2Toe tap as the backbone produces it and
 * keeps only that small [B, width] piece (ctx.keep): the raw taps ([B, 197, 3072] per block for
 * ViT-B) are freed with their block, so memory does not grow with depth.
 *
 * One instance serves one forward: read features() afterwards, inside the same tf.tidy.
 */
export class Head2ToeTapHook implements Hook {
  readonly name = 'head2toe';
  /** Only the layout's points: core computes 'patchEmbed' and 'finalSequence' only when asked. */
  readonly tapPoints: readonly TapPoint[];
  private readonly byKey: Map<string, TapLayout>;
  private readonly collected = new Map<string, tf.Tensor2D>();
  private readonly normalize: (x: tf.Tensor2D) => tf.Tensor2D;

  /** `poolings` maps a token tap's layout name to how it is pooled (see tokenPoolingFor). */
  constructor(
    private readonly layout: readonly TapLayout[],
    private readonly poolings: ReadonlyMap<string, TokenPooling>,
    pooling: Head2ToePooling,
  ) {
    this.byKey = new Map(layout.map((entry) => [tapKey(entry.point, entry.block), entry]));
    this.tapPoints = [...new Set(layout.map((entry) => entry.point))];
    // Official: zero_aware_normalize; adaptive (earlier rule): torch's F.normalize, kept bit for bit.
    this.normalize = pooling === 'official' ? unitNormalizeRows : l2NormalizeRows;
  }

  trainableVariables(): tf.Variable[] {
    return [];
  }

  tap(point: TapPoint, value: tf.Tensor, ctx: HookContext): void {
    const entry = this.byKey.get(tapKey(point, ctx.block));
    if (!entry) return;
    const piece = tf.tidy(() => {
      const flat = isTokenTap(point) ? poolTokens(value as tf.Tensor3D, this.poolingOf(entry)) : (value as tf.Tensor2D);
      return this.normalize(flat);
    });
    if (piece.shape[1] !== entry.width) {
      piece.dispose();
      throw new Error(`head2toe: tap ${entry.name} gave ${value.shape.join('x')} values, the layout expects width ${entry.width}`);
    }
    this.collected.get(entry.name)?.dispose();
    this.collected.set(entry.name, ctx.keep(piece));
  }

  private poolingOf(entry: TapLayout): TokenPooling {
    const pooling = this.poolings.get(entry.name);
    if (!pooling) throw new Error(`head2toe: no pooling for tap ${entry.name}`);
    return pooling;
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
