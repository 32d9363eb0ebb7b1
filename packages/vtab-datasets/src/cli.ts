#!/usr/bin/env node
/** The vqt-datasets executable. */
import { runCli } from './cli-run.js';

void runCli(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
