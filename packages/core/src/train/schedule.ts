/**
 * The reference recipe's per-epoch rate: linear warmup, then half a cosine to 0 (VPT/VQT's
 * WarmupCosineSchedule stepped once per epoch). The warmup starts at peak / (warmup + 1), not at 0
 * as the reference's does: an epoch at rate 0 trains nothing.
 */
export function warmupCosineLr(peak: number, epoch: number, totalEpochs: number, warmupEpochs: number): number {
  if (epoch < warmupEpochs) return (peak * (epoch + 1)) / (warmupEpochs + 1);
  const progress = (epoch - warmupEpochs) / Math.max(1, totalEpochs - warmupEpochs);
  return peak * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
