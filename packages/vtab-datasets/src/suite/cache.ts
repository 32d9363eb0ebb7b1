import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { MINI_SUITE_TASK_NAMES } from '../registry.js';
import { generateMiniSuite, MINI_SUITE_VERSION, type GeneratedTask } from './generate.js';

/**
 * Where ensureMiniSuite keeps the generated suite: `$VQT_CACHE_DIR/mini-suite-v<N>/seed-<seed>`,
 * else `$XDG_CACHE_HOME/vqt-ts/...`, else `~/.cache/vqt-ts/...`.
 */
export function defaultSuiteDir(seed = 0): string {
  const cacheRoot = process.env.VQT_CACHE_DIR
    ? resolve(process.env.VQT_CACHE_DIR)
    : join(process.env.XDG_CACHE_HOME ? resolve(process.env.XDG_CACHE_HOME) : join(homedir(), '.cache'), 'vqt-ts');
  return join(cacheRoot, `mini-suite-v${MINI_SUITE_VERSION}`, `seed-${seed}`);
}

export interface EnsureMiniSuiteOptions {
  tasks?: readonly string[];
  seed?: number;
  /** Default defaultSuiteDir(seed). */
  dir?: string;
  onTask?: (report: GeneratedTask) => void;
}

/**
 * Generates the requested tasks (full size) unless their folders already exist, and returns the
 * suite directory. Safe against interruption: a task folder only appears, by rename, once complete.
 */
export async function ensureMiniSuite(options: EnsureMiniSuiteOptions = {}): Promise<string> {
  const seed = options.seed ?? 0;
  const dir = options.dir ?? defaultSuiteDir(seed);
  const tasks = options.tasks ?? MINI_SUITE_TASK_NAMES;
  await generateMiniSuite(dir, { seed, tasks, overwrite: false, onTask: options.onTask });
  return dir;
}
