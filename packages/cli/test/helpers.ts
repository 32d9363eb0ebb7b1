import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const CLI = join(__dirname, '..', 'dist', 'main.js');
export const CORE_FIXTURES = join(__dirname, '..', '..', 'core', 'test', 'fixtures');

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Spawned commands run on wasm with one thread unless a test asks otherwise. */
const cliEnv = (env: Record<string, string>) => ({ ...process.env, VQT_BACKEND: 'wasm', VQT_THREADS: '1', ...env });

export function vqt(args: string[], env: Record<string, string> = {}): CliRun {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: cliEnv(env), timeout: 300_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * The same, without blocking: for runs longer than vitest's worker RPC timeout (a blocked event
 * loop cannot answer the runner, which then reports an unhandled error).
 */
export function vqtAsync(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: cliEnv(env) });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** The failure line: everything on stderr after the backend line. */
export function errorLines(run: CliRun): string[] {
  return run.stderr.split('\n').filter((l) => l && !l.startsWith('backend:'));
}
