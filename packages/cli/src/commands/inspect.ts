import { inspectCheckpoint, unknownTensorsMessage } from '@vqt/core';

const HEADS_SOURCE = {
  option: 'from --heads',
  metadata: "from the file's num_heads metadata",
  'config.json': 'from config.json',
  'qk-norm': "from the q_norm width",
  npz: 'from the npz tensor shapes',
  default: 'default dim/64: the tensors do not tell; set --heads, or give a hub folder with config.json',
} as const;

export function inspectCommand(file: string, options: { heads?: number; json?: boolean }): void {
  const info = inspectCheckpoint(file, { heads: options.heads });
  const { config } = info;
  if (options.json) {
    process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
    return;
  }
  const grid = (info.checkpointImageSize / config.patchSize) ** 2;
  const prefix = 1 + (config.registerTokens ?? 0);
  const lines = [
    `file        ${info.file}${info.configFile ? ` (with ${info.configFile})` : ''}`,
    ...(info.architecture ? [`timm arch   ${info.architecture}`] : []),
    `format      ${info.format} (${info.tensorCount} tensors, ${(info.bytes / 1e6).toFixed(2)} MB)`,
    `sha256      ${info.sha256}`,
    `parameters  ${info.parameterCount.toLocaleString('en-US')}`,
    `image size  ${info.checkpointImageSize} (patch ${config.patchSize}, ${grid} patches + CLS${prefix > 1 ? ` + ${prefix - 1} registers` : ''})`,
    `width       ${config.dim}, depth ${config.depth}, heads ${config.heads} (${HEADS_SOURCE[info.headsSource]}), mlp ratio ${config.mlpRatio}`,
    `variant     ${info.variant}`,
    `head        ${info.hasHead ? `${info.headClasses} classes` : 'none'}${info.unusedTensors.length ? ` (read, unused: ${info.unusedTensors.length} tensors)` : ''}`,
    ...(info.unknownTensors.length ? [`unknown     ${unknownTensorsMessage(info.unknownTensors)}: loading refuses it without --ignore-unknown`] : []),
    ...info.notes.map((note) => `note        ${note}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
