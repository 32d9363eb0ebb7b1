import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { MINI_SUITE_TASKS } from './registry.js';
import { defaultSuiteDir } from './suite/cache.js';
import { generateMiniSuite } from './suite/generate.js';
import type { SplitCounts } from './suite/task.js';

export const USAGE = `Usage:
  vqt-datasets generate --out DIR [--seed 0] [--tasks a,b,...] [--counts 800,200,1000] [--workers N]
      Write the mini suite in the VTAB-1k layout. --counts sets the train800,val200,test sizes
      (for quick checks); --workers sets how many tasks run in parallel (default: one per core).
  vqt-datasets tasks
      List the mini-suite tasks.
  vqt-datasets cache-dir [--seed 0]
      Print the default cache directory used by ensureMiniSuite.`;

export interface CliIo {
  log: (line: string) => void;
  error: (line: string) => void;
}

/** Runs the vqt-datasets command line; returns the exit code instead of exiting, for tests. */
export async function runCli(argv: readonly string[], io: CliIo = { log: console.log, error: console.error }): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        out: { type: 'string', short: 'o' },
        seed: { type: 'string', default: '0' },
        tasks: { type: 'string' },
        counts: { type: 'string' },
        workers: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    io.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || command === undefined) {
    (values.help ? io.log : io.error)(USAGE);
    return values.help ? 0 : 2;
  }
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) {
    io.error(`--seed must be a non-negative integer, got ${values.seed}`);
    return 2;
  }
  switch (command) {
    case 'tasks':
      for (const t of MINI_SUITE_TASKS) io.log(`${t.name}\t${t.group}\t${t.numClasses} classes\t${t.source}\t${t.labelMeaning}`);
      return 0;
    case 'cache-dir':
      io.log(defaultSuiteDir(seed));
      return 0;
    case 'generate': {
      if (!values.out) {
        io.error(`generate needs --out DIR\n${USAGE}`);
        return 2;
      }
      const tasks = values.tasks?.split(',').map((t) => t.trim()).filter(Boolean);
      let counts: SplitCounts | undefined;
      if (values.counts !== undefined) {
        const sizes = values.counts.split(',').map(Number);
        if (sizes.length !== 3 || sizes.some((n) => !Number.isInteger(n) || n < 1)) {
          io.error(`--counts must be three positive integers TRAIN,VAL,TEST, got ${values.counts}`);
          return 2;
        }
        counts = { train800: sizes[0], val200: sizes[1], test: sizes[2] };
      }
      const workers = values.workers === undefined ? 'auto' : Number(values.workers);
      if (workers !== 'auto' && (!Number.isInteger(workers) || workers < 0)) {
        io.error(`--workers must be a non-negative integer, got ${values.workers}`);
        return 2;
      }
      const started = performance.now();
      try {
        await generateMiniSuite(resolve(values.out), {
          seed,
          tasks,
          counts,
          workers,
          onTask: (r) => io.log(`${r.task}: ${r.counts.train800}/${r.counts.val200}/${r.counts.test} images in ${(r.milliseconds / 1000).toFixed(1)} s -> ${r.dir}`),
        });
      } catch (error) {
        io.error((error as Error).message);
        return 1;
      }
      io.log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      return 0;
    }
    default:
      io.error(`unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}
