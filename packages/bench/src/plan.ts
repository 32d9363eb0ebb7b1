import { hasMethod, methodParts, methodSpec, parseOptionValue, resolveAnyConfig, type OptimizerName } from '@vqt/core';
import type { Normalization } from '@vqt/vtab-datasets';
import { createHash } from 'node:crypto';

/** BenchSettings.checkpoint for @vqt/vtab-datasets' embedded backbone (resolved on each worker). */
export const EMBEDDED_CHECKPOINT = 'embedded';

/**
 * Where the tasks come from: the offline mini suite (generated on demand, also on remote workers;
 * `counts` makes smaller splits, in their own folder, for --quick) or VTAB-1k folders.
 */
export type BenchData =
  | { kind: 'mini'; seed: number; dir?: string; counts?: { train800: number; val200: number; test: number } }
  | { kind: 'folders'; dir: string };

/** Everything a cell's numbers depend on besides the cell itself. Part of the resume key. */
export interface BenchSettings {
  data: BenchData;
  /** Absolute path of the frozen backbone, or EMBEDDED_CHECKPOINT for the embedded ViT. */
  checkpoint: string;
  heads?: number;
  epochs: number;
  warmupEpochs: number;
  batchSize: number;
  optimizer: OptimizerName;
  /** The lr x wd grid searched on val200 (lr already scaled to the batch). */
  grid: { lr: number[]; weightDecay: number[] };
  normalization: Normalization;
  /** Feature-cache memory per worker before spilling (MiB); not part of the result, not in the key. */
  cacheBudgetMiB: number;
}

/** One method configuration in the plan: the default of a method, or a variant for a plot. */
export interface BenchVariant {
  /** Registered method or stack ('vpt+vqt'). */
  method: string;
  /** Row label: 'vqt', 'vqt T=4', 'adaptformer last 2'. Unique in a plan. */
  label: string;
  /** Options over the method's defaults (for a stack: {part: options}). */
  options: Record<string, unknown>;
  /** What the variant is for: the main table, the accuracy-vs-memory plot, the accuracy-vs-T plot. */
  purpose: 'table' | 'last-blocks' | 'queries';
  /** The swept value (k last blocks, or T) for plot variants. */
  sweep?: number;
}

/** One independent unit of work: a variant on a task with a seed, the full VTAB-1k protocol. */
export interface BenchCell {
  /** Stable file-name-safe id: '<task>--<label slug>--s<seed>'. */
  id: string;
  task: string;
  seed: number;
  variant: BenchVariant;
}

/** A table row: a method by name, or a method with options under its own label ('vqt[select=0.5]'). */
export type MethodRequest = string | { method: string; label: string; options: Record<string, unknown> };

export interface PlanRequest {
  methods: MethodRequest[];
  tasks: string[];
  seeds: number;
  /** Per-method option overrides for the table rows: { vqt: { queries: 2 } }. */
  overrides?: Record<string, Record<string, unknown>>;
  /** k values for methods with a `lastBlocks` option (accuracy vs training memory). */
  lastBlocks?: number[];
  /** T values for methods with a `queries` option (accuracy vs number of queries). */
  queries?: number[];
  /** Tasks for the plot variants (default: all tasks). */
  sweepTasks?: string[];
}

export interface BenchPlan {
  cells: BenchCell[];
  variants: BenchVariant[];
  /** Requested methods that are not registered in this build, with the reason. */
  skipped: { method: string; reason: string }[];
}

