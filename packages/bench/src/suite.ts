import { currentBackend, getMethod } from '@vqt/core';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, hostname } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { runCell, type CellResult } from './cell.js';
import { planBench, settingsKey, type BenchCell, type BenchPlan, type BenchSettings, type PlanRequest } from './plan.js';
import { accuracyMemoryPoints, accuracyMemorySpec, accuracyQueriesPoints, accuracyQueriesSpec, renderChart } from './plot.js';
import { runCellsInPool, type PoolOptions } from './pool.js';
import { runCellsOnQueue } from './queue.js';
import { accuracyTable, checkMarkdown, checkResults, groupOf, memoryTable, summarizeVariants, type BenchResults, type EnvironmentInfo } from './report.js';
import { ResultsFolder } from './store.js';

/** Where cells run: in this process, on a pool of local worker processes, or on a BullMQ queue. */
export type Execution = { kind: 'inline' } | { kind: 'pool'; workers: number; spawn: PoolOptions['spawn'] } | { kind: 'queue'; url: string; queueName?: string };

export interface BenchRunOptions {
  request: PlanRequest;
  settings: BenchSettings;
  /** Results folder. */
  out: string;
  execution: Execution;
  /** The command line that made the run, recorded with the results. */
  command: string;
  log: (line: string) => void;
  /** Extra package versions to record (the CLI's own). */
  versions?: Record<string, string>;
  /** Run nothing: rewrite the report from the cells already in the folder (the rest are listed as missing). */
  reportOnly?: boolean;
}

export interface BenchRunOutcome {
  results: BenchResults;
  plan: BenchPlan;
  /** Files written to the results folder. */
  files: string[];
  /** Cells that threw or whose worker died too often. */
  failures: { id: string; message: string }[];
  /** Cells taken from the folder instead of computed. */
  reused: number;
}

/** Progress of a run: cells done of the total, elapsed time, and an estimate of the time left. */
export class BenchProgress {
  private readonly started = performance.now();
  private doneHere = 0;

  constructor(
    readonly total: number,
    private done: number,
  ) {}

