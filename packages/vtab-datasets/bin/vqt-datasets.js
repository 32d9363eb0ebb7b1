#!/usr/bin/env node
// The `vqt-datasets` executable. A committed shim rather than dist/cli.js itself: npm links a
// workspace's bin only if the target exists when `npm ci` runs, and dist/ is built afterwards.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write(`vqt-datasets: ${fileURLToPath(cli)} is not built yet: run \`npm run build\` (at the repository root) first\n`);
  process.exit(1);
}
await import(cli.href);
