// Peak memory of one training step for every method at one ViT geometry (random weights), each
// adapting method also limited to its last k blocks (the paper's Fig. 3b), through the same
// registry and trainer that `vqt train` uses. Each configuration runs in its own process: the wasm
// heap only grows, so a process's max RSS belongs to one method alone.
// Usage: node dist/method-memory.js [--preset vit_base_patch16_224] [--batch 32] [--last 1,2,4 | none] [--methods vqt,vpt,...]
//        [--budget-gib G]: the activation budget that decides checkpointing and micro-batches (default:
//        core's, 1 GiB on wasm); a large one (1000) measures the plain step, the whole batch taped at once.
//        [--tag T]: appended to the result file names.
import '@vqt/adaptformer';
import '@vqt/lora';
import '@vqt/vpt';
import '@vqt/vqt';
import { fitMethod, initBackend, presetConfig, randomVit } from '@vqt/core';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { asBackbone, flag, randomSplit, report, RESULTS_DIR } from './report.js';

interface Configuration {
  label: string;
  method: string;
  options: Record<string, unknown>;
}

const preset = flag('preset', 'vit_base_patch16_224');
const batch = Number(flag('batch', '32'));
const lastBlocks = flag('last', '1,2,4').split(',').filter((k) => k && k !== 'none').map(Number); // --last none: whole methods only
const methods = flag('methods', 'linear,vqt,vpt,adaptformer,lora,full').split(',');
const childTimeoutS = Number(flag('child-timeout-s', '3600'));
const child = flag('child', '');
const budgetGib = flag('budget-gib', '');
const tag = flag('tag', ''); // a suffix for the result files, so a partial rerun does not replace a whole run's

function configurations(): Configuration[] {
  // Every method whole first, then the adapting ones limited to their last k blocks.
  const own = (method: string) => (method === 'vpt' ? { prompts: 10 } : {}); // VPT-Deep with 10 prompts per block
  const whole = methods.map((method) => ({ label: method, method, options: own(method) }));
  const limited = lastBlocks.flatMap((k) =>
    methods.filter((m) => ['vpt', 'adaptformer', 'lora', 'full'].includes(m)).map((method) => ({ label: `${method} (last ${k})`, method, options: { ...own(method), lastBlocks: k } })),
  );
  return [...whole, ...limited];
}

/** One training step of `configuration`, measured by the trainer's first-step profile. */
async function measure(configuration: Configuration): Promise<Record<string, number | string>> {
  await initBackend();
  const config = presetConfig(preset);
  const vit = randomVit(config);
  if (budgetGib) vit.checkpointBudgetBytes = Number(budgetGib) * 2 ** 30;
  const backbone = asBackbone(vit, preset);
  const data = randomSplit(batch, config.imageSize);
  let profile = { newBufferBytes: Number.NaN, peakBytes: Number.NaN, startBytes: Number.NaN };
  let stepSeconds = Number.NaN;
  const started = performance.now();
  const fitted = await fitMethod(configuration.method, backbone, data, {
    config: configuration.options,
    epochs: 1,
    batchSize: batch,
    lr: 0.01,
    weightDecay: 0,
    warmupEpochs: 0,
    runtime: { cacheBudgetBytes: 8 * 2 ** 30 },
    onEpochEnd: (log) => {
      stepSeconds = log.seconds;
    },
    onFirstStepProfile: (p) => {
      profile = { ...p };
    },
  });
  const trainable = fitted.trainableParameters();
  // How the step ran: the same plan HookedClassifier asks the trainer for (frozen hooks are not taped).
  const hooks = fitted.trainableHooks?.() ?? [];
  const plan = configuration.method === 'full' ? { checkpointed: '(see fit)', microBatch: '(see fit)' } : vit.trainingPlan(hooks, batch);
  fitted.dispose();
  const MiB = (bytes: number) => +(bytes / 2 ** 20).toFixed(1);
  return {
    method: configuration.label,
    'step buffers MiB': MiB(profile.newBufferBytes),
    'peak tensor MiB (tf.profile)': MiB(profile.peakBytes),
    'max RSS MiB': +(process.resourceUsage().maxRSS / 1024).toFixed(0),
    checkpointed: String(plan.checkpointed),
    'micro-batch': String(plan.microBatch),
    'trainable params': trainable,
    'epoch s': +stepSeconds.toFixed(1),
    'fit s': +((performance.now() - started) / 1000).toFixed(1),
  };
}

if (child) {
  const row = await measure(JSON.parse(child) as Configuration);
  process.stdout.write(`RESULT ${JSON.stringify(row)}\n`);
  process.exit(0);
}

const backend = await initBackend();
const rows: Record<string, number | string>[] = [];
const name = `method-memory-${preset}-b${batch}${budgetGib ? `-budget${budgetGib}g` : ''}${tag ? `-${tag}` : ''}`;
const partial = `${RESULTS_DIR}/${name}.partial.json`;
for (const configuration of configurations()) {
  const run = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(configuration), '--preset', preset, '--batch', String(batch), ...(budgetGib ? ['--budget-gib', budgetGib] : [])], {
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
    timeout: childTimeoutS * 1000,
  });
  const line = run.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (line) rows.push(JSON.parse(line.slice(7)));
  else {
    const last = (run.stderr || run.stdout).trim().split('\n').filter(Boolean).slice(-1)[0] ?? `exit ${run.status}`;
    const aborted = /Aborted\(|memory access out of bounds|Out of memory/i.test(run.stderr ?? '');
    rows.push({ method: configuration.label, 'step buffers MiB': 'failed', error: (aborted ? `wasm heap exhausted (${last})` : last).slice(0, 160) });
  }
  console.error(`${configuration.label}: ${JSON.stringify(rows.at(-1))}`);
  writeFileSync(partial, `${JSON.stringify(rows, null, 2)}\n`);
}
const stepOf = (label: string) => rows.find((r) => r.method === label)?.['step buffers MiB'];
const ratio = (label: string) => {
  const a = stepOf(label);
  const v = stepOf('vqt');
  return typeof a === 'number' && typeof v === 'number' ? +(a / v).toFixed(2) : null;
};
report(name, backend, rows, {
  preset,
  batch,
  activationBudgetBytes: budgetGib ? Number(budgetGib) * 2 ** 30 : "core's default (1 GiB on wasm)",
  ratios: { 'vpt / vqt': ratio('vpt'), 'adaptformer / vqt': ratio('adaptformer'), 'lora / vqt': ratio('lora'), 'full / vqt': ratio('full') },
  goals: 'VPT-Deep / VQT >= 6 and AdaptFormer / VQT >= 8 by the step measure (paper, on GPU: 3.8x and 5.9x)',
  measures:
    "step buffers: peak bytes of the buffers one training step creates, alive at once, each counted once (core's peakNewBufferBytes, the trainer's first-step profile); VQT's step reads its feature cache, built before the step. max RSS: the whole process that ran the fit (backbone init, cache build or feature extraction, one epoch of one step). checkpointed: per-block gradient checkpointing on ('auto', past the activation budget).",
});
process.exit(0);
