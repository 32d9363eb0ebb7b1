// Size on disk of a VQT adapter against its backbone checkpoint: writes a timm-format fp32
// checkpoint at the given geometry (random weights), loads it as any user checkpoint, trains
// nothing, saves the adapter (T queries, C classes) and measures both files.
// Usage: node dist/adapter-size.js [--preset vit_base_patch16_224] [--queries 1] [--classes 100]
import { initBackend, loadVit, presetConfig, writeSafetensors, type HostTensor } from '@vqt/core';
import { saveVqtAdapter, VqtModel } from '@vqt/vqt';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flag, report } from './report.js';

const preset = flag('preset', 'vit_base_patch16_224');
const queries = Number(flag('queries', '1'));
const classes = Number(flag('classes', '100'));
const backend = await initBackend();
const { dim, depth, patchSize, imageSize, mlpRatio } = presetConfig(preset);
const hidden = dim * mlpRatio;
const tokens = (imageSize / patchSize) ** 2 + 1;

// timm's state-dict names and shapes for a ViT with a CLS token and a final norm.
let seed = 1;
const random = (shape: number[]): HostTensor => {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    data[i] = (seed / 2 ** 31 - 0.5) * 0.04;
  }
  return { shape, data };
};
const tensors: Record<string, HostTensor> = {
  cls_token: random([1, 1, dim]),
  pos_embed: random([1, tokens, dim]),
  'patch_embed.proj.weight': random([dim, 3, patchSize, patchSize]),
  'patch_embed.proj.bias': random([dim]),
  'norm.weight': random([dim]),
  'norm.bias': random([dim]),
};
for (let b = 0; b < depth; b++) {
  const p = `blocks.${b}`;
  Object.assign(tensors, {
    [`${p}.norm1.weight`]: random([dim]),
    [`${p}.norm1.bias`]: random([dim]),
    [`${p}.attn.qkv.weight`]: random([3 * dim, dim]),
    [`${p}.attn.qkv.bias`]: random([3 * dim]),
    [`${p}.attn.proj.weight`]: random([dim, dim]),
    [`${p}.attn.proj.bias`]: random([dim]),
    [`${p}.norm2.weight`]: random([dim]),
    [`${p}.norm2.bias`]: random([dim]),
    [`${p}.mlp.fc1.weight`]: random([hidden, dim]),
    [`${p}.mlp.fc1.bias`]: random([hidden]),
    [`${p}.mlp.fc2.weight`]: random([dim, hidden]),
    [`${p}.mlp.fc2.bias`]: random([dim]),
  });
}

const dir = mkdtempSync(join(tmpdir(), 'vqt-adapter-size-'));
try {
  const checkpoint = join(dir, `${preset}.safetensors`);
  writeSafetensors(checkpoint, tensors);
  const backbone = loadVit(checkpoint);
  const model = new VqtModel(backbone.model, { numClasses: classes, queries });
  const adapter = join(dir, 'adapter');
  saveVqtAdapter(adapter, model, backbone);
  const checkpointBytes = statSync(checkpoint).size;
  const files = readdirSync(adapter).map((f) => ({ file: f, bytes: statSync(join(adapter, f)).size }));
  const adapterBytes = files.reduce((sum, f) => sum + f.bytes, 0);
  const trainable = model.parameterCount();
  const MB = (bytes: number) => (bytes / 1e6).toFixed(2);
  report(
    `adapter-size-${preset}-t${queries}-c${classes}`,
    backend,
    [
      { file: `${preset}.safetensors (full fp32 checkpoint)`, bytes: checkpointBytes, MB: MB(checkpointBytes), 'vs checkpoint': '1' },
      ...files.map((f) => ({ file: `adapter/${f.file}`, bytes: f.bytes, MB: MB(f.bytes), 'vs checkpoint': (f.bytes / checkpointBytes).toFixed(4) })),
      { file: 'adapter (all files)', bytes: adapterBytes, MB: MB(adapterBytes), 'vs checkpoint': (adapterBytes / checkpointBytes).toFixed(4) },
    ],
    { preset, queries, classes, trainableParameters: trainable, backboneParameters: backbone.model.parameterCount() },
  );
  model.dispose();
  backbone.model.dispose();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
