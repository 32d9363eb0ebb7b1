import {
  EMBEDDED_CHECKPOINT,
  parseMethodRequest,
  releaseBackbones,
  replaceReadmeSection,
  runBench,
  runCell,
  serveIpcWorker,
  splitMethodList,
  startQueueWorker,
  summaryMarkdown,
  type BenchSettings,
  type Execution,
  type PlanRequest,
} from '@vqt/bench';
import { REFERENCE_GRID } from '@vqt/core';
import { MINI_SUITE_TASK_NAMES, VTAB_1K_TASK_NAMES } from '@vqt/vtab-datasets';
import { Command, Option } from 'commander';
import { fork } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import '../methods.js';
import { nonNegativeNumber, numberList, positiveInt } from '../options.js';
import { log, startBackend, type GlobalOptions } from '../runtime.js';

/** Every method the paper compares, in Table 1's order; the ones not registered in this build are skipped with a note. */
export const PAPER_METHODS = ['linear', 'head2toe', 'vqt', 'vpt', 'adaptformer', 'lora', 'full', 'vpt+vqt', 'adaptformer+vqt', 'lora+vqt'];

/**
 * --quick: what CI runs on every submission (a few minutes on 2 cores). Two tasks, 2 epochs, one
 * grid point, and one-point sweeps on one task so both plots are drawn.
 */
const QUICK = {
  tasks: ['dsprites_loc', 'blob_patch'],
  // Reduced splits (train800/val200/test): the pipeline and the memory check do not depend on their size.
  counts: { train800: 160, val200: 40, test: 200 },
  epochs: 2,
  warmup: 0,
  lrGrid: [0.01],
  wdGrid: [1e-4],
  lastBlocks: [1],
  queries: [2],
  sweepTasks: ['dsprites_loc'],
  // Head2Toe is left out: its feature extraction and lasso path alone take minutes per task here.
  methods: PAPER_METHODS.filter((m) => m !== 'head2toe'),
};

export interface BenchCommandOptions {
  methods?: string;
  tasks?: string[];
  seeds: number;
  epochs?: number;
  warmup?: number;
  batch: number;
  optimizer: 'adam' | 'sgd';
  lrGrid?: number[];
  wdGrid?: number[];
  lastBlocks?: number[];
  queries?: number[];
  sweepTasks?: string[];
  vtab?: string;
  checkpoint?: string;
  heads?: number;
  suiteSeed: number;
  normalization: 'imagenet' | 'inception';
  cacheBudget: number;
  out: string;
  workers: number;
  queue?: string;
  queueName?: string;
  quick?: boolean;
  check?: boolean;
  readme?: string;
  reportOnly?: boolean;
}

const list = (value: string) => value.split(',').map((v) => v.trim()).filter(Boolean);
const intList = (value: string) => numberList(value).map((n) => {
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`expected positive integers, got "${value}"`);
  return n;
});

