import * as tf from '@tensorflow/tfjs';
import { expectFloat32, loadVit, readNpy, writeNpy, type HostTensor } from '@vqt/core';
import { UsageError } from '../errors.js';
import { openAdapter } from './eval.js';
import { log } from '../runtime.js';

export interface EmbedOptions {
  checkpoint: string;
  heads?: number;
  /** Load a checkpoint with tensors the loader does not use (warned about). */
  ignoreUnknown?: boolean;
  input: string;
  out: string;
  features: 'cls' | 'blocks' | 'head';
  adapter?: string;
  batch: number;
}

export async function embedCommand(options: EmbedOptions): Promise<void> {
  const input = expectFloat32(readNpy(options.input), options.input, 'input', 4, '[B,3,H,W]');
  const [batch, channels, height, width] = input.shape;
  if (channels !== 3 || height !== width) {
    throw new UsageError(`${options.input}: input: expected [B,3,H,H] images, got [${input.shape.join(', ')}]`);
  }
  let output: HostTensor;
  if (options.adapter) {
    // With an adapter: 'cls' is the adapted backbone's final CLS, 'head' the head's input.
    if (options.features === 'blocks') throw new UsageError('--features blocks reads the frozen backbone; drop --adapter');
    const opened = openAdapter(options.checkpoint, options.adapter, options.heads, height, options.ignoreUnknown);
    const { fitted, backbone } = opened;
    const hooks = fitted.adaptingHooks?.() ?? [];
    try {
      output = runBatches(input, options.batch, (x) => (options.features === 'head' ? fitted.headFeatures(x) : backbone.model.forward(x, { hooks }).cls));
    } finally {
      opened.dispose();
    }
  } else {
    if (options.features === 'head') throw new UsageError('--features head needs --adapter DIR');
    const { model, info } = loadVit(options.checkpoint, { heads: options.heads, imageSize: height, ignoreUnknown: options.ignoreUnknown });
    if (height % info.config.patchSize !== 0) throw new UsageError(`${options.input}: input: image size ${height} is not a multiple of the patch size ${info.config.patchSize}`);
    if (options.features === 'cls') {
      output = runBatches(input, options.batch, (x) => model.forward(x).cls);
    } else {
      const { depth, dim } = info.config;
      const tokens = model.numTokens - (info.config.registerTokens ?? 0); // returned blocks drop the register tokens
      const data = new Float32Array(depth * batch * tokens * dim);
      forEachBatch(input, options.batch, (x, start) => {
        tf.tidy(() => {
          const { blocks } = model.forward(x, { returnBlocks: true });
          blocks!.forEach((block, m) => data.set(block.dataSync(), (m * batch + start) * tokens * dim));
        });
      });
      output = { shape: [depth, batch, tokens, dim], data };
    }
    model.dispose();
  }
  writeNpy(options.out, output);
  log(`wrote ${options.out} [${output.shape.join(', ')}]`);
}

function forEachBatch(input: HostTensor, size: number, fn: (x: tf.Tensor4D, start: number) => void): void {
  const [batch, , h, w] = input.shape;
  const per = 3 * h * w;
  for (let start = 0; start < batch; start += size) {
    const end = Math.min(batch, start + size);
    const x = tf.tensor4d(input.data.slice(start * per, end * per), [end - start, 3, h, w]);
    fn(x, start);
    x.dispose();
  }
}

function runBatches(input: HostTensor, size: number, fn: (x: tf.Tensor4D) => tf.Tensor2D): HostTensor {
  const rows: Float32Array[] = [];
  let width = 0;
  forEachBatch(input, size, (x) => {
    const out = tf.tidy(() => fn(x));
    width = out.shape[1];
    rows.push(out.dataSync() as Float32Array);
    out.dispose();
  });
  const data = new Float32Array(input.shape[0] * width);
  let offset = 0;
  for (const r of rows) {
    data.set(r, offset);
    offset += r.length;
  }
  return { shape: [input.shape[0], width], data };
}
