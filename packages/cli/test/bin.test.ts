import { accessSync, constants, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

// npm links a workspace's bin only if its target exists when `npm ci` runs, before anything is
// built: the bin must be a committed, executable file in the published "files", not dist/main.js.
const pkgDir = join(__dirname, '..');
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };

describe('the vqt executable', () => {
  it('is a committed, executable shim outside dist/, shipped in "files"', () => {
    const target = pkg.bin.vqt;
    expect(target).toBe('./bin/vqt.js');
    expect(target.includes('dist/')).toBe(false);
    accessSync(join(pkgDir, target), constants.X_OK);
    expect(readFileSync(join(pkgDir, target), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(pkg.files).toContain('bin');
  });

  it('runs the built CLI', () => {
    const run = spawnSync(join(pkgDir, pkg.bin.vqt), ['--help'], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^Usage: vqt \[options\] \[command\]/);
    expect(run.stdout).toContain('train');
  });

  it('says to build first when dist/ is missing', () => {
    const unbuilt = mkdtempSync(join(tmpdir(), 'vqt-unbuilt-'));
    try {
      mkdirSync(join(unbuilt, 'bin'));
      copyFileSync(join(pkgDir, pkg.bin.vqt), join(unbuilt, 'bin', 'vqt.js'));
      const run = spawnSync(process.execPath, [join(unbuilt, 'bin', 'vqt.js'), '--help'], { encoding: 'utf8' });
      expect(run.status).toBe(1);
      expect(run.stderr).toBe(`vqt: ${join(unbuilt, 'dist', 'main.js')} is not built yet: run \`npm run build\` (at the repository root) first\n`);
    } finally {
      rmSync(unbuilt, { recursive: true, force: true });
    }
  });
});
