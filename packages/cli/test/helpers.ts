import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const CLI = join(__dirname, '..', 'dist', 'main.js');
export const CORE_FIXTURES = join(__dirname, '..', '..', 'core', 'test', 'fixtures');

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function vqt(args: string[], env: Record<string, string> = {}): CliRun {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, VQT_BACKEND: 'wasm', VQT_THREADS: '1', ...env },
    timeout: 300_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The failure line: everything on stderr after the backend line. */
export function errorLines(run: CliRun): string[] {
  return run.stderr.split('\n').filter((l) => l && !l.startsWith('backend:'));
}
