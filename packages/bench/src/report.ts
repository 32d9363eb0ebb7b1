import { hasMethod } from '@vqt/core';
import { getTask, type TaskGroup } from '@vqt/vtab-datasets';
import type { CellResult } from './cell.js';
import type { BenchPlan, BenchSettings, BenchVariant } from './plan.js';

export type Group = TaskGroup | 'other';
const GROUP_ORDER: Group[] = ['natural', 'specialized', 'structured', 'other'];
const GROUP_TITLE: Record<Group, string> = { natural: 'Natural', specialized: 'Specialized', structured: 'Structured', other: 'Other' };

export function groupOf(task: string): Group {
  try {
    return getTask(task).group;
  } catch {
    return 'other';
  }
}

/** Mean and spread (sample standard deviation; 0 for one value) of a cell's seeds. */
export interface Stat {
  mean: number;
  std: number;
  n: number;
}

export function stat(values: number[]): Stat {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}

export interface VariantSummary {
  label: string;
  method: string;
  purpose: BenchVariant['purpose'];
  sweep?: number;
  /** Test top-1 per task over seeds (fractions). Missing tasks had no finished cell. */
  tasks: Record<string, Stat>;
  /** Mean of the task means per group, when every task of the group finished. */
  groups: Partial<Record<Group, number>>;
  /** Mean over all tasks, when every task finished. */
  mean?: number;
  trainableParameters?: number;
  /** Largest peak training-step memory over the variant's cells (bytes); null: no gradient steps. */
  peakStepBytes?: number | null;
  seconds: number;
}

export interface EnvironmentInfo {
  /** The backend the cells ran on (several, comma-separated, if workers differed). */
  backend: string;
  /** Most wasm threads any cell's worker used. */
  threads: number;
  node: string;
  platform: string;
  cpus: number;
  cpuModel: string;
  /** Where this summary was made. */
  host: string;
  /** Where the cells ran. */
  workerHosts: string[];
  versions: Record<string, string>;
}

export interface CheckLine {
  claim: string;
  outcome: 'holds' | 'fails' | 'skipped';
  detail: string;
}

export interface BenchCheck {
  /** VQT's training memory below the adapting methods' and full fine-tuning's: fails the run when it does not hold. */
  memory: CheckLine[];
  /** The paper's accuracy orderings: reported, never failing. */
  accuracy: CheckLine[];
  failed: boolean;
}

export interface BenchResults {
  schema: 'vqt-bench/1';
  createdAt: string;
  command: string;
  settings: BenchSettings;
  settingsKey: string;
  environment: EnvironmentInfo;
  tasks: { name: string; group: Group }[];
  seeds: number;
  requestedMethods: string[];
  skipped: BenchPlan['skipped'];
  /** Wall time of this invocation (seconds); cells reused from an earlier invocation keep their own times. */
  wallSeconds: number;
  /** Set when this report was rewritten from stored cells without running any (--report-only). */
  reportOnly?: boolean;
  /** Sum of every cell's own time (seconds). */
  cellSeconds: number;
  variants: VariantSummary[];
  missingCells: string[];
  check: BenchCheck;
  cells: CellResult[];
}

