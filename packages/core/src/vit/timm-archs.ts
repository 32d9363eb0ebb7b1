import type { Activation, GlobalPool } from './config.js';

/**
 * What a timm hub folder's config.json (or the architecture name alone) tells about a ViT beyond
 * its tensors: the head count, LayerNorm eps, activation, pooling, and position-embedding layout.
 */
export interface ArchitectureHints {
  /** The timm architecture name, without its pretrained tag (config.json `architecture`). */
  architecture?: string;
  heads?: number;
  eps?: number;
  activation?: Activation;
  globalPool?: GlobalPool;
  noEmbedClass?: boolean;
  registerTokens?: number;
  /** Informational: the input size the weights were trained at (pretrained_cfg.input_size). */
  inputSize?: number;
  /** Informational: pretrained_cfg.mean / std. */
  mean?: number[];
  std?: number[];
  notes: string[];
}

const HEADS_BY_SIZE: Record<string, number> = { tiny: 3, small: 6, medium: 8, base: 12, large: 16, huge: 16 };

/**
 * Hints for timm's ViT families by name: vit_{tiny,small,base,large,huge}_patch{p}_{size}
 * (supervised, augreg, MAE: `vit_base_patch16_224.mae`), vit_*_patch{p}_clip[_quickgelu]_{size}
 * (CLIP: pre-norm, eps 1e-5, QuickGELU only in the _quickgelu names, as timm builds them),
 * vit_*_patch14[_reg{n}]_dinov2 (DINOv2: LayerScale; with registers no_embed_class) and
 * deit3_*_patch{p}_{size} (DeiT-III: LayerScale, no_embed_class). Undefined for other names.
 */
export function knownArchitecture(name: string): ArchitectureHints | undefined {
  const arch = name.split('.')[0];
  let m = /^vit_(tiny|small|base|large|huge)_patch(\d+)_(clip_)?(quickgelu_)?(\d+)$/.exec(arch);
  if (m) {
    const clip = Boolean(m[3]);
    const hints: ArchitectureHints = { architecture: arch, heads: HEADS_BY_SIZE[m[1]], eps: clip ? 1e-5 : 1e-6, activation: m[4] ? 'quickGelu' : 'gelu', globalPool: 'token', noEmbedClass: false, registerTokens: 0, notes: [] };
    if (clip && !m[4] && name.endsWith('.openai')) hints.notes.push('OpenAI CLIP weights are natively QuickGELU; timm runs this architecture with GELU (use the _quickgelu_ architecture for the original features)');
    return hints;
  }
  m = /^vit_(small|base|large)_patch14_(?:reg(\d+)_)?dinov2$/.exec(arch);
  if (m) {
    const registers = m[2] ? Number(m[2]) : 0;
    return { architecture: arch, heads: HEADS_BY_SIZE[m[1]], eps: 1e-6, activation: 'gelu', globalPool: 'token', noEmbedClass: registers > 0, registerTokens: registers, notes: [] };
  }
  m = /^deit3_(small|medium|base|large|huge)_patch(\d+)_(\d+)$/.exec(arch);
  if (m) return { architecture: arch, heads: HEADS_BY_SIZE[m[1]], eps: 1e-6, activation: 'gelu', globalPool: 'token', noEmbedClass: true, registerTokens: 0, notes: [] };
  return undefined;
}

/**
 * Hints from a timm config.json (`architecture`, `global_pool`, optional `model_args`,
 * `pretrained_cfg`). model_args win over the architecture's defaults, as in timm.create_model.
 * Throws (one line naming the file) on what this ViT cannot run: another pooling or activation.
 */
export function hintsFromTimmConfig(json: unknown, file: string): ArchitectureHints {
  if (!json || typeof json !== 'object') throw new Error(`${file}: not a JSON object`);
  const cfg = json as Record<string, unknown>;
  const architecture = typeof cfg.architecture === 'string' ? cfg.architecture : undefined;
  const hints: ArchitectureHints = (architecture && knownArchitecture(architecture)) || { architecture, notes: [] };
  if (architecture && !knownArchitecture(architecture)) hints.notes.push(`architecture ${architecture} is not one this loader knows by name; its tensors and model_args decide`);
  const pool = cfg.global_pool;
  if (pool === 'token' || pool === 'avg') hints.globalPool = pool;
  else if (pool !== undefined && pool !== '') throw new Error(`${file}: global_pool "${String(pool)}" is not supported (token or avg)`);
  const args = (cfg.model_args ?? {}) as Record<string, unknown>;
  if (typeof args.num_heads === 'number') hints.heads = args.num_heads;
  if (typeof args.reg_tokens === 'number') hints.registerTokens = args.reg_tokens;
  if (typeof args.no_embed_class === 'boolean') hints.noEmbedClass = args.no_embed_class;
  if (args.global_pool === 'token' || args.global_pool === 'avg') hints.globalPool = args.global_pool;
  if (args.act_layer !== undefined) {
    if (args.act_layer === 'quick_gelu') hints.activation = 'quickGelu';
    else if (args.act_layer === 'gelu') hints.activation = 'gelu';
    else throw new Error(`${file}: model_args.act_layer "${String(args.act_layer)}" is not supported (gelu or quick_gelu)`);
  }
  if (args.class_token === false) throw new Error(`${file}: model_args.class_token false: ViTs without a class token are not supported`);
  const pretrained = (cfg.pretrained_cfg ?? {}) as Record<string, unknown>;
  const inputSize = pretrained.input_size;
  if (Array.isArray(inputSize) && typeof inputSize[2] === 'number') hints.inputSize = inputSize[2];
  if (Array.isArray(pretrained.mean)) hints.mean = pretrained.mean as number[];
  if (Array.isArray(pretrained.std)) hints.std = pretrained.std as number[];
  if (typeof pretrained.tag === 'string' && architecture && !architecture.includes('.')) {
    const tagged = knownArchitecture(`${architecture}.${pretrained.tag}`);
    for (const note of tagged?.notes ?? []) if (!hints.notes.includes(note)) hints.notes.push(note);
  }
  return hints;
}
