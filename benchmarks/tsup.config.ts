import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/throughput.ts'],
  format: ['esm'],
  sourcemap: true,
  clean: true,
  target: 'node20',
});
