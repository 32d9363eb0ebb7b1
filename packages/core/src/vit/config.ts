export interface VitConfig {
  /** Square input side in pixels. */
  imageSize: number;
  patchSize: number;
  /** Embedding width D. */
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  /** LayerNorm epsilon (timm ViT: 1e-6). */
  eps: number;
}

export function gridSize(config: Pick<VitConfig, 'imageSize' | 'patchSize'>): number {
  return Math.floor(config.imageSize / config.patchSize);
}

export function numTokens(config: Pick<VitConfig, 'imageSize' | 'patchSize'>): number {
  return gridSize(config) ** 2 + 1;
}

export function validateConfig(config: VitConfig): void {
  const problems: string[] = [];
  if (config.imageSize % config.patchSize !== 0) problems.push(`imageSize ${config.imageSize} is not a multiple of patchSize ${config.patchSize}`);
  if (config.dim % config.heads !== 0) problems.push(`dim ${config.dim} is not divisible by heads ${config.heads}`);
  for (const key of ['imageSize', 'patchSize', 'dim', 'depth', 'heads', 'mlpRatio'] as const) {
    if (!(config[key] > 0)) problems.push(`${key} must be positive (got ${config[key]})`);
  }
  if (problems.length) throw new Error(`invalid ViT config: ${problems.join('; ')}`);
}

/** The timm model names users know, with their geometry. */
export const VIT_PRESETS = {
  vit_tiny_patch16_224: { imageSize: 224, patchSize: 16, dim: 192, depth: 12, heads: 3, mlpRatio: 4, eps: 1e-6 },
  vit_small_patch16_224: { imageSize: 224, patchSize: 16, dim: 384, depth: 12, heads: 6, mlpRatio: 4, eps: 1e-6 },
  vit_base_patch16_224: { imageSize: 224, patchSize: 16, dim: 768, depth: 12, heads: 12, mlpRatio: 4, eps: 1e-6 },
  vit_base_patch32_224: { imageSize: 224, patchSize: 32, dim: 768, depth: 12, heads: 12, mlpRatio: 4, eps: 1e-6 },
  vit_large_patch16_224: { imageSize: 224, patchSize: 16, dim: 1024, depth: 24, heads: 16, mlpRatio: 4, eps: 1e-6 },
  vit_huge_patch14_224: { imageSize: 224, patchSize: 14, dim: 1280, depth: 32, heads: 16, mlpRatio: 4, eps: 1e-6 },
} as const satisfies Record<string, VitConfig>;

export type VitPresetName = keyof typeof VIT_PRESETS;

export function presetConfig(name: string): VitConfig {
  const preset = (VIT_PRESETS as Record<string, VitConfig>)[name];
  if (!preset) throw new Error(`unknown ViT preset "${name}"; known: ${Object.keys(VIT_PRESETS).join(', ')}`);
  return { ...preset };
}
