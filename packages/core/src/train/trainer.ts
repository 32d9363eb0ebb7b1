import * as tf from '@tensorflow/tfjs';
import { profileStep } from '../memory.js';
import { applyGradients, createOptimizer, setLearningRate } from './optimizer.js';
import { createProgress } from './progress.js';
import { mixSeed } from './rng.js';
import { warmupCosineLr } from './schedule.js';
import { loadTrainState, runFingerprint, saveTrainState } from './state.js';
import type { DataSource, EpochLog, EvalResult, LabeledBatch, TrainableModel, TrainOptions, TrainResult } from './types.js';

/** Mean softmax cross-entropy over the batch, and the number of correct top-1 predictions. */
function lossAndCorrect(logits: tf.Tensor2D, labels: Int32Array): { loss: tf.Scalar; correct: tf.Scalar } {
  const classes = logits.shape[1];
  const target = tf.oneHot(tf.tensor1d(labels, 'int32'), classes);
  const loss = tf.neg(tf.mean(tf.sum(tf.mul(target, tf.logSoftmax(logits)), 1))) as tf.Scalar;
  const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), tf.tensor1d(labels, 'int32')), 'float32')) as tf.Scalar;
  return { loss, correct };
}

/**
 * The trainer every method shares: Adam with coupled L2 decay or SGD with momentum, linear warmup
 * then cosine (per epoch), seeded order and randomness, an atomic checkpoint after every epoch,
 * and resume that reproduces an unbroken run.
 */
export async function trainModel<B extends LabeledBatch>(model: TrainableModel<B>, data: DataSource<B>, options: TrainOptions): Promise<TrainResult> {
  const variables = model.trainableVariables();
  if (variables.length === 0) throw new Error('trainModel: the model has no trainable variables');
  const noDecay = new Set(model.noDecayVariables?.() ?? []);
  const optimizer = createOptimizer(options.optimizer, options.lr, options.momentum);
  const fingerprint = runFingerprint(options, variables);
  const progress = createProgress(options.progress);
  const history: EpochLog[] = [];
  let startEpoch = 0;
  if (options.resume && options.checkpointFile) {
    const saved = await loadTrainState(options.checkpointFile, variables, optimizer, fingerprint);
    if (saved) {
      startEpoch = saved.epochsDone;
      history.push(...saved.history);
    }
  }
  const batchesPerEpoch = Math.ceil(data.size / options.batchSize);
  const lastEpoch = Math.min(options.epochs, startEpoch + (options.stopAfterEpochs ?? Infinity));
  try {
    for (let epoch = startEpoch; epoch < lastEpoch; epoch++) {
      const started = performance.now();
      const lr = warmupCosineLr(options.lr, epoch, options.epochs, options.warmupEpochs);
      setLearningRate(optimizer, lr);
      progress.startEpoch(epoch, options.epochs, batchesPerEpoch);
      let lossSum = 0;
      let correctSum = 0;
      let seen = 0;
      let step = 0;
      for await (const batch of data.batches(options.batchSize, { shuffle: options.shuffle ?? true, seed: options.seed, epoch })) {
        const seed = mixSeed(options.seed, epoch, step);
        let correct: tf.Scalar | undefined;
        let value: tf.Scalar | undefined;
        const rows = batch.labels.length;
        const micro = Math.min(rows, options.microBatchSize ?? model.microBatchSize?.(rows) ?? rows);
        const runStep = () => {
          if (micro >= rows) {
            const out = tf.variableGrads(() => {
              const { loss, correct: right } = lossAndCorrect(model.logits(batch, { training: true, seed }), batch.labels);
              correct = tf.keep(right);
              return loss;
            }, variables);
            applyGradients(optimizer, variables, out.grads, options.weightDecay, noDecay);
            tf.dispose(Object.values(out.grads));
            value = out.value;
            return;
          }
          // Gradient accumulation: the batch's mean loss is the size-weighted mean of its chunks' losses.
          const sums: Record<string, tf.Tensor> = {};
          let lossSum: tf.Scalar = tf.scalar(0);
          let correctSum: tf.Scalar = tf.scalar(0);
          for (let start = 0, chunk = 0; start < rows; start += micro, chunk++) {
            const end = Math.min(rows, start + micro);
            const part = sliceBatch(batch, start, end, rows);
            const weight = (end - start) / rows;
            const out = tf.variableGrads(() => {
              const { loss, correct: right } = lossAndCorrect(model.logits(part, { training: true, seed: mixSeed(seed, chunk) }), part.labels);
              correct = tf.keep(right);
              return tf.mul(loss, weight) as tf.Scalar;
            }, variables);
            tf.dispose(part as unknown as tf.TensorContainer);
            for (const [name, g] of Object.entries(out.grads)) {
              const previous = sums[name];
              sums[name] = previous ? tf.add(previous, g) : g;
              if (previous) tf.dispose([previous, g]);
            }
            const [l, c] = [tf.add(lossSum, out.value) as tf.Scalar, tf.add(correctSum, correct!) as tf.Scalar];
            tf.dispose([lossSum, correctSum, out.value, correct!]);
            lossSum = l;
            correctSum = c;
          }
          applyGradients(optimizer, variables, sums, options.weightDecay, noDecay);
          tf.dispose(Object.values(sums));
          value = lossSum;
          correct = correctSum;
        };
        if (options.onFirstStepProfile && epoch === startEpoch && step === 0) options.onFirstStepProfile(await profileStep(runStep));
        else runStep();
        const batchLoss = (await value!.data())[0];
        lossSum += batchLoss * batch.labels.length;
        correctSum += (await correct!.data())[0];
        seen += batch.labels.length;
        tf.dispose([value!, correct!]);
        tf.dispose(batch as unknown as tf.TensorContainer);
        step++;
        progress.step(step, batchLoss);
      }
      const log: EpochLog = { epoch, lr, loss: lossSum / Math.max(1, seen), trainTop1: correctSum / Math.max(1, seen), seconds: (performance.now() - started) / 1000 };
      history.push(log);
      if (options.checkpointFile) await saveTrainState(options.checkpointFile, variables, optimizer, { fingerprint, epochsDone: epoch + 1, history });
      progress.endEpoch(
        `epoch ${epoch + 1}/${options.epochs} lr ${lr.toPrecision(3)} loss ${log.loss.toFixed(4)} train top-1 ${(100 * log.trainTop1).toFixed(1)}% (${log.seconds.toFixed(1)} s)`,
      );
      await options.onEpochEnd?.(log);
    }
  } finally {
    progress.stop();
    disposeOptimizer(optimizer);
  }
  return { history, startEpoch };
}

