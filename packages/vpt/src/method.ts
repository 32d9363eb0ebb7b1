import {
  HookedClassifier,
  adaptingFitted,
  fitHookedClassifier,
  type FittedMethod,
  type HostTensor,
  type MethodOption,
  type MethodSpec,
  type OpenContext,
  type VisionTransformer,
} from '@vqt/core';
import { DEFAULT_VPT_CONFIG, DEFAULT_VPT_SHALLOW_CONFIG, validateVptConfig, type VptConfig } from './config.js';
import { VptHook } from './hook.js';

/** The adapter tensor: [sets, T, D], sets = prompted blocks (deep) or 1 (shallow). */
export const VPT_PROMPTS_TENSOR = 'vpt.prompts';

const OPTIONS: readonly MethodOption[] = [
  { key: 'prompts', flag: 'prompts', kind: 'int', min: 1, description: 'VPT: prompt tokens T, per block for VPT-Deep (default 10)' },
  { key: 'deep', flag: 'deep', kind: 'boolean', description: 'VPT: fresh prompts before every block (VPT-Deep) or once at the input (VPT-Shallow)' },
  { key: 'dropout', flag: 'prompt-dropout', kind: 'number', min: 0, max: 0.99, description: 'VPT: prompt dropout while training (default 0.1)' },
  {
    key: 'lastBlocks',
    flag: 'last-blocks',
    kind: 'int',
    min: 1,
    optional: true,
    description: 'adapt only the last k blocks; earlier blocks run frozen, off the gradient tape (default: all)',
  },
  { key: 'initRange', flag: 'prompt-init-range', kind: 'number', min: 0, optional: true, description: 'VPT: uniform init half-width (default sqrt(6/(3p^2+D)))' },
  { key: 'seed', flag: 'prompt-seed', kind: 'int', min: 0, optional: true, description: 'VPT: prompt init seed (default: --seed)' },
];

function vptSpec(name: 'vpt' | 'vpt-shallow', defaults: Readonly<VptConfig>, description: string): MethodSpec<VptConfig> {
  return {
    name,
    description,
    prefix: 'vpt.',
    role: 'adapt',
    defaults,
    options: OPTIONS,
    validate(config) {
      validateVptConfig(config);
      if (name === 'vpt-shallow' && config.deep) throw new Error('vpt-shallow.deep must be false (use --method vpt for VPT-Deep)');
    },
    async fit(config, context, data) {
      const vit = context.backbone.model;
      if (data.imageSize !== vit.config.imageSize) {
        throw new Error(`${data.id}: images are ${data.imageSize}px, the backbone takes ${vit.config.imageSize}px`);
      }
      const hook = vptHook(vit, { ...config, seed: config.seed ?? context.train.seed });
      const description = `${name}: ${hook.numPrompts} prompts, ${describeBlocks(hook)}, ${hook.parameterCount()} prompt parameters`;
      return fitted(name, hook, await fitHookedClassifier(hook, context, data, description));
    },
    open(config, tensors, context) {
      return openVpt(name, config, tensors, context);
    },
  };
}

/** VPT-Deep: `--method vpt` (prompts per block; `--deep false` gives VPT-Shallow under this name). */
export const vptMethod: MethodSpec<VptConfig> = vptSpec('vpt', DEFAULT_VPT_CONFIG, 'VPT-Deep: learnable prompt tokens before every block, trained through the frozen ViT');

/** VPT-Shallow: `--method vpt-shallow` (prompts once, before the first prompted block, carried). */
export const vptShallowMethod: MethodSpec<VptConfig> = vptSpec(
  'vpt-shallow',
  DEFAULT_VPT_SHALLOW_CONFIG,
  'VPT-Shallow: learnable prompt tokens inserted once at the input and carried through the frozen ViT',
);

function vptHook(vit: VisionTransformer, config: VptConfig): VptHook {
  const { depth, dim, patchSize } = vit.config;
  return new VptHook({ depth, dim, patchSize }, config);
}

function build(vit: VisionTransformer, config: VptConfig, numClasses: number): { hook: VptHook; classifier: HookedClassifier } {
  const hook = vptHook(vit, config);
  try {
    return { hook, classifier: new HookedClassifier(vit, [hook], numClasses) };
  } catch (error) {
    hook.dispose();
    throw error;
  }
}

function describeBlocks(hook: VptHook): string {
  const { firstBlock } = hook.layout;
  const blocks = firstBlock === 0 ? 'all blocks' : `blocks ${firstBlock}..${hook.depth - 1}`;
  return hook.config.deep ? `deep, ${blocks}` : `shallow, inserted before block ${firstBlock}`;
}

function fitted(name: string, hook: VptHook, classifier: HookedClassifier): FittedMethod {
  const fittedMethod = adaptingFitted({
    method: name,
    classifier,
    // The init range and seed actually used, so the file says how the prompts started.
    options: () => ({ ...hook.config, initRange: hook.initRange, seed: hook.config.seed ?? 0 }),
    exportTensors: () => ({ [VPT_PROMPTS_TENSOR]: hook.stackedPrompts() }),
    dispose: () => hook.dispose(),
  });
  // Frozen without dropout (core's frozenHook would keep it in a training forward): see VptHook.frozen.
  return { ...fittedMethod, adaptingHooks: () => [hook.frozen()] };
}

/**
 * Rebuilds a fitted VPT from its adapter tensors: `vpt.prompts` and, unless it is the headless base
 * of a stack, `head.weight` [classes, D] and `head.bias` [classes]. Anything else is an error.
 */
export function openVpt(name: string, config: VptConfig, tensors: ReadonlyMap<string, HostTensor>, context: OpenContext): FittedMethod {
  return openOn(context.backbone.model, name, config, tensors, context);
}

/** A fitted VPT around given prompts [sets, T, D] and head (torch layout): tests, conversions from PyTorch. */
export function vptFromTensors(
  vit: VisionTransformer,
  config: VptConfig,
  prompts: HostTensor,
  head: { weight: HostTensor; bias: HostTensor },
  name: 'vpt' | 'vpt-shallow' = config.deep ? 'vpt' : 'vpt-shallow',
): FittedMethod {
  validateVptConfig(config);
  const tensors = new Map<string, HostTensor>([
    [VPT_PROMPTS_TENSOR, prompts],
    ['head.weight', head.weight],
    ['head.bias', head.bias],
  ]);
  return openOn(vit, name, config, tensors, { file: 'vptFromTensors', numClasses: head.bias.shape[0] });
}

function openOn(
  vit: VisionTransformer,
  name: string,
  config: VptConfig,
  tensors: ReadonlyMap<string, HostTensor>,
  where: { file: string; numClasses: number; headless?: boolean },
): FittedMethod {
  const expected = new Set([VPT_PROMPTS_TENSOR, ...(where.headless ? [] : ['head.weight', 'head.bias'])]);
  const unknown = [...tensors.keys()].filter((key) => !expected.has(key));
  if (unknown.length) throw new Error(`${where.file}: ${name} does not use tensors ${unknown.slice(0, 5).join(', ')}`);
  for (const key of expected) if (!tensors.has(key)) throw new Error(`${where.file}: ${key} is missing`);
  const { hook, classifier } = build(vit, config, where.numClasses);
  try {
    hook.setPrompts(tensors.get(VPT_PROMPTS_TENSOR)!, `${where.file}: ${VPT_PROMPTS_TENSOR}`);
    if (!where.headless) classifier.head.importFromAdapter(tensors, where.file);
  } catch (error) {
    classifier.dispose();
    hook.dispose();
    throw error;
  }
  return fitted(name, hook, classifier);
}
