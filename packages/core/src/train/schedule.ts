/**
 * The reference recipe's per-epoch rate: linear warmup from 0, then half a cosine to 0
 * (VPT/VQT's WarmupCosineSchedule stepped once per epoch).
 */
export function warmupCosineLr(peak: number, epoch: number, totalEpochs: number, warmupEpochs: number): number {
  if (epoch < warmupEpochs) return (peak * epoch) / Math.max(1, warmupEpochs);
  const progress = (epoch - warmupEpochs) / Math.max(1, totalEpochs - warmupEpochs);
  return peak * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
