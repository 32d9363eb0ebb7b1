import { describeBackend, initBackend, parseBackendName, type BackendInfo } from '@vqt/core';

export interface GlobalOptions {
  backend?: string;
  threads?: number;
}

/** Starts the backend and says which one runs (always, on stderr, so stdout stays machine-readable). */
export async function startBackend(options: GlobalOptions): Promise<BackendInfo> {
  const info = await initBackend({ backend: options.backend ? parseBackendName(options.backend) : undefined, threads: options.threads });
  process.stderr.write(`${describeBackend(info)}\n`);
  return info;
}

export function log(line: string): void {
  process.stderr.write(`${line}\n`);
}
