import { inspectCheckpoint } from '@vqt/core';

export function inspectCommand(file: string, options: { heads?: number; json?: boolean }): void {
  const info = inspectCheckpoint(file, { heads: options.heads });
  const { config } = info;
  if (options.json) {
    process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
    return;
  }
  const lines = [
    `file        ${file}`,
    `format      ${info.format} (${info.tensorCount} tensors, ${(info.bytes / 1e6).toFixed(2)} MB)`,
    `sha256      ${info.sha256}`,
    `parameters  ${info.parameterCount.toLocaleString('en-US')}`,
    `image size  ${info.checkpointImageSize} (patch ${config.patchSize}, ${(info.checkpointImageSize / config.patchSize) ** 2} patches + CLS)`,
    `width       ${config.dim}, depth ${config.depth}, heads ${config.heads}${options.heads ? '' : ' (default dim/64 for timm files; set --heads)'} , mlp ratio ${config.mlpRatio}`,
    `head        ${info.hasHead ? `${info.headClasses} classes` : 'none'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
