import { existsSync } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { MINI_SUITE_TASK_NAMES } from '../registry.js';
import { MINI_SUITE_COUNTS, STORED_SPLITS, type SplitCounts } from './task.js';
import { taskGenerator } from './tasks.js';
import { writeTask } from './write-task.js';

export { MINI_SUITE_VERSION } from './write-task.js';

export interface GenerateOptions {
  /** Default 0. */
  seed?: number;
  /** Default: every mini-suite task. */
  tasks?: readonly string[];
  /** Examples per stored split; default 800 / 200 / 1000. Smaller counts are for quick tests. */
  counts?: Partial<SplitCounts>;
  /**
   * Default true: replace existing task folders. false: skip tasks whose folder is already complete,
   * and if another process completes one while we generate it, keep theirs.
   */
  overwrite?: boolean;
  /**
   * Tasks generated in parallel worker threads: 'auto' (default) = one per core when the compiled
   * generate-worker.js is available, else 0 (in-process, one task after another). Output is identical.
   */
  workers?: number | 'auto';
  /** Called after each task with its name and generation time. */
  onTask?: (report: GeneratedTask) => void;
}

export interface GeneratedTask {
  readonly task: string;
  readonly dir: string;
  readonly counts: SplitCounts;
  readonly milliseconds: number;
}

/** What a generate worker is asked to do. */
export interface GenerateJob {
  readonly task: string;
  readonly dir: string;
  readonly seed: number;
  readonly counts: SplitCounts;
}

/**
 * Writes each task to `<outDir>/<task>/` in the VTAB-1k layout: images/<split>/<index>.png and
 * train800.txt, val200.txt, train800val200.txt (the union of the first two), test.txt, plus an
 * info.json. Each task is built in a temporary sibling folder and renamed into place, so a task
 * folder that exists is always complete.
 */
export async function generateMiniSuite(outDir: string, options: GenerateOptions = {}): Promise<GeneratedTask[]> {
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
  const tasks = [...new Set(options.tasks ?? MINI_SUITE_TASK_NAMES)];
  const counts: SplitCounts = { ...MINI_SUITE_COUNTS, ...options.counts };
  for (const split of STORED_SPLITS) {
    if (!Number.isInteger(counts[split]) || counts[split] < 1) throw new RangeError(`count for ${split} must be a positive integer`);
  }
  tasks.forEach((task) => taskGenerator(task)); // fail on a bad name before writing anything
  const root = resolve(outDir);
  await mkdir(root, { recursive: true });
  const overwrite = options.overwrite ?? true;
  const todo: string[] = [];
  for (const task of tasks) if (overwrite || !(await isCompleteTask(join(root, task)))) todo.push(task);

  const script = generateWorkerScript();
  const workers = Math.min(todo.length, resolveGenerateWorkers(options.workers, script));
  const runJob = workers > 0 && script ? (job: GenerateJob) => runInWorker(script, job) : (job: GenerateJob) => writeTask(job.dir, job.task, job.seed, job.counts);

  const reports = new Map<string, GeneratedTask>();
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < todo.length) {
      const task = todo[next++];
      const started = performance.now();
      const finalDir = join(root, task);
      const stagingDir = join(root, `.${task}.partial-${process.pid}-${Date.now()}`);
      try {
        await runJob({ task, dir: stagingDir, seed, counts });
        // without overwrite, a task another process completed meanwhile wins; a half-written one is replaced
        if (overwrite || !(await isCompleteTask(finalDir))) {
          await rm(finalDir, { recursive: true, force: true });
          await rename(stagingDir, finalDir);
        }
      } finally {
        await rm(stagingDir, { recursive: true, force: true });
      }
      const report = { task, dir: finalDir, counts, milliseconds: performance.now() - started };
      options.onTask?.(report);
      reports.set(task, report);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, workers) }, lane));
  return todo.map((task) => reports.get(task)!);
}

/** info.json is written last, inside the staging folder, so its presence marks a complete task. */
export async function isCompleteTask(taskDir: string): Promise<boolean> {
  return stat(join(taskDir, 'info.json')).then(() => true, () => false);
}

function generateWorkerScript(): string | undefined {
  try {
    const path = fileURLToPath(new URL('./generate-worker.js', import.meta.url));
    return existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

function resolveGenerateWorkers(option: number | 'auto' | undefined, script: string | undefined): number {
  if (option === undefined || option === 'auto') return script ? availableParallelism() : 0;
  if (!Number.isInteger(option) || option < 0) throw new RangeError(`workers must be a non-negative integer or 'auto', got ${option}`);
  return script ? option : 0;
}

function runInWorker(script: string, job: GenerateJob): Promise<void> {
  return new Promise<void>((resolvePromise, reject) => {
    const worker = new Worker(script, { workerData: job });
    let settled = false;
    worker.once('message', (message: { error?: string }) => {
      settled = true;
      if (message.error) reject(new Error(message.error));
      else resolvePromise();
    });
    worker.once('error', (error) => {
      settled = true;
      reject(error);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`generate worker for ${job.task} exited with code ${code}`));
    });
  });
}
