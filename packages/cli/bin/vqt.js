#!/usr/bin/env node
// The `vqt` executable. A committed shim rather than dist/main.js itself: npm links a workspace's
// bin only if the target exists when `npm ci` runs, and dist/ is built afterwards.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write(`vqt: ${fileURLToPath(main)} is not built yet: run \`npm run build\` (at the repository root) first\n`);
  process.exit(1);
}
await import(main.href);
