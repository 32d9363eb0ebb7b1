import * as tf from '@tensorflow/tfjs';
import { customOp } from '../ops/custom-op.js';
import { untaped } from '../ops/tape.js';
import type { Hook } from '../hooks.js';

/** 'auto' checkpoints when the estimated activation bytes of the taped blocks pass the budget. */
export type CheckpointingMode = 'auto' | 'on' | 'off';

/**
 * Bytes one taped block holds at the peak of a training step, per token: 15 (4 + mlpRatio) D floats
 * plus 6 H L for the attention scores. Fitted to measured steps (peakNewBufferBytes: VPT-Deep with
 * 10 prompts on ViT-B/16, 2 images x 12 blocks on the tape: 2105 MiB, 425 KB per token per block);
 * it counts the backward's own temporaries and the per-head pieces of the wasm attention kernel, not
 * only the activations saved for the backward.
 */
export function blockActivationBytes(batch: number, tokens: number, dim: number, heads: number, mlpRatio: number): number {
  return 4 * batch * tokens * (15 * (4 + mlpRatio) * dim + 6 * heads * tokens);
}

/**
 * Default budget for the activations of the taped blocks: the wasm heap tops out at 4 GiB (32-bit
 * wasm) and only grows, and weights, optimiser state and freed-but-held heap need the rest (VPT-Deep
 * on ViT-B/16 exhausted it with 23-image chunks planned against 1.5 GiB).
 */
export function defaultCheckpointBudget(): number {
  return tf.getBackend() === 'wasm' ? 2 ** 30 : 8 * 2 ** 30;
}

/** Hooks that read values (taps) or add rows (side queries) would see a recomputed block twice. */
export function canCheckpoint(hooks: readonly Hook[]): boolean {
  return !hooks.some((h) => h.tap || h.sideQueries);
}

interface EngineState {
  activeTape: unknown;
}

/**
 * Runs `block(x)` off the tape and recomputes it in the backward pass (gradient checkpointing), so
 * a block keeps only its input alive between forward and backward. `variables` are the trainable
 * variables the block reads (hook parameters; backbone weights under full fine-tuning): their
 * gradients come from the recomputation. Frozen weights are not inputs, so no gradient is computed
 * for them.
 */
export function checkpointed(block: (x: tf.Tensor3D) => tf.Tensor3D, x: tf.Tensor3D, variables: readonly tf.Variable[]): tf.Tensor3D {
  const op = customOp(([input], save) => {
    save([input]);
    const value = untaped(() => block(input as tf.Tensor3D));
    return {
      value,
      gradFunc: (dy, [savedInput]) => {
        // A nested gradient replaces the engine's active tape and clears it when done: keep the outer one.
        const state = (tf.engine() as unknown as { state: EngineState }).state;
        const outerTape = state.activeTape;
        try {
          const { value: recomputed, grads } = tf.engine().gradients(() => block(savedInput as tf.Tensor3D), [savedInput, ...variables], dy as tf.Tensor3D, true);
          recomputed.dispose();
          return grads.map((g, i) => g ?? tf.zerosLike(i === 0 ? savedInput : variables[i - 1]));
        } finally {
          state.activeTape = outerTape;
        }
      },
    };
  });
  return op(x, ...variables) as tf.Tensor3D;
}
