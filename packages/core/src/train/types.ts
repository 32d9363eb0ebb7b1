import type * as tf from '@tensorflow/tfjs';

/** One batch: labels on the host; whatever tensors the model needs (disposed by the trainer after use). */
export interface LabeledBatch {
  labels: Int32Array;
}

/** A dataset the trainer can iterate; the order depends only on (seed, epoch), so resumed runs see the same batches. */
export interface DataSource<B extends LabeledBatch> {
  readonly size: number;
  batches(batchSize: number, order: { shuffle: boolean; seed: number; epoch: number }): AsyncIterable<B>;
}

/** What a method hands the trainer: its trainable variables and a way to compute logits. */
export interface TrainableModel<B extends LabeledBatch> {
  trainableVariables(): tf.Variable[];
  /** Logits [batch, classes]. Called inside the gradient scope when training; randomness from `seed`. */
  logits(batch: B, step: { training: boolean; seed: number }): tf.Tensor2D;
  /** Variables excluded from weight decay (none by default). */
  noDecayVariables?(): tf.Variable[];
  /**
   * Rows per forward/backward chunk for a batch of this size (gradient accumulation): models that
   * backpropagate through the backbone size their chunks to the memory they may use. Default: the whole batch.
   */
  microBatchSize?(batchSize: number): number;
}

/** Adam (the VQT/VPT recipe) or SGD with momentum. */
export type OptimizerName = 'adam' | 'sgd';

/** The training recipe of `trainModel`: warmup then cosine decay, seeded order and dropout, optional resumable checkpoints. */
export interface TrainOptions {
  epochs: number;
  batchSize: number;
  /** Peak learning rate (after warmup). */
  lr: number;
  /** Coupled L2 weight decay (added to the gradient, as torch's Adam(weight_decay=...)); not AdamW. */
  weightDecay: number;
  optimizer: OptimizerName;
  /** SGD momentum (default 0.9). */
  momentum?: number;
  /** Rows per forward/backward chunk (gradient accumulation); default: what the model asks for, else the whole batch. */
  microBatchSize?: number;
  /** Linear warmup epochs, then cosine decay to zero; the rate is set per epoch. */
  warmupEpochs: number;
  seed: number;
  /** Shuffle the training data every epoch (default true). */
  shuffle?: boolean;
  /** Save a checkpoint here after every epoch (atomic), and resume from it when `resume` is set. */
  checkpointFile?: string;
  resume?: boolean;
  /** Stop after this many epochs of this run (for tests of resume); the schedule still spans `epochs`. */
  stopAfterEpochs?: number;
  /** Per-epoch callback (evaluation, logging). */
  onEpochEnd?: (log: EpochLog) => void | Promise<void>;
  /**
   * Called once with the memory figures of the run's first training step (forward, backward and
   * update). Measuring one step keeps tf.profile's kernel log small; later steps allocate the same shapes.
   */
  onFirstStepProfile?: (profile: StepProfile) => void;
  /** Progress output: a bar on a TTY, plain lines otherwise, or nothing. Default 'auto'. */
  progress?: 'auto' | 'bar' | 'lines' | 'none';
}

/** Memory figures of one training step (`onFirstStepProfile`, `profileStep`). */
export interface StepProfile {
  /** Peak bytes of the buffers the step created, alive at once, each buffer counted once (peakNewBufferBytes). */
  newBufferBytes: number;
  /** Most tensor bytes alive at once (tf.profile's peakBytes): weights included, shared buffers counted per tensor. */
  peakBytes: number;
  /** tf.memory().numBytes before the step began. */
  startBytes: number;
}

/** One epoch's loss, learning rate and time, as `onEpochEnd` and `TrainResult.history` give them. */
export interface EpochLog {
  epoch: number;
  lr: number;
  loss: number;
  trainTop1: number;
  seconds: number;
}

/** What `trainModel` returns. */
export interface TrainResult {
  history: EpochLog[];
  /** Epoch the run started from (0 unless resumed). */
  startEpoch: number;
}

/** Top-1 accuracy (a fraction), the counts behind it and every prediction. */
export interface EvalResult {
  top1: number;
  correct: number;
  count: number;
  /** Predicted class per example, in data order. */
  predictions: Int32Array;
}
