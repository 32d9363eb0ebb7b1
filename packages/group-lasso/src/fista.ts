import * as tf from '@tensorflow/tfjs';
import { cloneHead, disposeHead, type LinearHead } from './params.js';
import { groupNorms, groupSoftThreshold } from './prox.js';
import { hostSum, smoothLoss, smoothLossAndGradient, type SoftmaxProblem } from './smooth-loss.js';

export interface SolverOptions {
  /** Upper bound on proximal-gradient iterations. Default 500. */
  maxIterations?: number;
  /**
   * Stop when the proximal-gradient residual ||y - z|| / step (the first-order optimality measure; it is
   * the gradient norm when lambda = 0) falls below tolerance times the gradient norm at W = 0. Default 1e-5.
   */
  tolerance?: number;
  /** First step size; default 1 / (Lipschitz estimate). */
  initialStep?: number;
  /** Step multiplier when the sufficient-decrease test fails. Default 0.5. */
  backtrackFactor?: number;
  /** Step multiplier after every accepted iteration: lets the step track the local curvature, which shrinks as the fit saturates. Default 1.2 (1 = classic non-increasing FISTA steps). */
  stepGrowth?: number;
  /** Called once per iteration with the objective at the current iterate. */
  onIteration?: (iteration: number, objective: number) => void;
}

export interface SolverResult {
  head: LinearHead;
  /** Objective F(x_k) for k = 0 (start) .. iterations; non-increasing. */
  history: number[];
  iterations: number;
  /** The residual test passed, or a plain step could no longer lower the objective in float32. */
  converged: boolean;
  finalStep: number;
}

interface Trial {
  head: LinearHead;
  smoothLoss: number;
  /** lambda-free penalty sum_f ||W[f,:]||_2 of the trial. */
  penalty: number;
  /** <grad f(y), z - y>. */
  inner: number;
  /** ||z - y||^2. */
  distanceSquared: number;
}

/** Slack for float32 rounding in the sufficient-decrease test, relative to |f(y)|. */
const ROUNDING_SLACK = 1e-7;
const MIN_STEP = 1e-20;

function penaltyOf(weight: tf.Tensor2D, lambda: number): number {
  if (lambda === 0) return 0;
  const norms = groupNorms(weight);
  const total = hostSum(norms);
  norms.dispose();
  return total;
}

function proximalStep(problem: SoftmaxProblem, y: LinearHead, gradWeight: tf.Tensor2D, gradBias: tf.Tensor1D, step: number, lambda: number): Trial {
  const result = tf.tidy(() => {
    const weight = groupSoftThreshold(tf.sub(y.weight, tf.mul(step, gradWeight)), step * lambda);
    const bias = tf.sub(y.bias, tf.mul(step, gradBias)) as tf.Tensor1D;
    const deltaWeight = tf.sub(weight, y.weight);
    const deltaBias = tf.sub(bias, y.bias);
    const inner = tf.add(tf.sum(tf.mul(gradWeight, deltaWeight)), tf.sum(tf.mul(gradBias, deltaBias)));
    const distanceSquared = tf.add(tf.sum(tf.square(deltaWeight)), tf.sum(tf.square(deltaBias)));
    return { weight, bias, scalars: tf.stack([inner, distanceSquared]) };
  });
  const [inner, distanceSquared] = result.scalars.dataSync();
  result.scalars.dispose();
  const head = { weight: result.weight, bias: result.bias };
  return { head, smoothLoss: smoothLoss(problem, head), penalty: penaltyOf(head.weight, lambda), inner, distanceSquared };
}

function objectiveAt(problem: SoftmaxProblem, head: LinearHead, lambda: number): number {
  return smoothLoss(problem, head) + lambda * penaltyOf(head.weight, lambda);
}

/** y = z + momentum (z - x), the FISTA extrapolation. */
function extrapolate(z: LinearHead, x: LinearHead, momentum: number): LinearHead {
  return tf.tidy(() => ({
    weight: tf.add(z.weight, tf.mul(momentum, tf.sub(z.weight, x.weight))) as tf.Tensor2D,
    bias: tf.add(z.bias, tf.mul(momentum, tf.sub(z.bias, x.bias))) as tf.Tensor1D,
  }));
}

