import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/throughput.ts', 'src/vqt-memory.ts', 'src/vqt-cache-speed.ts', 'src/adapter-size.ts', 'src/method-memory.ts', 'src/stacking.ts', 'src/vqt-vs-pytorch.ts', 'src/forward-profile.ts', 'src/step-profile.ts'],
  format: ['esm'],
  sourcemap: true,
  clean: true,
  target: 'node20',
});
