/** Which blocks an adapting method adapts: `blocks` (any subset) or `lastBlocks` (the paper's low-memory setting, Fig. 3b). */
export interface BlockSelection {
  blocks?: number[];
  lastBlocks?: number;
}

/** `blocks` and `lastBlocks` are two ways of saying the same thing: one at most, no duplicates. */
export function validateBlockSelection(config: BlockSelection, method: string): void {
  if (config.blocks !== undefined && config.lastBlocks !== undefined) {
    throw new Error(`${method}: give blocks or lastBlocks, not both (blocks ${JSON.stringify(config.blocks)}, lastBlocks ${config.lastBlocks})`);
  }
  if (config.blocks !== undefined) {
    if (config.blocks.length === 0) throw new Error(`${method}.blocks must list at least one block`);
    const seen = new Set<number>();
    for (const b of config.blocks) {
      if (seen.has(b)) throw new Error(`${method}.blocks lists block ${b} twice`);
      seen.add(b);
    }
  }
}

/** The adapted blocks in ascending order, for a backbone of this depth; out-of-range blocks are errors. */
export function resolveAdaptedBlocks(config: BlockSelection, depth: number, method: string): number[] {
  validateBlockSelection(config, method);
  if (config.lastBlocks !== undefined) {
    if (config.lastBlocks > depth) throw new Error(`${method}.lastBlocks is ${config.lastBlocks}, but the backbone has only ${depth} blocks`);
    return Array.from({ length: config.lastBlocks }, (_, i) => depth - config.lastBlocks! + i);
  }
  if (config.blocks === undefined) return Array.from({ length: depth }, (_, i) => i);
  const outside = config.blocks.filter((b) => b >= depth);
  if (outside.length) throw new Error(`${method}.blocks has ${outside.join(', ')}, but the backbone's blocks are 0..${depth - 1}`);
  return [...config.blocks].sort((a, b) => a - b);
}