/** `vqt bench` and `vqt worker`, added to the program. */
export function registerBenchCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('bench')
    .description('the benchmark suite: methods x tasks under the VTAB-1k protocol; tables, memory, plots and a check in one results folder')
    .option('--methods <list>', `methods, stacks (vpt+vqt) and variants (vqt[select=0.5]); unregistered ones are skipped (default: ${PAPER_METHODS.join(',')})`)
    .option('--tasks <list>', 'tasks (default: every mini-suite task, or every VTAB-1k task found under --vtab)', list)
    .option('--seeds <n>', 'seeds per cell (mean and spread)', positiveInt, 1)
    .option('--epochs <n>', 'epochs per fit (default 30; --quick 2)', positiveInt)
    .option('--warmup <epochs>', 'warmup epochs (default epochs/10; --quick 0)', (v) => Math.floor(nonNegativeNumber(v)))
    .option('--batch <n>', 'batch size (also the batch of the memory comparison)', positiveInt, 32)
    .addOption(new Option('--optimizer <name>', 'optimizer').choices(['adam', 'sgd']).default('adam'))
    .option('--lr-grid <list>', 'learning rates searched on val200 (default: the reference grid x batch/256; --quick 0.01)', numberList)
    .option('--wd-grid <list>', 'weight decays searched on val200 (default: 0.01,0.001,0.0001,0; --quick 0.0001)', numberList)
    .option('--last-blocks <list>', 'k values: adapting methods limited to their last k blocks (accuracy vs memory plot)', intList)
    .option('--queries <list>', 'T values for methods with queries (accuracy vs T plot)', intList)
    .option('--sweep-tasks <list>', 'tasks for the plot sweeps (default: all tasks)', list)
    .option('--vtab <dir>', 'VTAB-1k task folders (default: the offline mini suite)')
    .option('--checkpoint <file>', 'backbone checkpoint (default: the embedded ViT)')
    .option('--heads <n>', 'attention heads (default dim/64)', positiveInt)
    .option('--suite-seed <n>', 'mini-suite generation seed', (v) => Math.floor(nonNegativeNumber(v)), 0)
    .addOption(new Option('--normalization <kind>', 'image normalisation').choices(['imagenet', 'inception']).default('imagenet'))
    .option('--cache-budget <MiB>', 'feature cache memory per worker before spilling', positiveInt, 1024)
    .option('--out <dir>', 'results folder (a rerun resumes it)', 'bench-results')
    .option('--workers <n>', 'worker processes on this machine (1: run in this process)', positiveInt, 1)
    .option('--queue <url>', 'enqueue cells on BullMQ at redis://host:port; `vqt worker --queue <url>` runs them')
    .option('--queue-name <name>', 'BullMQ queue name', 'vqt-bench')
    .option('--quick', `CI mode: ${QUICK.tasks.join(' and ')} at ${QUICK.counts.train800}/${QUICK.counts.val200}/${QUICK.counts.test} images, ${QUICK.epochs} epochs, one grid point, one-point sweeps, no head2toe`)
    .option('--check', 'fail unless VQT trains in less memory than VPT-Deep, AdaptFormer and full fine-tuning (those registered); report the paper\'s accuracy orderings')
    .option('--report-only', 'run nothing: rewrite the report from the cells already in --out (the others are listed as missing)')
    .option('--readme <file>', 'also write the summary between the bench:results markers of this README')
    .action(async (options: BenchCommandOptions, command: Command) => {
      const backend = await startBackend(globals());
      await benchCommand(options, { backendThreads: backend.threads, argv: process.argv.slice(2), globals: globals(), command });
    });

  program
    .command('worker')
    .description('run benchmark cells: from a BullMQ queue (--queue redis://host:port) until stopped, or for a local `vqt bench --workers n` (--ipc)')
    .option('--queue <url>', 'redis://host:port of the queue that `vqt bench --queue` filled')
    .option('--queue-name <name>', 'BullMQ queue name', 'vqt-bench')
    .option('--lock-seconds <s>', 'a dead worker\'s cell goes to another worker after this long', positiveInt, 120)
    .option('--stalled-check-seconds <s>', 'how often to look for cells of dead workers', positiveInt, 30)
    .option('--ipc', 'serve the parent `vqt bench` process over IPC (internal)')
    .action(async (options: { queue?: string; queueName: string; lockSeconds: number; stalledCheckSeconds: number; ipc?: boolean }) => {
      await startBackend(globals());
      await workerCommand(options);
    });
}

