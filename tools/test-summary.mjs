// Sums vitest's per-package "Tests  N passed | M failed (T)" lines from a turbo log into the
// one closing line CI reads: "N passed, M failed".
import { readFileSync } from 'node:fs';

const log = readFileSync(process.argv[2], 'utf8').replace(/\x1b\[[0-9;]*m/g, '');
let passed = 0;
let failed = 0;
let skipped = 0;
for (const line of log.split('\n')) {
  const m = line.match(/Tests\s+(.*)\(\d+\)\s*$/);
  if (!m) continue;
  for (const part of m[1].split('|')) {
    const [, n, kind] = part.trim().match(/^(\d+)\s+(\w+)/) ?? [];
    if (kind === 'passed') passed += Number(n);
    else if (kind === 'failed') failed += Number(n);
    else if (kind === 'skipped' || kind === 'todo') skipped += Number(n);
  }
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
