/** VPT's options: what adapter_config.json's `options` holds for `vpt` and `vpt-shallow`. */
export interface VptConfig {
  /** T: prompt tokens per prompted block (deep) or in all (shallow). */
  prompts: number;
  /** VPT-Deep (fresh prompts before every prompted block) or VPT-Shallow (one set, carried). */
  deep: boolean;
  /** Prompt dropout while training (per image and element, inverted scaling). */
  dropout: number;
  /**
   * Prompts only in the last k blocks (the paper's low-memory setting): the blocks before them
   * run frozen and off the gradient tape. Deep: k prompt sets; shallow: inserted before block
   * depth - k. Undefined: every block.
   */
  lastBlocks?: number;
  /** Half-width of the uniform init; undefined: VPT's sqrt(6 / (3 p^2 + D)). */
  initRange?: number;
  /** Seed of the prompt init (mixed with the block index); a fit defaults it to the training seed and saves the one used. */
  seed?: number;
}

export const DEFAULT_VPT_CONFIG: Readonly<VptConfig> = Object.freeze({ prompts: 10, deep: true, dropout: 0.1, lastBlocks: undefined, initRange: undefined, seed: undefined });

export const DEFAULT_VPT_SHALLOW_CONFIG: Readonly<VptConfig> = Object.freeze({ ...DEFAULT_VPT_CONFIG, deep: false });

/** VPT's prompt init bound sqrt(6 / (3 p^2 + D)) (xavier-uniform over a p x p patch and D): 0.0625 for ViT-B/16. */
export function defaultInitRange(patchSize: number, dim: number): number {
  return Math.sqrt(6 / (3 * patchSize * patchSize + dim));
}

/** Which blocks get prompts in a backbone of `depth` blocks. */
export interface PromptLayout {
  /** First prompted block (0 unless lastBlocks is set): blocks before it never enter the tape. */
  firstBlock: number;
  /** Rows of `vpt.prompts`: depth - firstBlock (deep) or 1 (shallow). */
  promptSets: number;
}

export function promptLayout(config: Pick<VptConfig, 'deep' | 'lastBlocks'>, depth: number): PromptLayout {
  const blocks = config.lastBlocks ?? depth;
  if (!Number.isInteger(blocks) || blocks < 1 || blocks > depth) {
    throw new Error(`vpt: lastBlocks must be an integer in 1..${depth} for a backbone of depth ${depth} (got ${config.lastBlocks})`);
  }
  return { firstBlock: depth - blocks, promptSets: config.deep ? blocks : 1 };
}

/** Checks a full config (values a MethodSpec's option kinds do not cover); throws naming the field. */
export function validateVptConfig(config: VptConfig): void {
  if (!Number.isInteger(config.prompts) || config.prompts < 1) throw new Error(`vpt.prompts must be a positive integer (got ${config.prompts})`);
  if (typeof config.deep !== 'boolean') throw new Error(`vpt.deep must be true or false (got ${JSON.stringify(config.deep)})`);
  if (typeof config.dropout !== 'number' || !(config.dropout >= 0 && config.dropout < 1)) {
    throw new Error(`vpt.dropout must be in [0, 1) (got ${config.dropout})`);
  }
  if (config.lastBlocks !== undefined && (!Number.isInteger(config.lastBlocks) || config.lastBlocks < 1)) {
    throw new Error(`vpt.lastBlocks must be a positive integer (got ${config.lastBlocks})`);
  }
  if (config.initRange !== undefined && !(typeof config.initRange === 'number' && config.initRange > 0 && Number.isFinite(config.initRange))) {
    throw new Error(`vpt.initRange must be a positive number (got ${config.initRange})`);
  }
  if (config.seed !== undefined && (!Number.isInteger(config.seed) || config.seed < 0)) throw new Error(`vpt.seed must be a non-negative integer (got ${config.seed})`);
}

/** Defaults filled in and validated. */
export function resolveVptConfig(partial: Partial<VptConfig> = {}, defaults: Readonly<VptConfig> = DEFAULT_VPT_CONFIG): VptConfig {
  const config: VptConfig = { ...defaults };
  for (const [key, value] of Object.entries(partial)) if (value !== undefined) (config as unknown as Record<string, unknown>)[key] = value;
  validateVptConfig(config);
  return config;
}
