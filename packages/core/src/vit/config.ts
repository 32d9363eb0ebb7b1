/** Element-wise activation of the MLP. */
export type Activation = 'gelu' | 'quickGelu';
/** How the final image feature is read from the last block's tokens. */
export type GlobalPool = 'token' | 'avg';

/**
 * A ViT's architecture. The fields after `eps` describe timm's variants; each is optional and
 * defaults to the original ViT (so a config written before they existed still means the same model).
 * The loader infers them from tensor names where it can and from a timm config.json otherwise.
 */
export interface VitConfig {
  /** Square input side in pixels. */
  imageSize: number;
  /** Patch side in pixels (14, 16, 32, ...). */
  patchSize: number;
  /** Embedding width D. */
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  /** LayerNorm epsilon (timm ViT: 1e-6; timm CLIP: 1e-5). Used by every LayerNorm of the model. */
  eps: number;
  /** timm `pre_norm`: a LayerNorm (`norm_pre`) on the embedded tokens before block 0 (CLIP). Default false. */
  preNorm?: boolean;
  /** timm `init_values`: LayerScale, a learned per-channel gain (`ls1`, `ls2`) on both residual branches (DeiT-III, DINOv2). Default false. */
  layerScale?: boolean;
  /** timm `reg_tokens`: learned register tokens after CLS (DINOv2 with registers). Default 0. */
  registerTokens?: number;
  /** timm `qk_norm`: LayerNorm over each head's queries and keys (`attn.q_norm`, `attn.k_norm`). Default false. */
  qkNorm?: boolean;
  /**
   * timm `global_pool`: 'token' reads CLS, 'avg' averages the patch tokens (CLS and registers left out).
   * Default 'token'. This pooled feature is what the methods call the final CLS.
   */
  globalPool?: GlobalPool;
  /** timm `fc_norm`: the final LayerNorm after pooling (`fc_norm`) instead of over the tokens (`norm`). Default: globalPool === 'avg'. */
  fcNorm?: boolean;
  /** MLP activation: 'gelu' exact erf GELU (timm default); 'quickGelu' x sigmoid(1.702 x) (OpenAI CLIP). Default 'gelu'. */
  activation?: Activation;
  /** timm `no_embed_class`: the position embedding covers the patches only; CLS and registers get none (DeiT-III, DINOv2 with registers). Default false. */
  noEmbedClass?: boolean;
}

/** A config with every variant field spelled out. */
export type ResolvedVitConfig = Required<VitConfig>;

export function resolveConfig(config: VitConfig): ResolvedVitConfig {
  const globalPool = config.globalPool ?? 'token';
  return {
    ...config,
    preNorm: config.preNorm ?? false,
    layerScale: config.layerScale ?? false,
    registerTokens: config.registerTokens ?? 0,
    qkNorm: config.qkNorm ?? false,
    globalPool,
    fcNorm: config.fcNorm ?? globalPool === 'avg',
    activation: config.activation ?? 'gelu',
    noEmbedClass: config.noEmbedClass ?? false,
  };
}

export function gridSize(config: Pick<VitConfig, 'imageSize' | 'patchSize'>): number {
  return Math.floor(config.imageSize / config.patchSize);
}

/** Tokens before the patches: CLS, then the registers. */
export function prefixTokens(config: Pick<VitConfig, 'registerTokens'>): number {
  return 1 + (config.registerTokens ?? 0);
}

/** Length of the sequence the blocks see: CLS, registers, patches. */
export function numTokens(config: Pick<VitConfig, 'imageSize' | 'patchSize' | 'registerTokens'>): number {
  return gridSize(config) ** 2 + prefixTokens(config);
}

/** Rows of the position embedding: the patches, plus CLS and registers unless noEmbedClass. */
export function posEmbedRows(config: Pick<VitConfig, 'imageSize' | 'patchSize' | 'registerTokens' | 'noEmbedClass'>): number {
  return gridSize(config) ** 2 + (config.noEmbedClass ? 0 : prefixTokens(config));
}

export function validateConfig(config: VitConfig): void {
  const problems: string[] = [];
  if (config.imageSize % config.patchSize !== 0) problems.push(`imageSize ${config.imageSize} is not a multiple of patchSize ${config.patchSize}`);
  if (config.dim % config.heads !== 0) problems.push(`dim ${config.dim} is not divisible by heads ${config.heads}`);
  for (const key of ['imageSize', 'patchSize', 'dim', 'depth', 'heads', 'mlpRatio', 'eps'] as const) {
    if (!(config[key] > 0)) problems.push(`${key} must be positive (got ${config[key]})`);
  }
  const registers = config.registerTokens ?? 0;
  if (!(Number.isInteger(registers) && registers >= 0)) problems.push(`registerTokens must be a non-negative integer (got ${registers})`);
  if (config.globalPool !== undefined && config.globalPool !== 'token' && config.globalPool !== 'avg') problems.push(`globalPool must be 'token' or 'avg' (got ${config.globalPool})`);
  if (config.activation !== undefined && config.activation !== 'gelu' && config.activation !== 'quickGelu') problems.push(`activation must be 'gelu' or 'quickGelu' (got ${config.activation})`);
  if (problems.length) throw new Error(`invalid ViT config: ${problems.join('; ')}`);
}

/** One line naming the variant fields that differ from the original ViT ("standard ViT" if none). */
export function describeVariant(config: VitConfig): string {
  const c = resolveConfig(config);
  const parts: string[] = [];
  if (c.preNorm) parts.push('pre-norm');
  if (c.layerScale) parts.push('LayerScale');
  if (c.registerTokens) parts.push(`${c.registerTokens} register tokens`);
  if (c.qkNorm) parts.push('qk-norm');
  if (c.globalPool === 'avg') parts.push('global average pooling');
  if (c.fcNorm) parts.push('fc_norm');
  if (c.activation === 'quickGelu') parts.push('QuickGELU');
  if (c.noEmbedClass) parts.push('no_embed_class');
  if (c.eps !== 1e-6) parts.push(`LayerNorm eps ${c.eps}`);
  return parts.length ? parts.join(', ') : 'standard ViT';
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
