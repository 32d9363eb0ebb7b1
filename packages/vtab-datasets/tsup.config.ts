import { defineConfig } from 'tsup';

export default defineConfig({
  // index: the library; decode-worker: spawned by the loader from dist/decode-worker.js;
  // cli: the vqt-datasets bin (its `#!/usr/bin/env node` line is kept from src/cli.ts by esbuild).
  entry: ['src/index.ts', 'src/decode-worker.ts', 'src/generate-worker.ts', 'src/cli.ts'],
  format: ['esm', 'cjs'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'node20',
  // import.meta.url (worker script and mnist data lookup) in the CommonJS build
  shims: true,
});