  /** One more cell finished; returns the progress line. */
  tick(result: { id: string; testTop1: number; seconds: number } | { id: string; failed: string }): string {
    this.done++;
    this.doneHere++;
    const elapsed = (performance.now() - this.started) / 1000;
    const left = this.total - this.done;
    const eta = left === 0 ? 'done' : `about ${formatDuration((elapsed / this.doneHere) * left)} left`;
    const what = 'failed' in result ? `failed: ${result.failed.split('\n')[0]}` : `test top-1 ${(100 * result.testTop1).toFixed(1)}% in ${formatDuration(result.seconds)}`;
    return `[${this.done}/${this.total}] ${result.id}: ${what} | ${formatDuration(elapsed)} elapsed, ${eta}`;
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${seconds.toFixed(0)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.round((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Runs a benchmark: plans the cells, reuses every finished cell in the results folder, runs the rest
 * where `execution` says (each finished cell is written at once, atomically), then writes
 * results.json, the tables, the check and the plots.
 */
export async function runBench(options: BenchRunOptions): Promise<BenchRunOutcome> {
  const started = performance.now();
  const plan = planBench(options.request);
  for (const { method, reason } of plan.skipped) options.log(`skipping method ${method}: ${reason}`);
  if (plan.cells.length === 0) throw new Error(`nothing to run: none of the requested methods is registered`);
  const folder = new ResultsFolder(options.out);
  folder.ensure();
  const stored = folder.readAll();
  const todo: BenchCell[] = plan.cells.filter((cell) => !folder.finished(cell, options.settings, stored));
  const reused = plan.cells.length - todo.length;
  folder.writeText('plan.json', `${JSON.stringify({ settings: options.settings, settingsKey: settingsKey(options.settings), request: options.request, skipped: plan.skipped, cells: plan.cells }, null, 2)}\n`);
  options.log(`bench: ${plan.cells.length} cells (${plan.variants.length} method variants x tasks x ${options.request.seeds} seed${options.request.seeds === 1 ? '' : 's'}), ${reused} already in ${options.out}, ${todo.length} to run`);

  const progress = new BenchProgress(plan.cells.length, reused);
  const failures: BenchRunOutcome['failures'] = [];
  const onResult = (result: CellResult) => {
    folder.write(result);
    options.log(progress.tick(result));
  };
  const onError = (cell: BenchCell, message: string) => {
    failures.push({ id: cell.id, message });
    options.log(progress.tick({ id: cell.id, failed: message }));
  };
  const execution = options.execution;
  if (todo.length > 0 && options.reportOnly) {
    options.log(`bench: --report-only: ${todo.length} cells not run, listed as missing`);
  } else if (todo.length > 0) {
    if (execution.kind === 'inline') {
      for (const cell of todo) {
        try {
          onResult(await runCell(cell, options.settings, { log: options.log }));
        } catch (error) {
          onError(cell, (error as Error).stack ?? String(error));
        }
      }
    } else if (execution.kind === 'pool') {
      await runCellsInPool(todo, options.settings, { workers: execution.workers, spawn: execution.spawn, onResult, onError, log: options.log });
    } else {
      await runCellsOnQueue(todo, options.settings, { url: execution.url, queueName: execution.queueName, onResult, onError, log: options.log });
    }
  }

  const all = folder.readAll();
  const finished = plan.cells.map((cell) => folder.finished(cell, options.settings, all)).filter((r): r is CellResult => r !== undefined);
  const missingCells = plan.cells.filter((cell) => !folder.finished(cell, options.settings, all)).map((c) => c.id);
  const tasks = options.request.tasks;
  const requested = options.request.methods.map((m) => (typeof m === 'string' ? m : m.label));
  const variants = summarizeVariants(plan, finished, tasks);
  const check = checkResults(variants, tasks, requested);
  const results: BenchResults = {
    schema: 'vqt-bench/1',
    createdAt: new Date().toISOString(),
    command: options.command,
    settings: options.settings,
    settingsKey: settingsKey(options.settings),
    environment: environmentInfo(finished, options.versions),
    tasks: tasks.map((name) => ({ name, group: groupOf(name) })),
    seeds: options.request.seeds,
    requestedMethods: requested,
    skipped: plan.skipped,
    wallSeconds: (performance.now() - started) / 1000,
    ...(options.reportOnly ? { reportOnly: true } : {}),
    cellSeconds: finished.reduce((a, r) => a + r.seconds, 0),
    variants,
    missingCells,
    check,
    cells: finished,
  };
  const files = await writeReport(folder, results, options.request);
  return { results, plan, files, failures, reused };
}

/** results.json, table.md, memory.md, check.md, summary.md and the two plots (SVG and PNG). */
export async function writeReport(folder: ResultsFolder, results: BenchResults, request: PlanRequest): Promise<string[]> {
  const files = [folder.writeText('results.json', `${JSON.stringify(results, null, 2)}\n`)];
  files.push(folder.writeText('table.md', `${accuracyTable(results)}\n`));
  files.push(folder.writeText('memory.md', `${memoryTable(results)}\n`));
  files.push(folder.writeText('check.md', `${checkMarkdown(results.check)}\n`));
  const sweepTasks = request.sweepTasks ?? request.tasks;
  const subtitle = `mean over ${sweepTasks.join(', ')}; ${results.settings.epochs} epochs, batch ${results.settings.batchSize}`;
  const memoryPoints = accuracyMemoryPoints(results.variants, sweepTasks);
  if (memoryPoints.length > 0) {
    const chart = await renderChart(accuracyMemorySpec(memoryPoints, subtitle));
    files.push(folder.writeText('accuracy-vs-memory.svg', chart.svg), folder.writeText('accuracy-vs-memory.png', chart.png));
  }
  const defaultQueries = (method: string) => {
    const cell = results.cells.find((c) => c.method === method && c.purpose === 'table');
    return typeof cell?.options.queries === 'number' ? cell.options.queries : undefined;
  };
  const queryPoints = accuracyQueriesPoints(results.variants, sweepTasks, defaultQueries);
  if (queryPoints.length > 0) {
    const chart = await renderChart(accuracyQueriesSpec(queryPoints, subtitle));
    files.push(folder.writeText('accuracy-vs-queries.svg', chart.svg), folder.writeText('accuracy-vs-queries.png', chart.png));
  }
  files.push(folder.writeText('summary.md', `${summaryMarkdown(results, folder.dir, folder.dir)}\n`));
  return files;
}

/**
 * The README "Results" section (also summary.md): command, machine, backend, date, the tables, the
 * check and the plots. `plotsFrom` is the directory the markdown lives in, for relative plot links.
 */
export function summaryMarkdown(results: BenchResults, resultsDir: string, markdownDir: string): string {
  const env = results.environment;
  const s = results.settings;
  const link = (name: string) => relative(markdownDir, join(resultsDir, name)).split('\\').join('/') || name;
  const plots = ['accuracy-vs-memory', 'accuracy-vs-queries'].filter((name) => existsSync(join(resultsDir, `${name}.png`)));
  const grid = `lr ${s.grid.lr.join(', ')} x wd ${s.grid.weightDecay.join(', ')}`;
  return [
    `Command: \`${results.command}\``,
    '',
    `Machine: ${env.cpus} x ${env.cpuModel} (${env.platform}), Node ${env.node}; backend ${env.backend}${env.backend === 'wasm' ? `, ${env.threads} thread${env.threads === 1 ? '' : 's'}` : ''}. Date: ${results.createdAt.slice(0, 10)}. ` +
      `${env.workerHosts.some((h) => h !== env.host) ? `Cells ran on ${env.workerHosts.join(', ')}. ` : ''}${results.reportOnly ? 'Report rewritten from the stored cells; ' : `Wall time ${(results.wallSeconds / 60).toFixed(1)} min for this invocation; `}cells took ${(results.cellSeconds / 60).toFixed(1)} min in all.`,
    '',
    `Protocol: VTAB-1k (each lr x wd point trained on train800 and scored on val200, the best retrained on train800val200, test top-1 reported); ` +
      `${s.epochs} epochs (${s.warmupEpochs} warmup), batch ${s.batchSize}, ${s.optimizer}, grid ${grid}; ${results.seeds} seed${results.seeds === 1 ? '' : 's'}` +
      `${results.seeds > 1 ? ' (mean ± sample std)' : ''}; backbone ${s.checkpoint === 'embedded' ? 'the embedded ViT (@vqt/vtab-datasets)' : s.checkpoint}; ` +
      `data ${s.data.kind === 'mini' ? `the offline mini suite (seed ${s.data.seed}${s.data.counts ? `, reduced to ${s.data.counts.train800}/${s.data.counts.val200}/${s.data.counts.test} train800/val200/test images` : ''})` : s.data.dir}.`,
    ...(results.skipped.length ? ['', `Skipped (not registered in this build): ${results.skipped.map((x) => x.method).join(', ')}.`] : []),
    ...(results.missingCells.length ? ['', `Missing cells (failed or not run): ${results.missingCells.join(', ')}.`] : []),
    '',
    'Test top-1 (%):',
    '',
    accuracyTable(results),
    '',
    'Training memory: peak bytes of the buffers one training step creates (forward, backward and update; weights and the batch excluded), measured by core\'s profileStep on the first step of every fit; the largest over the method\'s cells.',
    '',
    memoryTable(results),
    '',
    checkMarkdown(results.check),
    ...plots.flatMap((name) => ['', `![${name}](${link(`${name}.png`)}) ([SVG](${link(`${name}.svg`)}))`]),
  ].join('\n');
}

/** Replaces the text between `<!-- bench:results:start -->` and `<!-- bench:results:end -->` in a README. */
export function replaceReadmeSection(readme: string, section: string, file = 'README'): string {
  const start = '<!-- bench:results:start -->';
  const end = '<!-- bench:results:end -->';
  const a = readme.indexOf(start);
  const b = readme.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${file}: no "${start}" ... "${end}" markers to put the results between`);
  return `${readme.slice(0, a + start.length)}\n${section}\n${readme.slice(b)}`;
}

function environmentInfo(cells: CellResult[], extra: Record<string, string> = {}): EnvironmentInfo {
  // The cells ran where their workers ran (a queue's coordinator computes nothing): their backends count.
  const backend = currentBackend();
  const ran = [...new Set(cells.map((c) => `${c.worker.backend}:${c.worker.threads}`))];
  const [kind, threads] = ran.length > 0 ? [[...new Set(cells.map((c) => c.worker.backend))].join(', '), Math.max(...cells.map((c) => c.worker.threads))] : [backend?.kind ?? 'unknown', backend?.threads ?? 0];
  return {
    backend: kind,
    threads,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    host: hostname(),
    workerHosts: [...new Set(cells.map((c) => c.worker.host))],
    versions: { ...packageVersions(['@vqt/core', '@vqt/vtab-datasets', '@tensorflow/tfjs', 'bullmq', 'vega', 'vega-lite', '@resvg/resvg-js']), ...methodVersions(cells), ...extra },
  };
}

const localRequire = createRequire(import.meta.url);

/** Versions of installed packages (from their package.json, found above their entry point). */
export function packageVersions(names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    try {
      let dir = dirname(localRequire.resolve(name));
      for (let i = 0; i < 6; i++, dir = dirname(dir)) {
        const file = join(dir, 'package.json');
        if (!existsSync(file)) continue;
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === name && pkg.version) {
          out[name] = pkg.version;
          break;
        }
      }
    } catch {
      // not installed here: left out
    }
  }
  return out;
}

function methodVersions(cells: CellResult[]): Record<string, string> {
  const names = new Set(cells.flatMap((c) => c.method.split('+')).filter((m) => m !== 'linear'));
  const out: Record<string, string> = {};
  for (const name of names) {
    try {
      getMethod(name);
      Object.assign(out, packageVersions([`@vqt/${name}`]));
    } catch {
      // unregistered: nothing to record
    }
  }
  return out;
}
