import { validateBlockSelection, type MethodOption } from '@vqt/core';

/** AdaptFormer's options: what adapter_config.json's `options` holds. */
export interface AdaptFormerConfig {
  /** Hidden width r of each adapter (down: D -> r, up: r -> D). */
  bottleneck: number;
  /** s in out = x1 + MLP(LN2(x1)) + s * up(ReLU(down(x1))). */
  scale: number;
  /** Dropout after the ReLU, in training only. */
  dropout: number;
  /** Blocks that get an adapter (0-based); all when neither this nor `lastBlocks` is set. */
  blocks?: number[];
  /** Adapt only the last k blocks (the paper's low-memory setting); earlier blocks never enter the tape. */
  lastBlocks?: number;
}

/** The reference recipe (ShoufaChen/AdaptFormer, METHOD.md): bottleneck 64, s 0.1, dropout 0.1, every block. */
export const ADAPTFORMER_DEFAULTS: Readonly<AdaptFormerConfig> = {
  bottleneck: 64,
  scale: 0.1,
  dropout: 0.1,
  blocks: undefined,
  lastBlocks: undefined,
};

export const ADAPTFORMER_OPTIONS: readonly MethodOption[] = [
  { key: 'bottleneck', flag: 'bottleneck', kind: 'int', min: 1, description: 'hidden width of each adapter (default 64)' },
  { key: 'scale', flag: 'scale', kind: 'number', description: 'scale s of the adapter branch (default 0.1)' },
  { key: 'dropout', flag: 'adapter-dropout', kind: 'number', min: 0, max: 0.99, description: 'dropout after the ReLU while training (default 0.1)' },
  { key: 'blocks', flag: 'blocks', kind: 'intList', min: 0, optional: true, description: 'blocks to adapt, 0-based, comma-separated (default all)' },
  { key: 'lastBlocks', flag: 'last-blocks', kind: 'int', min: 1, optional: true, description: 'adapt only the last k blocks; earlier blocks stay off the gradient tape' },
];

/** Cross-field checks beyond the option kinds. */
export function validateAdaptFormerConfig(config: AdaptFormerConfig): void {
  validateBlockSelection(config, 'adaptformer');
}
