import {
  adaptingFitted,
  fitHookedClassifier,
  openHookedClassifier,
  type FitContext,
  type FittedMethod,
  type HookedClassifier,
  type HostTensor,
  type ImageSplit,
  type MethodSpec,
  type OpenContext,
  resolveAdaptedBlocks,
} from '@vqt/core';
import { ADAPTFORMER_DEFAULTS, ADAPTFORMER_OPTIONS, validateAdaptFormerConfig, type AdaptFormerConfig } from './config.js';
import { ADAPTFORMER_PREFIX, AdaptFormerHook, type AdaptFormerHookOptions } from './hook.js';

/** A fitted AdaptFormer: the generic adapting method plus its hook (adapter variables). */
export interface FittedAdaptFormer extends FittedMethod {
  readonly hook: AdaptFormerHook;
  readonly classifier: HookedClassifier;
}

function hookOptions(config: AdaptFormerConfig, dim: number, depth: number): AdaptFormerHookOptions {
  return { dim, bottleneck: config.bottleneck, scale: config.scale, dropout: config.dropout, blocks: resolveAdaptedBlocks(config, depth, 'adaptformer') };
}

function fitted(hook: AdaptFormerHook, classifier: HookedClassifier): FittedAdaptFormer {
  const { bottleneck, scale, dropout, blocks } = hook.options;
  const base = adaptingFitted({
    method: 'adaptformer',
    classifier,
    // The resolved block list is saved, so the file says which blocks it adapts without knowing the depth.
    options: () => ({ bottleneck, scale, dropout, blocks: [...blocks] }),
    exportTensors: () => hook.exportTensors(),
    dispose: () => hook.dispose(),
  });
  // A method stacked on this one reads through the adapter in eval mode (no dropout).
  return { ...base, adaptingHooks: () => [hook.frozen()], hook, classifier };
}

/** AdaptFormer as a method plugin: `--method adaptformer`. */
export const adaptformerMethod: MethodSpec<AdaptFormerConfig> = {
  name: 'adaptformer',
  description: 'AdaptFormer: a bottleneck adapter beside each MLP, s * up(ReLU(down(x1))), trained through the frozen ViT',
  prefix: ADAPTFORMER_PREFIX,
  role: 'adapt',
  stackable: false,
  defaults: ADAPTFORMER_DEFAULTS,
  options: ADAPTFORMER_OPTIONS,
  validate: validateAdaptFormerConfig,

  async fit(config: AdaptFormerConfig, context: FitContext, data: ImageSplit): Promise<FittedAdaptFormer> {
    if (context.base) throw new Error('adaptformer adapts the backbone itself; it cannot be stacked on another method');
    const vit = context.backbone.model;
    const hook = AdaptFormerHook.initialised(hookOptions(config, vit.config.dim, vit.config.depth), context.train.seed);
    const description = `adaptformer: bottleneck ${config.bottleneck}, scale ${config.scale}, blocks ${hook.options.blocks.join(',')}`;
    return fitted(hook, await fitHookedClassifier(hook, context, data, description));
  },

  open(config: AdaptFormerConfig, tensors: ReadonlyMap<string, HostTensor>, context: OpenContext): FittedAdaptFormer {
    if (context.base) throw new Error('adaptformer adapts the backbone itself; it cannot be stacked on another method');
    const vit = context.backbone.model;
    const hook = AdaptFormerHook.fromTensors(hookOptions(config, vit.config.dim, vit.config.depth), tensors);
    return fitted(hook, openHookedClassifier(hook, tensors, context));
  },
};