/**
 * Rows [start, end) of a batch: every tensor whose first dimension is the batch size is sliced
 * (nested in arrays and objects too, e.g. cached per-block features), typed arrays of that length
 * are viewed, everything else is shared.
 */
export function sliceBatch<B extends LabeledBatch>(batch: B, start: number, end: number, rows = batch.labels.length): B {
  const slice = (value: unknown): unknown => {
    if (value instanceof tf.Tensor) {
      return value.shape[0] === rows ? tf.slice(value, [start, ...value.shape.slice(1).map(() => 0)], [end - start, ...value.shape.slice(1)]) : tf.clone(value);
    }
    if (ArrayBuffer.isView(value) && (value as Int32Array).length === rows) return (value as Int32Array).subarray(start, end);
    if (Array.isArray(value)) return value.map(slice);
    if (value && typeof value === 'object' && !ArrayBuffer.isView(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, slice(v)]));
    return value;
  };
  return slice(batch) as B;
}

/** tfjs's momentum optimizer forgets its learning-rate scalar on dispose. */
function disposeOptimizer(optimizer: tf.Optimizer): void {
  const rate = (optimizer as unknown as { c?: tf.Tensor }).c;
  optimizer.dispose();
  if (rate && !rate.isDisposed) rate.dispose();
}

/** Top-1 accuracy of the model on a data source, in data order. */
export async function evaluateModel<B extends LabeledBatch>(model: TrainableModel<B>, data: DataSource<B>, batchSize: number): Promise<EvalResult> {
  const predictions = new Int32Array(data.size);
  let count = 0;
  let correct = 0;
  for await (const batch of data.batches(batchSize, { shuffle: false, seed: 0, epoch: 0 })) {
    const predicted = tf.tidy(() => tf.argMax(model.logits(batch, { training: false, seed: 0 }), 1));
    const values = (await predicted.data()) as Int32Array;
    predicted.dispose();
    tf.dispose(batch as unknown as tf.TensorContainer);
    for (let i = 0; i < values.length; i++) {
      predictions[count + i] = values[i];
      if (values[i] === batch.labels[i]) correct++;
    }
    count += values.length;
  }
  return { top1: count ? correct / count : 0, correct, count, predictions };
}