export function summarizeVariants(plan: BenchPlan, results: CellResult[], tasks: string[]): VariantSummary[] {
  return plan.variants.map((variant) => {
    const own = results.filter((r) => r.label === variant.label);
    const byTask = new Map<string, number[]>();
    for (const r of own) byTask.set(r.task, [...(byTask.get(r.task) ?? []), r.testTop1]);
    const taskStats: Record<string, Stat> = {};
    for (const task of tasks) if (byTask.has(task)) taskStats[task] = stat(byTask.get(task)!);
    const expected = tasks.filter((t) => plan.cells.some((c) => c.variant.label === variant.label && c.task === t));
    const groups: Partial<Record<Group, number>> = {};
    for (const group of GROUP_ORDER) {
      const members = expected.filter((t) => groupOf(t) === group);
      if (members.length > 0 && members.every((t) => taskStats[t])) groups[group] = members.reduce((a, t) => a + taskStats[t].mean, 0) / members.length;
    }
    const complete = expected.length > 0 && expected.every((t) => taskStats[t]);
    const steps = own.map((r) => r.peakStepBytes);
    const params = own.map((r) => r.trainableParameters);
    return {
      label: variant.label,
      method: variant.method,
      purpose: variant.purpose,
      ...(variant.sweep !== undefined ? { sweep: variant.sweep } : {}),
      tasks: taskStats,
      groups,
      ...(complete ? { mean: expected.reduce((a, t) => a + taskStats[t].mean, 0) / expected.length } : {}),
      ...(params.length ? { trainableParameters: Math.round(params.reduce((a, b) => a + b, 0) / params.length) } : {}),
      ...(steps.length ? { peakStepBytes: steps.every((s) => s === null) ? null : Math.max(...steps.filter((s): s is number => s !== null)) } : {}),
      seconds: own.reduce((a, r) => a + r.seconds, 0),
    };
  });
}

/** Mean test top-1 of a variant over the given tasks (all must have finished). */
export function meanOver(summary: VariantSummary, tasks: string[]): number | undefined {
  if (tasks.length === 0 || !tasks.every((t) => summary.tasks[t])) return undefined;
  return tasks.reduce((a, t) => a + summary.tasks[t].mean, 0) / tasks.length;
}

const pct = (x: number | undefined) => (x === undefined ? '—' : (100 * x).toFixed(1));
const mib = (bytes: number | null | undefined) => (bytes === undefined ? '—' : bytes === null ? 'no SGD steps' : (bytes / 2 ** 20).toFixed(2));

/** The main table, shaped like the paper's Table 1: tasks grouped Natural / Specialized / Structured, group means, mean. */
export function accuracyTable(results: Pick<BenchResults, 'variants' | 'tasks' | 'seeds'>): string {
  const tasks = [...results.tasks].sort((a, b) => GROUP_ORDER.indexOf(a.group) - GROUP_ORDER.indexOf(b.group));
  const groups = GROUP_ORDER.filter((g) => tasks.some((t) => t.group === g));
  const header = ['Method', ...tasks.map((t) => `${t.name} (${GROUP_TITLE[t.group].slice(0, 4)}.)`), ...groups.map((g) => `${GROUP_TITLE[g]} mean`), 'Mean'];
  const cell = (s: Stat | undefined) => (s === undefined ? '—' : results.seeds > 1 ? `${pct(s.mean)} ± ${pct(s.std)}` : pct(s.mean));
  const rows = results.variants
    .filter((v) => v.purpose === 'table')
    .map((v) => [v.label, ...tasks.map((t) => cell(v.tasks[t.name])), ...groups.map((g) => pct(v.groups[g])), `**${pct(v.mean)}**`]);
  return markdownTable(header, rows);
}

/** Peak training memory per method (Fig. 3a), with trainable parameters, at the run's batch size. */
export function memoryTable(results: Pick<BenchResults, 'variants' | 'settings'>): string {
  const table = results.variants.filter((v) => v.purpose === 'table');
  const vqt = table.find((v) => v.label === 'vqt')?.peakStepBytes;
  const header = ['Method', 'Trainable params (mean over tasks)', `Peak training-step memory (MiB, batch ${results.settings.batchSize})`, 'vs VQT', 'Cell time (s, all seeds and tasks)'];
  const rows = table.map((v) => [
    v.label,
    v.trainableParameters === undefined ? '—' : v.trainableParameters.toLocaleString('en-US'),
    mib(v.peakStepBytes),
    typeof vqt === 'number' && typeof v.peakStepBytes === 'number' ? `${(v.peakStepBytes / vqt).toFixed(2)}x` : '—',
    v.seconds.toFixed(0),
  ]);
  return markdownTable(header, rows);
}