/** Whether a method name (or each part of a stack) is registered. */
export function methodAvailable(name: string): { ok: true } | { ok: false; reason: string } {
  const missing = name.split('+').filter((part) => !hasMethod(part));
  if (missing.length > 0) return { ok: false, reason: `not registered in this build (${missing.join(', ')}): its package is not installed or not imported` };
  try {
    methodSpec(name);
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}

/** The cells of a run: each available method's table row on every task, plus the plot sweeps, times seeds. */
export function planBench(request: PlanRequest): BenchPlan {
  if (request.seeds < 1 || !Number.isInteger(request.seeds)) throw new Error(`--seeds must be a positive integer (got ${request.seeds})`);
  if (request.tasks.length === 0) throw new Error('no tasks to run');
  const skipped: BenchPlan['skipped'] = [];
  const variants: BenchVariant[] = [];
  const labels = new Set<string>();
  for (const entry of request.methods) {
    const name = typeof entry === 'string' ? entry : entry.method;
    const label = typeof entry === 'string' ? entry : entry.label;
    if (labels.has(label)) continue;
    labels.add(label);
    const available = methodAvailable(name);
    if (!available.ok) {
      skipped.push({ method: label, reason: available.reason });
      continue;
    }
    const options = { ...(request.overrides?.[name] ?? {}), ...(typeof entry === 'string' ? {} : entry.options) };
    // Resolving now turns a bad override into an error before any cell runs.
    resolveAnyConfig(methodSpec(name), options, label);
    variants.push({ method: name, label, options, purpose: 'table' });
    // Sweeps hang off the plain method's row only.
    if (name.includes('+') || label !== name) continue;
    const spec = methodParts(name)[0];
    const keys = new Set(spec.options.map((o) => o.key));
    if (spec.role === 'adapt' && keys.has('lastBlocks')) {
      for (const k of request.lastBlocks ?? []) {
        variants.push({ method: name, label: `${name} last ${k}`, options: { ...options, lastBlocks: k }, purpose: 'last-blocks', sweep: k });
      }
    }
    if (keys.has('queries')) {
      for (const t of request.queries ?? []) {
        if (t === (options.queries ?? (spec.defaults as Record<string, unknown>).queries)) continue;
        variants.push({ method: name, label: `${name} T=${t}`, options: { ...options, queries: t }, purpose: 'queries', sweep: t });
      }
    }
  }
  for (const variant of variants) resolveAnyConfig(methodSpec(variant.method), variant.options, variant.label);
  const sweepTasks = request.sweepTasks ?? request.tasks;
  for (const task of sweepTasks) if (!request.tasks.includes(task)) throw new Error(`sweep task "${task}" is not among the tasks (${request.tasks.join(', ')})`);
  const cells: BenchCell[] = [];
  for (const variant of variants) {
    const tasks = variant.purpose === 'table' ? request.tasks : sweepTasks;
    for (const task of tasks) {
      for (let seed = 0; seed < request.seeds; seed++) cells.push({ id: cellId(task, variant.label, seed), task, seed, variant });
    }
  }
  return { cells, variants, skipped };
}

export function cellId(task: string, label: string, seed: number): string {
  const slug = label.replace(/\+/g, '_plus_').replace(/=/g, '').replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/-+$/, '');
  return `${task}--${slug}--s${seed}`;
}

/** Short hash of the settings a result depends on; a results folder only reuses cells with the same key. */
export function settingsKey(settings: BenchSettings): string {
  const { cacheBudgetMiB: _ignored, ...relevant } = settings;
  return createHash('sha256').update(stableJson(relevant)).digest('hex').slice(0, 12);
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Identity of a cell's result: the settings, the method and its options, the task and the seed. */
export function cellKey(settings: BenchSettings, cell: BenchCell): string {
  const identity = { settings: settingsKey(settings), method: cell.variant.method, options: cell.variant.options, task: cell.task, seed: cell.seed };
  return createHash('sha256').update(stableJson(identity)).digest('hex').slice(0, 16);
}

/**
 * Parses one --methods entry: 'vqt', 'vpt+vqt', or 'vqt[select=0.5,queries=2]' (options by flag or
 * key, values as on the command line). An unregistered method is returned as is, to be skipped with a note.
 */
export function parseMethodRequest(text: string): MethodRequest {
  const match = /^([a-z0-9+-]+)(?:\[(.*)\])?$/.exec(text.trim());
  if (!match) throw new Error(`--methods: "${text}" is not a method name or name[option=value,...]`);
  const [, name, body] = match;
  if (body === undefined) return name;
  if (name.includes('+')) throw new Error(`--methods: "${text}": options in brackets are for single methods, not stacks`);
  const options: Record<string, unknown> = {};
  if (!hasMethod(name)) return { method: name, label: text.trim(), options };
  const spec = methodSpec(name);
  for (const pair of body.split(/[,;](?=[a-zA-Z-]+=)/)) {
    const eq = pair.indexOf('=');
    if (eq < 0) throw new Error(`--methods: "${pair}" in "${text}" is not option=value`);
    const key = pair.slice(0, eq).trim();
    const option = spec.options.find((o) => o.flag === key || o.key === key);
    if (!option) throw new Error(`--methods: method "${name}" has no option "${key}" (options: ${spec.options.filter((o) => !o.hidden).map((o) => o.flag).join(', ')})`);
    options[option.key] = parseOptionValue(option, pair.slice(eq + 1).trim());
  }
  return { method: name, label: text.trim(), options };
}

/** Splits a --methods list at commas outside brackets. */
export function splitMethodList(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === ',' && depth === 0) {
      if (current.trim()) out.push(current.trim());
      current = '';
    } else current += ch;
  }
  if (current.trim()) out.push(current.trim());
  return out;
}
