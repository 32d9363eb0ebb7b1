import { numTokens, type TapPoint, type VitConfig } from '@vqt/core';
import { DEFAULT_POOLING, validatePooling, validateTargetSize, type Head2ToePooling } from './config.js';
import { adaptivePoolRanges, officialPoolRanges, officialPoolSize, officialTokenGroups, tokenGroups, type TokenRange } from './pooling.js';

/** The points Head2Toe reads per block, in feature order (both rules). */
export const BLOCK_TAP_POINTS = ['ln1', 'attn', 'mlpHidden', 'mlpOut'] as const satisfies readonly TapPoint[];
export type BlockTapPoint = (typeof BLOCK_TAP_POINTS)[number];
/** Every point the official rule reads. */
export const HEAD2TOE_TAP_POINTS: readonly TapPoint[] = ['patchEmbed', 'embed', ...BLOCK_TAP_POINTS, 'finalSequence', 'finalCls'];
/** Every point the adaptive (earlier) rule reads. */
export const ADAPTIVE_TAP_POINTS: readonly TapPoint[] = ['embed', ...BLOCK_TAP_POINTS, 'finalCls'];

/**
 * Tap names. Official: the names of google-research/head2toe's ViT-B/16 config (the TF-Hub module's
 * outputs), also used by the PyTorch reference's taps.json. Adaptive: this package's earlier names.
 */
const OFFICIAL_BLOCK_NAMES: Record<BlockTapPoint, string> = { ln1: 'pre_attn', attn: 'attn', mlpHidden: 'mlp_1', mlpOut: 'mlp_2' };
const ADAPTIVE_BLOCK_NAMES: Record<BlockTapPoint, string> = { ln1: 'ln1', attn: 'attn', mlpHidden: 'mlp_hidden', mlpOut: 'mlp_out' };

/** One tap's slice of the feature vector. */
export interface TapLayout {
  /**
   * Official: 'root_output_with_cls', 'position_embedded_input', 'encoder_{m}_pre_attn' | '_attn' |
   * '_mlp_1' | '_mlp_2', 'encoded_sequence', 'cls_embedded'. Adaptive: 'embed',
   * 'block{m}.ln1' | '.attn' | '.mlp_hidden' | '.mlp_out', 'final_cls'.
   */
  name: string;
  point: TapPoint;
  /** Block index; -1 for 'patchEmbed' and 'embed', depth for 'finalSequence' and 'finalCls' (as core's HookContext). */
  block: number;
  /** Values per token (C). */
  channels: number;
  /** Token groups after pooling (g); 1 for finalCls, which is not pooled. */
  groups: number;
  /** Official token taps only: tokens per group (the official pool_size); 0 = the mean over all tokens. */
  poolSize?: number;
  /** g * C. */
  width: number;
  offset: number;
}

/** What the layout depends on: the ViT's widths, depth and token count. */
export interface TapGeometry {
  dim: number;
  depth: number;
  mlpRatio: number;
  /** L = 1 + number of patches. */
  tokens: number;
}

export function geometryOf(config: VitConfig): TapGeometry {
  return { dim: config.dim, depth: config.depth, mlpRatio: config.mlpRatio, tokens: numTokens(config) };
}

/** Whether a point gives tokens [B, L, C] to pool (every Head2Toe tap but the final CLS). */
export function isTokenTap(point: TapPoint): boolean {
  return point !== 'finalCls';
}

/**
 * Taps in feature order.
 * Official: root_output_with_cls, position_embedded_input, then per block pre_attn, attn, mlp_1,
 * mlp_2, then encoded_sequence and cls_embedded. (The official config lists them as a Python set,
 * so its order is arbitrary; each tap is normalised on its own, so order does not change the method.)
 * Adaptive: embed, then ln1, attn, mlp_hidden, mlp_out per block, then final_cls.
 */
export function featureLayout(geometry: TapGeometry, targetSize: number, pooling: Head2ToePooling = DEFAULT_POOLING): TapLayout[] {
  validateTargetSize(targetSize);
  validatePooling(pooling);
  const { dim, depth, tokens } = geometry;
  const hidden = Math.round(dim * geometry.mlpRatio);
  const official = pooling === 'official';
  const layout: TapLayout[] = [];
  let offset = 0;
  const add = (name: string, point: TapPoint, block: number, channels: number) => {
    let groups = 1;
    let poolSize: number | undefined;
    if (isTokenTap(point)) {
      if (official) {
        poolSize = officialPoolSize(tokens, channels, targetSize);
        groups = officialTokenGroups(tokens, channels, targetSize);
      } else {
        groups = tokenGroups(tokens, channels, targetSize);
      }
    }
    layout.push({ name, point, block, channels, groups, ...(poolSize !== undefined ? { poolSize } : {}), width: groups * channels, offset });
    offset += groups * channels;
  };
  const channelsOf = (point: BlockTapPoint) => (point === 'mlpHidden' ? hidden : dim);
  if (official) {
    add('root_output_with_cls', 'patchEmbed', -1, dim);
    add('position_embedded_input', 'embed', -1, dim);
    for (let m = 0; m < depth; m++) {
      for (const point of BLOCK_TAP_POINTS) add(`encoder_${m}_${OFFICIAL_BLOCK_NAMES[point]}`, point, m, channelsOf(point));
    }
    add('encoded_sequence', 'finalSequence', depth, dim);
    add('cls_embedded', 'finalCls', depth, dim);
  } else {
    add('embed', 'embed', -1, dim);
    for (let m = 0; m < depth; m++) {
      for (const point of BLOCK_TAP_POINTS) add(`block${m}.${ADAPTIVE_BLOCK_NAMES[point]}`, point, m, channelsOf(point));
    }
    add('final_cls', 'finalCls', depth, dim);
  }
  return layout;
}

/** The token ranges a token tap's groups average (official: consecutive, remainder dropped; adaptive: may overlap). */
export function tapTokenRanges(entry: TapLayout, tokens: number): TokenRange[] {
  if (!isTokenTap(entry.point)) throw new Error(`head2toe: tap ${entry.name} is not pooled over tokens`);
  return entry.poolSize !== undefined ? officialPoolRanges(tokens, entry.poolSize) : adaptivePoolRanges(tokens, entry.groups);
}

export function layoutWidth(layout: readonly TapLayout[]): number {
  const last = layout[layout.length - 1];
  return last ? last.offset + last.width : 0;
}

export function tapKey(point: TapPoint, block: number): string {
  return `${block}.${point}`;
}