export function markdownTable(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/**
 * The CI check. Memory: VQT's peak training-step memory must be below that of VPT-Deep, AdaptFormer
 * and full fine-tuning (each registered one that ran); anything else is reported as skipped with why.
 * Accuracy: the paper's orderings, reported as they came out, never failing.
 */
export function checkResults(variants: VariantSummary[], tasks: string[], requested: string[]): BenchCheck {
  const table = new Map(variants.filter((v) => v.purpose === 'table').map((v) => [v.label, v]));
  const memory: CheckLine[] = [];
  const accuracy: CheckLine[] = [];
  const why = (name: string) => (!hasMethod(name) ? 'not registered in this build' : !requested.includes(name) ? 'not among this run\'s methods' : 'no finished cells');
  const vqt = table.get('vqt');
  for (const other of ['vpt', 'adaptformer', 'full']) {
    const claim = `VQT trains in less memory than ${other}`;
    const them = table.get(other);
    if (!vqt || typeof vqt.peakStepBytes !== 'number') {
      memory.push({ claim, outcome: 'fails', detail: `VQT has no measured training step (${vqt ? 'no profile' : why('vqt')}); --check needs vqt in the run` });
    } else if (!them) {
      memory.push({ claim, outcome: 'skipped', detail: `${other}: ${why(other)}` });
    } else if (typeof them.peakStepBytes !== 'number') {
      memory.push({ claim, outcome: 'skipped', detail: `${other}: no measured training step` });
    } else {
      const holds = vqt.peakStepBytes < them.peakStepBytes;
      memory.push({ claim, outcome: holds ? 'holds' : 'fails', detail: `vqt ${mib(vqt.peakStepBytes)} MiB vs ${other} ${mib(them.peakStepBytes)} MiB per training step` });
    }
  }
  const compare = (claim: string, upper: string, lower: string) => {
    const a = table.get(upper);
    const b = table.get(lower);
    if (!a || !b) return accuracy.push({ claim, outcome: 'skipped', detail: [!a ? `${upper}: ${why(upper)}` : '', !b ? `${lower}: ${why(lower)}` : ''].filter(Boolean).join('; ') });
    const shared = tasks.filter((t) => a.tasks[t] && b.tasks[t]);
    const ma = meanOver(a, shared);
    const mb = meanOver(b, shared);
    if (ma === undefined || mb === undefined) return accuracy.push({ claim, outcome: 'skipped', detail: 'no task finished for both' });
    const wins = shared.filter((t) => a.tasks[t].mean > b.tasks[t].mean).length;
    accuracy.push({
      claim,
      outcome: ma > mb ? 'holds' : 'fails',
      detail: `mean test top-1 over ${shared.length} task${shared.length === 1 ? '' : 's'}: ${upper} ${pct(ma)} vs ${lower} ${pct(mb)} (${upper} ahead on ${wins} of ${shared.length})`,
    });
  };
  compare('VQT above the linear probe', 'vqt', 'linear');
  compare('VQT above Head2Toe', 'vqt', 'head2toe');
  compare('VQT above full fine-tuning', 'vqt', 'full');
  for (const label of table.keys()) {
    if (!label.includes('+')) continue;
    compare(`stack ${label} above its base`, label, label.split('+')[0]);
  }
  return { memory, accuracy, failed: memory.some((line) => line.outcome === 'fails') };
}

export function checkMarkdown(check: BenchCheck): string {
  const mark = { holds: 'holds', fails: '**does not hold**', skipped: 'skipped' } as const;
  return [
    'Memory (fails the check when it does not hold):',
    '',
    ...check.memory.map((l) => `- ${l.claim}: ${mark[l.outcome]} — ${l.detail}`),
    '',
    'Accuracy orderings from the paper (reported, never failing):',
    '',
    ...check.accuracy.map((l) => `- ${l.claim}: ${mark[l.outcome]} — ${l.detail}`),
  ].join('\n');
}