export interface ProblemSettings {
  lambda: number;
  /** First step size (backtracking shortens it, stepGrowth lengthens it). */
  step: number;
  /**
   * Size of the smooth gradient at the zero head: the residual tolerance is relative to it. A fixed
   * scale (not the first iteration's residual) keeps warm starts and already-optimal starts from
   * chasing float32 noise.
   */
  residualScale: number;
}

/**
 * Minimises smooth(W, b) + lambda * sum_f ||W[f,:]||_2 by FISTA with backtracking and function-value
 * restart (O'Donoghue & Candès): a step that would raise the objective is rejected and the momentum
 * reset, so the next step is a plain proximal-gradient step, which backtracking guarantees does not
 * increase the objective. The recorded objective is therefore monotone. When even that plain step
 * shows no decrease, the remaining progress is below float32 resolution and the solver stops.
 * `init` is not consumed.
 */
export function solveProximalGradient(problem: SoftmaxProblem, init: LinearHead, settings: ProblemSettings, options: SolverOptions = {}): SolverResult {
  const { lambda, residualScale } = settings;
  let step = settings.step;
  const maxIterations = options.maxIterations ?? 500;
  const tolerance = options.tolerance ?? 1e-5;
  const backtrackFactor = options.backtrackFactor ?? 0.5;
  const stepGrowth = options.stepGrowth ?? 1.2;
  if (!(backtrackFactor > 0 && backtrackFactor < 1)) throw new Error(`backtrackFactor must be in (0, 1), got ${backtrackFactor}`);
  if (!(step > 0) || !Number.isFinite(step)) throw new Error(`step must be > 0, got ${step}`);

  let x = cloneHead(init);
  let objective = objectiveAt(problem, x, lambda);
  if (!Number.isFinite(objective)) {
    disposeHead(x);
    throw new Error('objective is not finite at the initial point (NaN or Inf in features?)');
  }
  const history = [objective];
  let y: LinearHead = x;
  let theta = 1;
  let converged = false;
  let iteration = 0;
  try {
    options.onIteration?.(0, objective);
    while (iteration < maxIterations && !converged) {
      iteration++;
      const gradient = smoothLossAndGradient(problem, y);
      let trial: Trial;
      try {
        for (;;) {
          trial = proximalStep(problem, y, gradient.gradWeight, gradient.gradBias, step, lambda);
          const model = gradient.loss + trial.inner + trial.distanceSquared / (2 * step);
          if (trial.smoothLoss <= model + ROUNDING_SLACK * Math.abs(gradient.loss) || step < MIN_STEP) break;
          disposeHead(trial.head);
          step *= backtrackFactor;
        }
      } finally {
        tf.dispose([gradient.gradWeight, gradient.gradBias]);
      }

      const trialObjective = trial.smoothLoss + lambda * trial.penalty;
      const residual = Math.sqrt(trial.distanceSquared) / step;
      const plainStep = y === x;
      if (!plainStep) disposeHead(y);
      y = x;
      if (trialObjective <= objective) {
        const nextTheta = (1 + Math.sqrt(1 + 4 * theta * theta)) / 2;
        const momentum = (theta - 1) / nextTheta;
        const z = trial.head;
        const previous = x;
        x = z;
        y = momentum > 0 ? extrapolate(z, previous, momentum) : z;
        disposeHead(previous);
        objective = trialObjective;
        theta = nextTheta;
        converged = residual <= tolerance * residualScale;
        step *= stepGrowth;
      } else {
        disposeHead(trial.head);
        // Restart: a plain step from x next. If this already was one, only float32 rounding can explain
        // the failure: nothing measurable is left to gain.
        converged = plainStep;
        theta = 1;
      }
      history.push(objective);
      options.onIteration?.(iteration, objective);
    }
  } catch (error) {
    if (y !== x) disposeHead(y);
    disposeHead(x);
    throw error;
  }
  if (y !== x) disposeHead(y);
  return { head: x, history, iterations: iteration, converged, finalStep: step };
}
