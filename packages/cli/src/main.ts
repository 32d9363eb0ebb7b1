import type { Command } from 'commander';
import { describeFailure } from './errors.js';
import { buildProgram } from './program.js';

const program: Command = buildProgram();
program
  .parseAsync(process.argv)
  .then(() => process.exit(0)) // threaded wasm keeps Node alive: exit explicitly (ENGINE.md)
  .catch((error: unknown) => {
    process.stderr.write(`${describeFailure(error)}\n`);
    process.exit(1);
  });
