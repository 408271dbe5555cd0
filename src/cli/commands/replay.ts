import type { Command } from 'commander';
import { printJson } from '../output.js';

interface ReplayCliOptions {
  geom: string;
  to: string;
  rate?: string;
  dtype: string;
  dataPath?: string;
  json?: boolean;
}

async function run(inputs: string[], options: ReplayCliOptions): Promise<void> {
  const [{ replay }, { UserError }, { rateOption }] = await Promise.all([
    import('../../pipeline/replay.js'),
    import('../../util/errors.js'),
    import('../options.js'),
  ]);
  const dtype = options.dtype;
  if (dtype !== 'float32' && dtype !== 'uint16' && dtype !== 'int16' && dtype !== 'int32')
    throw new UserError(`must be float32, uint16, int16 or int32, got '${dtype}'`, undefined, '--dtype');
  const rateHz = rateOption(options.rate);
  process.stderr.write(`replay: binding ${options.to}; frames go out as a receiver connects\n`);
  const report = await replay({
    inputs,
    geometryPath: options.geom,
    to: options.to,
    rateHz,
    dtype,
    dataPath: options.dataPath,
  });
  if (options.json) {
    printJson(report);
    return;
  }
  process.stdout.write(
    `${report.frames} frames sent to ${options.to} in ${report.seconds.toFixed(2)} s (${(report.frames / Math.max(1e-9, report.seconds)).toFixed(1)} frames/s, ${(report.bytes / 2 ** 20 / Math.max(1e-9, report.seconds)).toFixed(1)} MiB/s)` +
      `${report.skipped > 0 ? `; ${report.skipped} unreadable frames skipped` : ''}\n`,
  );
}

export function register(program: Command): void {
  program
    .command('replay')
    .description(
      'Stream files as a detector would: ZeroMQ PUSH of JSON header + raw pixels, for run --source zmq:...',
    )
    .argument('<files...>', 'CXI/HDF5, CBF or .lst inputs, in order')
    .requiredOption('--geom <file>', 'CrystFEL geometry')
    .requiredOption('--to <tcp://HOST:PORT>', 'address to bind (the pipeline connects to it)')
    .option('--rate <hz>', 'frames per second (default: as fast as the receiver takes them)')
    .option('--dtype <type>', 'pixel type on the wire: float32, uint16, int16 or int32', 'float32')
    .option('--data-path <path>', 'frame dataset in HDF5 inputs', '/entry_1/data_1/data')
    .option('--json', 'print the report as JSON')
    .action(run);
}
