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
  type VisionTransformer,
  resolveAdaptedBlocks,
} from '@vqt/core';
import { LORA_DEFAULTS, LORA_OPTIONS, LORA_TARGETS, validateLoraConfig, type LoraConfig } from './config.js';
import { linearShapes, LORA_PREFIX, LoraHook, type LoraHookOptions } from './hook.js';

/** A fitted LoRA: the generic adapting method plus its hook and `merge()`. */
export interface FittedLora extends FittedMethod {
  readonly hook: LoraHook;
  readonly classifier: HookedClassifier;
  /**
   * The backbone with the deltas folded into its weights (PEFT's merge_and_unload): run it with no
   * hooks and feed its CLS to `classifier.head` for the same logits. The caller disposes it.
   */
  merge(): VisionTransformer;
}

function hookOptions(config: LoraConfig, vit: VisionTransformer): LoraHookOptions {
  return {
    rank: config.rank,
    alpha: config.alpha,
    // Canonical order, so files and logs do not depend on how the targets were listed.
    targets: LORA_TARGETS.filter((t) => config.targets.includes(t)),
    dropout: config.dropout,
    blocks: resolveAdaptedBlocks(config, vit.config.depth, 'lora'),
    shapes: linearShapes(vit),
  };
}

function fitted(hook: LoraHook, classifier: HookedClassifier): FittedLora {
  const { rank, alpha, targets, dropout, blocks } = hook.options;
  const base = adaptingFitted({
    method: 'lora',
    classifier,
    // The resolved block list is saved, so the file says which blocks it adapts without knowing the depth.
    options: () => ({ rank, alpha, targets: [...targets], dropout, blocks: [...blocks] }),
    exportTensors: () => hook.exportTensors(),
    dispose: () => hook.dispose(),
  });
  // A method stacked on this one reads through the adapter in eval mode (no dropout).
  return { ...base, adaptingHooks: () => [hook.frozen()], hook, classifier, merge: () => hook.merge(classifier.vit) };
}

/** LoRA as a method plugin: `--method lora`. */
export const loraMethod: MethodSpec<LoraConfig> = {
  name: 'lora',
  description: 'LoRA: low-rank deltas (alpha/r) x A^T B^T on chosen Linears (q, k, v, proj, fc1, fc2), trained through the frozen ViT',
  prefix: LORA_PREFIX,
  role: 'adapt',
  stackable: false,
  defaults: LORA_DEFAULTS,
  options: LORA_OPTIONS,
  validate: validateLoraConfig,

  async fit(config: LoraConfig, context: FitContext, data: ImageSplit): Promise<FittedLora> {
    if (context.base) throw new Error('lora adapts the backbone itself; it cannot be stacked on another method');
    const vit = context.backbone.model;
    const hook = LoraHook.initialised(hookOptions(config, vit), context.train.seed);
    const description = `lora: rank ${config.rank}, alpha ${config.alpha}, targets ${hook.options.targets.join(',')}, blocks ${hook.options.blocks.join(',')}`;
    return fitted(hook, await fitHookedClassifier(hook, context, data, description));
  },

  open(config: LoraConfig, tensors: ReadonlyMap<string, HostTensor>, context: OpenContext): FittedLora {
    if (context.base) throw new Error('lora adapts the backbone itself; it cannot be stacked on another method');
    const vit = context.backbone.model;
    const hook = LoraHook.fromTensors(hookOptions(config, vit), tensors);
    return fitted(hook, openHookedClassifier(hook, tensors, context));
  },
};
