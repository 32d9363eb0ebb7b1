import type { LinearName, MethodOption } from '@vqt/core';
import { validateBlockSelection } from '@vqt/core';

/** The six Linears of a ViT block LoRA can adapt (q, k, v: the thirds of timm's fused qkv). */
export const LORA_TARGETS: readonly LinearName[] = ['q', 'k', 'v', 'proj', 'fc1', 'fc2'];

/** LoRA's options: what adapter_config.json's `options` holds. */
export interface LoraConfig {
  /** Rank r of each delta (A: [r, in], B: [out, r]). */
  rank: number;
  /** The delta is scaled by alpha / r (PEFT's lora_alpha). */
  alpha: number;
  /** Which Linears get a delta. */
  targets: LinearName[];
  /** Dropout on the delta's input x, in training only (PEFT's lora_dropout). */
  dropout: number;
  /** Blocks that get deltas (0-based); all when neither this nor `lastBlocks` is set. */
  blocks?: number[];
  /** Adapt only the last k blocks; earlier blocks never enter the tape. */
  lastBlocks?: number;
}

/** PEFT's usual ViT setting: rank 8, alpha 8, the query and value projections of every block. */
export const LORA_DEFAULTS: Readonly<LoraConfig> = {
  rank: 8,
  alpha: 8,
  targets: ['q', 'v'],
  dropout: 0,
  blocks: undefined,
  lastBlocks: undefined,
};

export const LORA_OPTIONS: readonly MethodOption[] = [
  { key: 'rank', flag: 'rank', kind: 'int', min: 1, description: 'rank r of each low-rank delta (default 8)' },
  { key: 'alpha', flag: 'alpha', kind: 'number', min: 0, description: 'deltas are scaled by alpha / rank (default 8)' },
  { key: 'targets', flag: 'targets', kind: 'stringList', choices: LORA_TARGETS, description: 'Linears to adapt, comma-separated, of q,k,v,proj,fc1,fc2 (default q,v)' },
  { key: 'dropout', flag: 'lora-dropout', kind: 'number', min: 0, max: 0.99, description: "dropout on the deltas' input while training (default 0)" },
  { key: 'blocks', flag: 'blocks', kind: 'intList', min: 0, optional: true, description: 'blocks to adapt, 0-based, comma-separated (default all)' },
  { key: 'lastBlocks', flag: 'last-blocks', kind: 'int', min: 1, optional: true, description: 'adapt only the last k blocks; earlier blocks stay off the gradient tape' },
];

/** Cross-field checks beyond the option kinds. */
export function validateLoraConfig(config: LoraConfig): void {
  if (!(config.alpha > 0)) throw new Error(`lora.alpha must be > 0 (got ${config.alpha})`);
  if (config.targets.length === 0) throw new Error('lora.targets must name at least one of q, k, v, proj, fc1, fc2');
  const seen = new Set<string>();
  for (const t of config.targets) {
    if (seen.has(t)) throw new Error(`lora.targets lists ${t} twice`);
    seen.add(t);
  }
  validateBlockSelection(config, 'lora');
}
