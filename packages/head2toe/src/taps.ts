import { numTokens, type TapPoint, type VitConfig } from '@vqt/core';
import { validateTargetSize } from './config.js';
import { tokenGroups } from './pooling.js';

/** The points Head2Toe reads, per block, in feature order. */
export const BLOCK_TAP_POINTS = ['ln1', 'attn', 'mlpHidden', 'mlpOut'] as const satisfies readonly TapPoint[];
export type BlockTapPoint = (typeof BLOCK_TAP_POINTS)[number];
export const HEAD2TOE_TAP_POINTS: readonly TapPoint[] = ['embed', ...BLOCK_TAP_POINTS, 'finalCls'];

/** Names shared with the PyTorch reference's taps.json. */
const TAP_NAMES: Record<BlockTapPoint, string> = { ln1: 'ln1', attn: 'attn', mlpHidden: 'mlp_hidden', mlpOut: 'mlp_out' };

/** One tap's slice of the feature vector. */
export interface TapLayout {
  /** 'embed', 'block{m}.ln1' | '.attn' | '.mlp_hidden' | '.mlp_out', 'final_cls'. */
  name: string;
  point: TapPoint;
  /** Block index; -1 for 'embed', depth for 'finalCls' (as core's HookContext). */
  block: number;
  /** Values per token (C). */
  channels: number;
  /** Token groups after pooling (g); 1 for finalCls, which is not pooled. */
  groups: number;
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

/** Taps in feature order: embed, then ln1, attn, mlpHidden, mlpOut per block, then finalCls. */
export function featureLayout(geometry: TapGeometry, targetSize: number): TapLayout[] {
  validateTargetSize(targetSize);
  const { dim, depth, tokens } = geometry;
  const hidden = Math.round(dim * geometry.mlpRatio);
  const layout: TapLayout[] = [];
  let offset = 0;
  const add = (name: string, point: TapPoint, block: number, channels: number, pooled: boolean) => {
    const groups = pooled ? tokenGroups(tokens, channels, targetSize) : 1;
    layout.push({ name, point, block, channels, groups, width: groups * channels, offset });
    offset += groups * channels;
  };
  add('embed', 'embed', -1, dim, true);
  for (let m = 0; m < depth; m++) {
    for (const point of BLOCK_TAP_POINTS) add(`block${m}.${TAP_NAMES[point]}`, point, m, point === 'mlpHidden' ? hidden : dim, true);
  }
  add('final_cls', 'finalCls', depth, dim, false);
  return layout;
}

export function layoutWidth(layout: readonly TapLayout[]): number {
  const last = layout[layout.length - 1];
  return last ? last.offset + last.width : 0;
}

export function tapKey(point: TapPoint, block: number): string {
  return `${block}.${point}`;
}
