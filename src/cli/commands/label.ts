import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import type { LabelChoices, LabelManifest } from '../../engine/label.js';
import { UserError } from '../../util/errors.js';
import { formatTable } from '../../util/table.js';
import { integerOption, numberOption } from '../options.js';
import { printJson } from '../output.js';

interface LabelCliOptions {
  stream: string;
  geom?: string;
  dataRoot?: string;
  out: string;
  radius: string;
  window: string;
  minMatched: string;
  minPrecision: string;
  minRecall: string;
  unmatched?: boolean;
  weighting: string;
  gain?: string;
  maxChi2?: string;
  minSnr: string;
  minHwhm: string;
  supersample: string;
  dataPath?: string;
  shardFrames: string;
  compression: string;
  peaks?: string;
  peaksGroup: string;
  mask: string[];
  workers?: string;
  queue?: string;
  run: string;
  attempts: string;
  json?: boolean;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function printHuman(manifest: LabelManifest, outDir: string): void {
  const t = manifest.totals;
  const reasons = Object.entries(t.badReasons)
    .sort((a, b) => b[1] - a[1])
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
  const lines = [
    `${manifest.stream}: ${t.chunks} chunks, ${t.indexedFrames} indexed, ${t.selectedFrames} selected`,
    '',
    formatTable(
      [
        ['frames labelled', 'peaks labelled', 'bad fits', 'label pixels', 'shards'],
        [
          String(t.labelledFrames),
          String(t.peaks),
          String(t.badFits),
          String(t.labelledPixels),
          String(manifest.shards.length),
        ],
      ],
      'right',
    ),
    '',
    ...(reasons === '' ? [] : [`bad fits: ${reasons}`, '']),
    `wrote ${outDir}/manifest.json and ${manifest.shards.length} shard${manifest.shards.length === 1 ? '' : 's'} (frames at /entry_1/data_1/data, labels at /entry_1/truth_1/mask: braggflow train reads them)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function run(options: LabelCliOptions): Promise<void> {
  const weighting = options.weighting;
  if (weighting !== 'border' && weighting !== 'poisson')
    throw new UserError(`--weighting must be border or poisson, got ${JSON.stringify(weighting)}`);
  const window = integerOption('--window', options.window, 5);
  if (window % 2 === 0) throw new UserError(`--window must be odd, got ${window}`);
  const choices: Partial<LabelChoices> = {
    radiusPx: numberOption('--radius', options.radius),
    windowPx: window,
    minMatched: integerOption('--min-matched', options.minMatched, 0),
    minPrecision: numberOption('--min-precision', options.minPrecision),
    minRecall: numberOption('--min-recall', options.minRecall),
    unmatched: options.unmatched === true,
    weighting,
    shardFrames: integerOption('--shard-frames', options.shardFrames),
    minSnr: numberOption('--min-snr', options.minSnr),
    minHwhmPx: numberOption('--min-hwhm', options.minHwhm),
    supersample: integerOption('--supersample', options.supersample),
    compression: integerOption('--compression', options.compression, 0),
  };
  if (options.gain !== undefined) choices.gain = numberOption('--gain', options.gain);
  if (options.maxChi2 !== undefined)
    choices.maxReducedChiSquare = numberOption('--max-chi2', options.maxChi2);
  const workers =
    options.workers === undefined
      ? Math.min(4, availableParallelism())
      : integerOption('--workers', options.workers);
  const [{ labelStream, workerExecutor }, { createProgress }, { statSync }] = await Promise.all([
    import('../../engine/label.js'),
    import('../../util/progress.js'),
    import('node:fs'),
  ]);
  const foundPeaks =
    options.peaks === undefined
      ? undefined
      : await (await import('../../engine/labels.js')).readPeakLists(options.peaks, options.peaksGroup);
  const sizeBytes = statSync(options.stream, { throwIfNoEntry: false })?.size ?? 0;
  const progress = createProgress('label', 100, (line) => process.stderr.write(`${line}\n`), 25);
  let shown = '';
  if (options.queue !== undefined && options.workers !== undefined && workers > 1)
    throw new UserError('--workers and --queue do not go together: start label-worker processes instead');
  const executor =
    options.queue === undefined
      ? workerExecutor(workers)
      : await (await import('../../engine/label-queue.js')).queueExecutor({
          url: options.queue,
          run: options.run,
          attempts: integerOption('--attempts', options.attempts),
        });
  const manifest = await labelStream({
    executor,
    streamPath: options.stream,
    geometryPath: options.geom,
    dataRoot: options.dataRoot,
    outDir: options.out,
    choices,
    foundPeaks,
    foundSource: options.peaks,
    maskFiles: options.mask,
    dataPath: options.dataPath,
    onWarning: (message) => process.stderr.write(`braggflow: warning: ${message}\n`),
    onProgress: (bytes, frames) => {
      const percent = sizeBytes > 0 ? Math.floor((100 * bytes) / sizeBytes) : 0;
      const key = `${percent} ${frames}`;
      if (key === shown) return;
      shown = key;
      progress.update(percent, `${frames} frames labelled`);
    },
  }).finally(async () => {
    progress.stop();
    await executor.close();
  });
  if (options.json) printJson(manifest);
  else printHuman(manifest, options.out);
}

export function register(program: Command): void {
  program
    .command('label')
    .description(
      "Label a CrystFEL stream's frames: the found peaks its indexing predicts (match), each fitted with a 2-D pseudo-Voigt on a planar background, its half-maximum pixels as the label; written as HDF5 shards that braggflow train reads, with a manifest. Resumable: run it again after a crash",
    )
    .requiredOption('--stream <file>', 'CrystFEL stream (format 2.1-2.3) naming the image files and events')
    .requiredOption('--out <dir>', 'output folder: shard-NNNNN.h5 and manifest.json')
    .option('--geom <file>', "CrystFEL geometry (default: the stream's own geometry block)")
    .option(
      '--data-root <dir>',
      "folder the stream's image file names are relative to (tried first; then the stream's folder, then the working folder)",
    )
    .option('--radius <px>', 'match radius, pixels', '5')
    .option('--window <px>', 'side of the square fit window, pixels (odd)', '9')
    .option('--min-matched <n>', 'label a frame only with at least this many matched peaks', '10')
    .option('--min-precision <p>', 'label a frame only when matched / found is at least this', '0.5')
    .option('--min-recall <r>', 'label a frame only when matched / predicted is at least this', '0')
    .option('--unmatched', 'also fit and label the found peaks no prediction matched')
    .option(
      '--weighting <kind>',
      'fit weights: border (noise from the window border; no detector constant) or poisson',
      'border',
    )
    .option(
      '--gain <adu>',
      "detector units per photon for the fits' shot noise (default: the geometry's adu_per_photon, or adu_per_eV x its photon energy, else 1)",
    )
    .option('--max-chi2 <x>', 'fits with a larger reduced chi-square are bad (default: not checked)')
    .option(
      '--min-snr <x>',
      "label a spot only when its label pixels' background-subtracted sum is at least this many standard deviations",
      '5',
    )
    .option(
      '--min-hwhm <px>',
      'smallest fitted half width at half maximum: narrower spots are unresolved and label their central pixel',
      '0.3',
    )
    .option(
      '--supersample <n>',
      'sample points per pixel side of the fitted profile (1: pixel centres; 3: averaged over the pixel, as a pixel records a spot)',
      '3',
    )
    .option('--data-path <path>', "frame dataset in the image files (default: the geometry's data)")
    .option('--shard-frames <n>', 'frames per shard', '64')
    .option('--compression <level>', 'gzip level of frames and labels (0: none)', '1')
    .option(
      '--peaks <file>',
      "found peaks instead of the stream's own: a CXI peak table with a row per frame of the image file (event //N is row N)",
    )
    .option('--peaks-group <group>', 'peak table group in the --peaks file', '/entry_1/result_1')
    .option(
      '--mask <file[:dataset]>',
      'extra mask file (nonzero = good; default dataset /data/data); repeatable',
      collect,
      [],
    )
    .option('--workers <n>', 'worker threads, a shard each (1: this thread; default: the cores, at most 4)')
    .option(
      '--queue <redis://HOST:PORT>',
      'run the shards as BullMQ jobs in this Redis: start `braggflow label-worker --queue URL` processes on any machine that sees the files',
    )
    .option('--run <id>', 'names the job queue (label-worker --run takes the same)', 'default')
    .option('--attempts <n>', 'tries per shard job on the queue before it is reported failed', '3')
    .option('--json', 'print the manifest as JSON')
    .action(run);
}

interface WorkerCliOptions {
  queue: string;
  run: string;
  concurrency: string;
  lockMs: string;
  idleExit?: string;
}

async function runWorker(options: WorkerCliOptions): Promise<void> {
  const { runQueueWorker } = await import('../../engine/label-queue.js');
  const worker = await runQueueWorker({
    url: options.queue,
    run: options.run,
    concurrency: integerOption('--concurrency', options.concurrency),
    lockMs: integerOption('--lock-ms', options.lockMs, 1000),
    idleExitMs:
      options.idleExit === undefined ? undefined : 1000 * numberOption('--idle-exit', options.idleExit),
    onJob: (event, job) =>
      process.stderr.write(
        `label-worker: shard ${job.index} ${event}${job.reason === undefined ? '' : `: ${job.reason}`}\n`,
      ),
  });
  const stop = () => void worker.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.stderr.write(`label-worker: taking jobs of run '${options.run}' from ${options.queue}\n`);
  await worker.done;
}

export function registerWorker(program: Command): void {
  program
    .command('label-worker')
    .description(
      'Take `braggflow label --queue` shard jobs from Redis and run them, one at a time, until stopped (SIGINT/SIGTERM) or idle',
    )
    .requiredOption('--queue <redis://HOST:PORT>', 'the Redis the coordinator (label --queue) uses')
    .option('--run <id>', 'the queue name the coordinator uses (label --run)', 'default')
    .option('--concurrency <n>', 'jobs at once in this process', '1')
    .option('--lock-ms <ms>', "a dead worker's job goes back to the queue after this long", '30000')
    .option('--idle-exit <s>', 'exit after this many seconds without a job')
    .action(runWorker);
}
