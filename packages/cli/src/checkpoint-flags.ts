import type { Command } from 'commander';

/**
 * Adds `--ignore-unknown` to every subcommand that takes `--checkpoint`: load a checkpoint whose file
 * has tensors the loader does not use, with a warning naming them (by default such a file is refused).
 * Kept apart from program.ts so that the commands' definitions need no edit beyond one call.
 */
export function addCheckpointFlags(program: Command): Command {
  for (const command of program.commands) {
    if (command.options.some((option) => option.long === '--checkpoint')) {
      command.option('--ignore-unknown', 'load a checkpoint that has tensors this loader does not use (each named in a warning); by default it is refused');
    }
  }
  return program;
}
