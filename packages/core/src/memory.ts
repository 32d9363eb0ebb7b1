import * as tf from '@tensorflow/tfjs';
import type { StepProfile } from './train/types.js';

/**
 * Peak bytes of tensor buffers created while `fn` runs and alive at the same time.
 *
 * tf.profile's peakBytes sums the sizes of tensors, so a reshape (a new tensor sharing its input's
 * buffer) counts its bytes twice; matMul alone reshapes both operands. This counts each backend
 * buffer (dataId) once, from the moment the engine first tracks it until the backend frees it.
 * Buffers that existed before `fn` (weights, the batch) are not counted. It wraps two methods of
 * tfjs's engine for the duration of `fn`; do not nest calls.
 */
export async function peakNewBufferBytes(fn: () => void | Promise<void>): Promise<number> {
  return (await trackBuffers(fn)).newBufferBytes;
}

/**
 * Memory figures of one step: peakNewBufferBytes, the most tensor bytes alive at once (what
 * tf.profile calls peakBytes), and tf.memory() before it. tf.profile itself is not used: it logs
 * every kernel and spreads the log into Math.max, which overflows the call stack on a long step
 * (ViT-B/16 at batch 32 in micro-batches).
 */
export async function profileStep(fn: () => void | Promise<void>): Promise<StepProfile> {
  const startBytes = tf.memory().numBytes;
  const { newBufferBytes, peakBytes } = await trackBuffers(fn);
  return { newBufferBytes, peakBytes: Math.max(startBytes, peakBytes), startBytes };
}

async function trackBuffers(fn: () => void | Promise<void>): Promise<{ newBufferBytes: number; peakBytes: number }> {
  interface EngineInternals {
    state: { tensorInfo: WeakMap<object, unknown>; numBytes: number };
    trackTensor(t: tf.Tensor, backend: unknown): void;
    removeDataId(dataId: object, backend: unknown): void;
  }
  const engine = tf.engine() as unknown as EngineInternals;
  const track = engine.trackTensor;
  const remove = engine.removeDataId;
  const sizes = new Map<object, number>();
  let live = 0;
  let peak = 0;
  let peakBytes = engine.state.numBytes;
  engine.trackTensor = function (this: EngineInternals, t, backend) {
    if (!this.state.tensorInfo.has(t.dataId) && t.dtype !== 'string' && t.dtype !== 'complex64') {
      const bytes = t.size * (t.dtype === 'float32' || t.dtype === 'int32' ? 4 : 1);
      sizes.set(t.dataId, bytes);
      live += bytes;
      peak = Math.max(peak, live);
    }
    track.call(this, t, backend);
    peakBytes = Math.max(peakBytes, this.state.numBytes);
  };
  engine.removeDataId = function (this: EngineInternals, dataId, backend) {
    const bytes = sizes.get(dataId);
    remove.call(this, dataId, backend);
    if (bytes !== undefined && !this.state.tensorInfo.has(dataId)) {
      live -= bytes;
      sizes.delete(dataId);
    }
  };
  try {
    await fn();
  } finally {
    engine.trackTensor = track;
    engine.removeDataId = remove;
  }
  return { newBufferBytes: peak, peakBytes };
}
