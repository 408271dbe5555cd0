import cliProgress from 'cli-progress';

/** Progress of long work: a bar on a terminal, a line every `logEvery` steps otherwise (logs, CI). */
export interface Progress {
  update(done: number, detail: string): void;
  stop(): void;
}

export function createProgress(
  label: string,
  total: number,
  log: (line: string) => void,
  logEvery = 50,
): Progress {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {value}/{total} {detail}`, stream: process.stderr, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { detail: '' });
    return {
      update: (done, detail) => bar.update(done, { detail }),
      stop: () => bar.stop(),
    };
  }
  return {
    update(done, detail) {
      if (done === 1 || done % logEvery === 0 || done === total) log(`  ${label} ${done}/${total} ${detail}`);
    },
    stop() {},
  };
}
