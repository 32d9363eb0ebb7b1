/** A tensor in host memory: row-major float32 values and their shape. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Number of elements of a shape (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  let count = 1;
  for (const dim of shape) count *= dim;
  return count;
}
