/** The VTAB-1k protocol: pick lr x wd on val200 after training on train800, retrain on train800val200, test. */
export interface HyperParameters {
  lr: number;
  weightDecay: number;
}

export interface ProtocolSteps<M> {
  train(hp: HyperParameters, split: 'train800' | 'train800val200'): Promise<M>;
  evaluate(model: M, split: 'val200' | 'test'): Promise<number>;
  dispose?(model: M): void;
  log?(line: string): void;
}

export interface ProtocolResult {
  grid: (HyperParameters & { val200Top1: number })[];
  best: HyperParameters;
  testTop1: number;
}

/** The reference grid (lr is scaled by batch/256 by the caller, as the reference does). */
export const REFERENCE_GRID = { lr: [1.0, 0.5, 0.25, 0.1, 0.05], weightDecay: [0.01, 1e-3, 1e-4, 0] };

/**
 * The VTAB-1k hyper-parameter protocol: every (lr, weight decay) of the grid is trained on train800
 * and scored on val200; the best pair is retrained on train800val200 and tested.
 */
export async function runVtabProtocol<M>(grid: { lr: number[]; weightDecay: number[] }, steps: ProtocolSteps<M>): Promise<ProtocolResult> {
  const results: ProtocolResult['grid'] = [];
  for (const lr of grid.lr) {
    for (const weightDecay of grid.weightDecay) {
      const model = await steps.train({ lr, weightDecay }, 'train800');
      const val200Top1 = await steps.evaluate(model, 'val200');
      steps.dispose?.(model);
      results.push({ lr, weightDecay, val200Top1 });
      steps.log?.(`grid lr ${lr} wd ${weightDecay}: val200 top-1 ${(100 * val200Top1).toFixed(2)}%`);
    }
  }
  // Ties go to the earlier grid point (larger lr first, as listed).
  const best = results.reduce((a, b) => (b.val200Top1 > a.val200Top1 ? b : a));
  const final = await steps.train({ lr: best.lr, weightDecay: best.weightDecay }, 'train800val200');
  const testTop1 = await steps.evaluate(final, 'test');
  steps.dispose?.(final);
  steps.log?.(`best lr ${best.lr} wd ${best.weightDecay}: test top-1 ${(100 * testTop1).toFixed(2)}%`);
  return { grid: results, best: { lr: best.lr, weightDecay: best.weightDecay }, testTop1 };
}
