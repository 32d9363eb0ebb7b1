import * as tf from '@tensorflow/tfjs';
import type { HostTensor } from '../io/types.js';
import { HookedClassifier, adaptingFitted, imageSplitSource } from './hooked.js';
import { resolveAdaptedBlocks } from './blocks.js';
import { registerMethod } from './registry.js';
import type { FittedMethod, MethodSpec } from './spec.js';
import { trainModel } from '../train/trainer.js';
import { cloneParams, VisionTransformer } from '../vit/vit.js';

/** Full fine-tuning: every backbone parameter trains, or only those of the last k blocks (with the final norm). */
export interface FullConfig {
  lastBlocks?: number;
}

const PREFIX = 'full.';

/** A copy of the backbone with its own tensors: fine-tuning must not change the shared frozen model. */
function copyOf(vit: VisionTransformer): VisionTransformer {
  const { head: _head, ...params } = vit.params;
  const model = new VisionTransformer(vit.config, cloneParams(params));
  model.checkpointing = vit.checkpointing;
  model.checkpointBudgetBytes = vit.checkpointBudgetBytes;
  return model;
}

/** Which parameters train: all of them, or blocks depth-k.. plus the final norm(s). */
function selector(config: FullConfig, depth: number): (name: string) => boolean {
  if (config.lastBlocks === undefined) return () => true;
  const blocks = new Set(resolveAdaptedBlocks({ lastBlocks: config.lastBlocks }, depth, 'full'));
  return (name) => {
    const m = /^blocks\.(\d+)\./.exec(name);
    return m ? blocks.has(Number(m[1])) : name.startsWith('norm.') || name.startsWith('fc_norm.');
  };
}

/**
 * File layout (torch conventions): `full.<parameter>` under core's parameter names (timm's, with
 * q/k/v split: `blocks.0.attn.q.weight`), linear weights [out, in], `patch_embed.proj.weight`
 * [D, 3, p, p], `cls_token` [1, 1, D], `pos_embed` [1, L, D]; only the parameters that trained.
 */
function toFile(name: string, t: tf.Tensor, patchSize: number): tf.Tensor {
  if (name === 'patch_embed.proj.weight') return tf.reshape(tf.transpose(t), [t.shape[1] as number, 3, patchSize, patchSize]);
  if (t.rank === 2 && name.endsWith('.weight')) return tf.transpose(t);
  if (name === 'cls_token' || name === 'pos_embed' || name === 'reg_token') return tf.expandDims(t, 0);
  return tf.clone(t);
}

function fromFile(name: string, host: HostTensor, like: tf.Tensor): tf.Tensor {
  const t = tf.tensor(host.data, host.shape);
  if (name === 'patch_embed.proj.weight') return tf.transpose(tf.reshape(t, [host.shape[0], like.shape[0]]));
  if (like.rank === 2 && name.endsWith('.weight')) return tf.transpose(t);
  return tf.reshape(t, like.shape);
}

function fittedFull(vit: VisionTransformer, classifier: HookedClassifier, trained: Map<string, tf.Variable>, config: FullConfig): FittedMethod {
  const fitted = adaptingFitted({
    method: 'full',
    classifier,
    options: () => ({ ...config }),
    exportTensors: () => Object.fromEntries([...trained].map(([name, v]) => [`${PREFIX}${name}`, toFile(name, v, vit.config.patchSize)])),
    dispose: () => vit.dispose(),
  });
  // The fine-tuned backbone is a model of its own, not hooks on the shared one: nothing stacks on it.
  return { ...fitted, adaptingHooks: undefined, trainableHooks: undefined };
}

function classifierFor(vit: VisionTransformer, trained: Map<string, tf.Variable>, numClasses: number): HookedClassifier {
  const variables = [...trained.values()];
  // No hook point: the trainable parameters themselves put the backbone on the tape.
  return new HookedClassifier(vit, [{ name: 'full', trainableVariables: () => variables }], numClasses);
}

/** Full fine-tuning (or the last k blocks): the paper's upper baseline, through the same trainer as every method. */
export function createFullMethod(): MethodSpec<FullConfig> {
  return {
    name: 'full',
    description: 'full fine-tuning of the backbone (or its last k blocks) with a linear head',
    prefix: PREFIX,
    role: 'adapt',
    stackBase: false,
    defaults: { lastBlocks: undefined },
    options: [{ key: 'lastBlocks', flag: 'last-blocks', kind: 'int', min: 1, optional: true, description: 'adapt only the last k blocks (earlier blocks stay off the tape)' }],
    async fit(config, context, data) {
      const vit = copyOf(context.backbone.model);
      let classifier: HookedClassifier | undefined;
      try {
        const trained = vit.makeTrainable(selector(config, vit.config.depth));
        classifier = classifierFor(vit, trained, data.numClasses);
        context.announce?.(classifier.parameterCount());
        await trainModel(classifier, imageSplitSource(data), { ...context.train, lr: context.hp.lr, weightDecay: context.hp.weightDecay });
        return fittedFull(vit, classifier, trained, config);
      } catch (error) {
        // The copy is a whole backbone (344 MB at ViT-B): a failed fit must not keep it.
        classifier?.dispose();
        vit.dispose();
        throw error;
      }
    },
    open(config, tensors, context) {
      const vit = copyOf(context.backbone.model);
      let classifier: HookedClassifier | undefined;
      try {
        const trained = vit.makeTrainable(selector(config, vit.config.depth));
        const expected = new Set([...trained.keys()].map((name) => `${PREFIX}${name}`));
        const unknown = [...tensors.keys()].filter((k) => k.startsWith(PREFIX) && !expected.has(k));
        if (unknown.length) throw new Error(`${context.file}: tensors full fine-tuning does not know: ${unknown.slice(0, 5).join(', ')}`);
        for (const [name, variable] of trained) {
          const host = tensors.get(`${PREFIX}${name}`);
          if (!host) throw new Error(`${context.file}: ${PREFIX}${name}: missing tensor`);
          if (host.data.length !== variable.size) throw new Error(`${context.file}: ${PREFIX}${name}: ${host.data.length} values, the backbone's parameter has ${variable.size}`);
          tf.tidy(() => variable.assign(fromFile(name, host, variable)));
        }
        classifier = classifierFor(vit, trained, context.numClasses);
        if (!context.headless) classifier.head.importFromAdapter(tensors, context.file);
        return fittedFull(vit, classifier, trained, config);
      } catch (error) {
        classifier?.dispose();
        vit.dispose();
        throw error;
      }
    },
  };
}

export const fullMethod = registerMethod(createFullMethod());
