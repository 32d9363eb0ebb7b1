/**
 * Position-embedding resampling as timm's resample_abs_pos_embed does it: the prefix rows (CLS and
 * registers; none with no_embed_class) are kept, the
 * patch rows are treated as a [D, g, g] image and resized with torch's antialiased bicubic
 * (F.interpolate(mode='bicubic', antialias=True, align_corners=False); PIL's kernel, a = -0.5).
 * Host-side and separable: it runs once per checkpoint load.
 */
export function resamplePosEmbed(posEmbed: Float32Array, dim: number, oldGrid: number, newGrid: number, prefixRows = 1): Float32Array {
  const expected = (prefixRows + oldGrid * oldGrid) * dim;
  if (posEmbed.length !== expected) {
    throw new Error(`pos_embed has ${posEmbed.length} values, expected ${expected} for ${prefixRows} prefix rows and a ${oldGrid}x${oldGrid} grid of width ${dim}`);
  }
  const out = new Float32Array((prefixRows + newGrid * newGrid) * dim);
  out.set(posEmbed.subarray(0, prefixRows * dim));
  const rowWeights = antialiasedBicubicWeights(oldGrid, newGrid);
  // Resize rows (height) first, then columns; both passes are the same 1-D operator.
  const tmp = new Float64Array(newGrid * oldGrid * dim); // [newRow, oldCol, D]
  for (let i = 0; i < newGrid; i++) {
    const { start, weights } = rowWeights[i];
    for (let c = 0; c < oldGrid; c++) {
      for (let k = 0; k < weights.length; k++) {
        const src = (prefixRows + (start + k) * oldGrid + c) * dim;
        const dst = (i * oldGrid + c) * dim;
        const w = weights[k];
        for (let d = 0; d < dim; d++) tmp[dst + d] += w * posEmbed[src + d];
      }
    }
  }
  for (let i = 0; i < newGrid; i++) {
    for (let j = 0; j < newGrid; j++) {
      const { start, weights } = rowWeights[j];
      const dst = (prefixRows + i * newGrid + j) * dim;
      for (let k = 0; k < weights.length; k++) {
        const src = (i * oldGrid + start + k) * dim;
        const w = weights[k];
        for (let d = 0; d < dim; d++) out[dst + d] += w * tmp[src + d];
      }
    }
  }
  return out;
}

function bicubicKernel(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/** Per output index: the first input index and normalised weights, as torch's _upsample_bicubic2d_aa. */
export function antialiasedBicubicWeights(inSize: number, outSize: number): { start: number; weights: number[] }[] {
  const scale = inSize / outSize;
  const support = 2 * Math.max(scale, 1);
  const invScale = scale >= 1 ? 1 / scale : 1;
  return Array.from({ length: outSize }, (_, i) => {
    const center = scale * (i + 0.5);
    const start = Math.max(Math.trunc(center - support + 0.5), 0);
    const end = Math.min(Math.trunc(center + support + 0.5), inSize);
    const weights: number[] = [];
    for (let j = start; j < end; j++) weights.push(bicubicKernel((j - center + 0.5) * invScale));
    const total = weights.reduce((s, w) => s + w, 0);
    return { start, weights: weights.map((w) => (total !== 0 ? w / total : 0)) };
  });
}
