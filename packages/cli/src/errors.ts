/** An error the user caused (bad flag, bad file): printed as one line, no stack. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The one line the CLI prints for any failure; VQT_DEBUG=1 adds the stack. */
export function describeFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const line = message.split('\n')[0];
  if (process.env.VQT_DEBUG && error instanceof Error && error.stack) return `vqt: ${line}\n${error.stack}`;
  return `vqt: ${line}`;
}
