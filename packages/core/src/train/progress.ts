import cliProgress from 'cli-progress';

export interface ProgressReporter {
  startEpoch(epoch: number, totalEpochs: number, batches: number): void;
  step(done: number, loss: number): void;
  endEpoch(line: string): void;
  stop(): void;
}

/** A bar on a TTY, one plain line per epoch otherwise (CI logs), or nothing. */
export function createProgress(mode: 'auto' | 'bar' | 'lines' | 'none' = 'auto', stream: NodeJS.WriteStream = process.stderr): ProgressReporter {
  const kind = mode === 'auto' ? (stream.isTTY ? 'bar' : 'lines') : mode;
  if (kind === 'none') return { startEpoch() {}, step() {}, endEpoch() {}, stop() {} };
  if (kind === 'lines') {
    return { startEpoch() {}, step() {}, endEpoch: (line) => void stream.write(`${line}\n`), stop() {} };
  }
  let bar: cliProgress.SingleBar | undefined;
  return {
    startEpoch(epoch, totalEpochs, batches) {
      bar = new cliProgress.SingleBar(
        { stream, format: `epoch ${epoch + 1}/${totalEpochs} [{bar}] {value}/{total} loss {loss}`, hideCursor: true, clearOnComplete: true },
        cliProgress.Presets.shades_classic,
      );
      bar.start(batches, 0, { loss: '-' });
    },
    step(done, loss) {
      bar?.update(done, { loss: loss.toFixed(4) });
    },
    endEpoch(line) {
      bar?.stop();
      bar = undefined;
      stream.write(`${line}\n`);
    },
    stop() {
      bar?.stop();
    },
  };
}