export async function benchCommand(options: BenchCommandOptions, context: { backendThreads: number; argv: string[]; globals: GlobalOptions; command?: Command }): Promise<void> {
  if (options.queue && options.workers > 1) throw new UsageError('--queue and --workers: give one (with --queue, start `vqt worker` processes instead)');
  if (options.checkpoint && !existsSync(options.checkpoint)) throw new UsageError(`--checkpoint ${options.checkpoint}: no such file`);
  if (options.vtab && !existsSync(options.vtab)) throw new UsageError(`--vtab ${options.vtab}: no such folder`);
  const quick = options.quick === true;
  const known = options.vtab ? [...new Set([...VTAB_1K_TASK_NAMES, ...MINI_SUITE_TASK_NAMES])].filter((t) => existsSync(resolve(options.vtab!, t))) : MINI_SUITE_TASK_NAMES;
  const tasks = options.tasks ?? (quick && !options.vtab ? QUICK.tasks : [...known]);
  if (tasks.length === 0) throw new UsageError(`--vtab ${options.vtab}: no VTAB-1k task folders in it (expected e.g. ${VTAB_1K_TASK_NAMES.slice(0, 3).join(', ')}); name them with --tasks`);
  for (const task of tasks) {
    if (!options.vtab && !MINI_SUITE_TASK_NAMES.includes(task)) throw new UsageError(`--tasks: "${task}" is not a mini-suite task (${MINI_SUITE_TASK_NAMES.join(', ')})`);
    if (options.vtab && !existsSync(resolve(options.vtab, task))) throw new UsageError(`--tasks: no folder ${resolve(options.vtab, task)}`);
  }
  const epochs = options.epochs ?? (quick ? QUICK.epochs : 30);
  const scale = options.batch / 256;
  const settings: BenchSettings = {
    data: options.vtab ? { kind: 'folders', dir: resolve(options.vtab) } : { kind: 'mini', seed: options.suiteSeed, ...(quick ? { counts: QUICK.counts } : {}) },
    checkpoint: options.checkpoint ? resolve(options.checkpoint) : EMBEDDED_CHECKPOINT,
    ...(options.heads ? { heads: options.heads } : {}),
    epochs,
    warmupEpochs: options.warmup ?? (quick ? QUICK.warmup : Math.floor(epochs / 10)),
    batchSize: options.batch,
    optimizer: options.optimizer,
    grid: {
      lr: options.lrGrid ?? (quick ? QUICK.lrGrid : REFERENCE_GRID.lr.map((lr) => lr * scale)),
      weightDecay: options.wdGrid ?? (quick ? QUICK.wdGrid : REFERENCE_GRID.weightDecay),
    },
    normalization: options.normalization,
    cacheBudgetMiB: options.cacheBudget,
  };
  let methods: PlanRequest['methods'];
  try {
    methods = splitMethodList(options.methods ?? (quick ? QUICK.methods : PAPER_METHODS).join(',')).map(parseMethodRequest);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const request: PlanRequest = {
    methods,
    tasks,
    seeds: options.seeds,
    lastBlocks: options.lastBlocks ?? (quick ? QUICK.lastBlocks : []),
    queries: options.queries ?? (quick ? QUICK.queries : []),
  };
  const sweepTasks = options.sweepTasks ?? (quick && !options.tasks && !options.vtab ? QUICK.sweepTasks : undefined);
  if (sweepTasks) request.sweepTasks = sweepTasks;
  const globalFlags = [...(context.globals.backend ? ['--backend', context.globals.backend] : []), ...(context.globals.threads ? ['--threads', String(context.globals.threads)] : [])];
  const execution: Execution = options.queue
    ? { kind: 'queue', url: options.queue, queueName: options.queueName }
    : options.workers > 1
      ? { kind: 'pool', workers: options.workers, spawn: () => fork(process.argv[1], [...globalFlags, 'worker', '--ipc'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }) }
      : { kind: 'inline' };
  const out = resolve(options.out);
  const outcome = await runBench({ request, settings, out, execution, command: `vqt ${context.argv.filter((a) => a !== '--report-only').join(' ')}`, log, versions: cliVersion(), reportOnly: options.reportOnly });
  releaseBackbones();
  const { results } = outcome;
  const summary = summaryMarkdown(results, out, out);
  process.stdout.write(`\n${summary}\n\nResults in ${out}: ${outcome.files.map((f) => f.slice(out.length + 1)).join(', ')}, cells/*.json\n`);
  if (options.readme) {
    const file = resolve(options.readme);
    const text = replaceReadmeSection(readFileSync(file, 'utf8'), summaryMarkdown(results, out, dirname(file)), file);
    writeFileSync(file, text);
    log(`wrote the results section of ${file}`);
  }
  if (outcome.failures.length > 0) throw new Error(`${outcome.failures.length} cell${outcome.failures.length === 1 ? '' : 's'} failed: ${outcome.failures.map((f) => `${f.id} (${f.message.split('\n')[0]})`).join('; ')}`);
  if (options.check && results.check.failed) {
    throw new Error(`check failed: ${results.check.memory.filter((l) => l.outcome === 'fails').map((l) => `${l.claim} (${l.detail})`).join('; ')}`);
  }
}

export async function workerCommand(options: { queue?: string; queueName: string; lockSeconds: number; stalledCheckSeconds: number; ipc?: boolean }): Promise<void> {
  const run = (cell: Parameters<typeof runCell>[0], settings: Parameters<typeof runCell>[1]) => runCell(cell, settings, { log });
  if (options.ipc) {
    await new Promise<void>((done) => serveIpcWorker(run, () => done()));
    releaseBackbones();
    return;
  }
  if (!options.queue) throw new UsageError('vqt worker needs --queue redis://host:port (or --ipc, used by vqt bench --workers)');
  const worker = startQueueWorker({ url: options.queue, queueName: options.queueName, run, log, lockDurationMs: options.lockSeconds * 1000, stalledIntervalMs: options.stalledCheckSeconds * 1000 });
  await worker.waitUntilReady();
  log(`worker ${process.pid} waiting for cells on ${options.queue} (queue ${options.queueName}); Ctrl-C stops after the current cell`);
  await new Promise<void>((done) => {
    const stop = () => {
      log('stopping after the current cell');
      void worker.close().then(done);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  releaseBackbones();
}

function cliVersion(): Record<string, string> {
  try {
    const file = resolve(dirname(process.argv[1]), '..', 'package.json');
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    return pkg.name === '@vqt/cli' && pkg.version ? { '@vqt/cli': pkg.version } : {};
  } catch {
    return {};
  }
}
