/** mulberry32: a small, fast, seedable PRNG; enough for shuffles and inits that must be reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Combines integers into one 31-bit seed (for per-epoch and per-step randomness). */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    h = Math.imul(h ^ (part >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0;
  }
  return h & 0x7fffffff;
}

/** 0..n-1, shuffled by Fisher-Yates from a seed; identity when shuffle is false. */
export function epochOrder(n: number, order: { shuffle: boolean; seed: number; epoch: number }): Int32Array {
  const indices = Int32Array.from({ length: n }, (_, i) => i);
  if (!order.shuffle) return indices;
  const random = seededRandom(mixSeed(order.seed, order.epoch, 0x5eed));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [indices[i], indices[j]] = [indices[j], indices[i]];
  }
  return indices;
}
