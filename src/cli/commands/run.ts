import type { Command } from 'commander';
import {
  addMethodOptions,
  type MethodCliOptions,
  resolveFinderSpec,
  resolvePeakNetOptions,
} from '../method-options.js';
import { printJson } from '../output.js';

interface RunCliOptions extends MethodCliOptions {
  config?: string;
  source?: string;
  geom?: string;
  out?: string;
  transport: string;
  run?: string;
  role: string;
  maxBacklog: string;
  claimIdleMs: string;
  consumer?: string;
  monitor?: string;
  summary?: string;
  rate?: string;
  workers: string;
  minPeaks: string;
  allFrames?: boolean;
  gzip: string;
  queue: string;
  dataPath?: string;
  mask?: string[];
  json?: boolean;
}

/** Settings from `--config` where no flag was given on the command line (flags win). */
async function withConfig(options: RunCliOptions, command: Command): Promise<RunCliOptions> {
  if (options.config === undefined) return options;
  const { readRunConfig } = await import('../../pipeline/config.js');
  const merged: Record<string, unknown> = { ...options };
  for (const [key, value] of Object.entries(readRunConfig(options.config))) {
    if (command.getOptionValueSource(key) === 'cli') continue;
    merged[key] = typeof value === 'number' ? String(value) : value;
  }
  return merged as unknown as RunCliOptions;
}

async function run(given: RunCliOptions, command: Command): Promise<void> {
  const options = await withConfig(given, command);
  const [{ runPipeline, runPipelineRoles }, { integerOption, rateOption }, { UserError }] = await Promise.all(
    [import('../../pipeline/run.js'), import('../options.js'), import('../../util/errors.js')],
  );
  const workers = integerOption('--workers', options.workers);
  const redis = options.transport !== 'inproc';
  const role = options.role;
  if (role !== 'producer' && role !== 'consumer' && role !== 'sink' && role !== 'all')
    throw new UserError(`must be producer, consumer, sink or all, got '${role}'`, undefined, '--role');
  if (!redis && role !== 'all')
    throw new UserError(
      'roles are processes of a Redis run: give --transport redis://HOST:PORT --run ID',
      undefined,
      '--role',
    );
  if (redis && options.run === undefined)
    throw new UserError("a Redis run needs --run ID (it names the run's streams)", undefined, '--run');
  // What each role needs: the producer a source and geometry, the sink an output file.
  const needs: [keyof RunCliOptions, string, boolean][] = [
    ['source', '--source', role === 'producer' || role === 'all'],
    ['geom', '--geom', role === 'producer' || role === 'all'],
    ['out', '--out', role === 'sink' || role === 'all'],
  ];
  for (const [key, flag, needed] of needs)
    if (needed && options[key] === undefined)
      throw new UserError(`is required${role === 'all' ? '' : ` for --role ${role}`}`, undefined, flag);
  const rateHz = rateOption(options.rate);
  const processor =
    options.method === 'peaknet'
      ? { method: 'peaknet' as const, ...(await resolvePeakNetOptions(options)), workers }
      : await (async () => {
          const finder = await resolveFinderSpec(options);
          return { method: finder.method, finder, workers };
        })();
  // Ctrl-C ends an endless source; the run then writes what it has and its summary.
  let stop = false;
  const onSignal = () => {
    if (stop) process.exit(130);
    stop = true;
    process.stderr.write('\nstopping: finishing the frames in flight (Ctrl-C again to abort)\n');
  };
  process.on('SIGINT', onSignal);
  let lastLog = 0;
  const pipelineOptions = {
    source: options.source,
    rateHz,
    geometryPath: options.geom,
    dataPath: options.dataPath,
    maskFiles: options.mask,
    processor,
    minPeaks: integerOption('--min-peaks', options.minPeaks, 0),
    outPath: options.out,
    summaryPath: options.summary,
    allFrames: options.allFrames,
    gzip: integerOption('--gzip', options.gzip, 0),
    maxPeaks: options.maxPeaks === undefined ? undefined : integerOption('--max-peaks', options.maxPeaks),
    queueFrames: integerOption('--queue', options.queue),
    transport: options.transport,
    run: options.run,
    role: role as import('../../pipeline/run.js').PipelineRole,
    maxBacklog: integerOption('--max-backlog', options.maxBacklog),
    claimIdleMs: integerOption('--claim-idle-ms', options.claimIdleMs),
    consumerName: options.consumer,
    monitor: options.monitor,
    onMonitor: (url: string) => process.stderr.write(`monitor: ${url} (Prometheus: ${url}/metrics)\n`),
    stopped: () => stop,
    onResult: (_result: unknown, stats: () => import('../../pipeline/collector.js').RunStats) => {
      const now = performance.now();
      if (now - lastLog < 2000) return;
      lastLog = now;
      const s = stats();
      process.stderr.write(
        `run ${s.frames} frames, ${s.hits} hits (${(100 * s.hitRate).toFixed(1)} %), ${s.framesPerSecond.toFixed(1)} frames/s, ${s.peaksPerHit.toFixed(1)} peaks/hit\n`,
      );
    },
  };
  let summary: import('../../pipeline/run.js').PipelineSummary | undefined;
  let reports: import('../../pipeline/run.js').RoleReports = {};
  try {
    if (redis) {
      reports = await runPipelineRoles(pipelineOptions);
      summary = reports.summary;
    } else summary = await runPipeline(pipelineOptions);
  } finally {
    process.off('SIGINT', onSignal);
  }
  if (options.json) {
    printJson(summary ?? reports);
    return;
  }
  if (reports.producer !== undefined)
    process.stdout.write(
      `producer: ${reports.producer.frames} frames sent; backlog at most ${reports.producer.maxBacklog}; waited ${reports.producer.waitedS.toFixed(1)} s for consumers\n`,
    );
  if (reports.consumer !== undefined)
    process.stdout.write(
      `consumer ${reports.consumer.name}: ${reports.consumer.frames} frames processed, ${reports.consumer.claimed} taken over from others\n`,
    );
  if (summary === undefined) return;
  const lines = [
    `${summary.frames} frames from ${summary.source}: ${summary.hits} hits (${(100 * summary.hitRate).toFixed(1)} %), ${summary.peaksPerHit.toFixed(1)} peaks per hit`,
    `${summary.framesPerSecond.toFixed(2)} frames/s; latency p50 ${summary.latencyMs.p50.toFixed(0)} ms, p99 ${summary.latencyMs.p99.toFixed(0)} ms${summary.queue === undefined ? '' : `; queue at most ${summary.queue.maxDepth} of ${summary.queue.capacity}`}`,
    `lost ${summary.lost}, duplicates ${summary.duplicates}, dead letters ${summary.deadLetters.length}${summary.deadLetters.length > 0 ? ` (first: ${summary.deadLetters[0].reason})` : ''}`,
    `wrote ${summary.outputs.cxi} (${summary.rows} rows), ${summary.outputs.lst}, ${summary.outputs.geom}${summary.outputs.summary ? `, ${summary.outputs.summary}` : ''}`,
    `index them: indexamajig -i ${summary.outputs.lst} -g ${summary.outputs.geom} --peaks=cxi -o run.stream ...`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function register(program: Command): void {
  const command = program
    .command('run')
    .description(
      'The real-time pipeline: frames from a source through a peak finder into a CXI that CrystFEL reads (hits, their peaks, .lst and .geom beside it) and a run summary',
    )
    .option(
      '--source <spec>',
      'file:RUN.cxi|.h5|.cbf|.lst (or a bare path), or sim:PRESET[?frames=N&seed=S&hitRate=P]',
    )
    .option(
      '--geom <file>',
      "CrystFEL geometry (the producer's; consumers and the sink of a Redis run take it from the run)",
    )
    .option(
      '--out <file.cxi>',
      'CXI to write: one row per hit (frame and peaks); OUT.lst and OUT.geom beside it',
    )
    .option('--transport <t>', 'inproc (one process) or redis://HOST:PORT (roles on any machine)', 'inproc')
    .option('--run <id>', 'Redis: the run id (names its streams); restart a role with the same id to resume')
    .option('--role <role>', 'Redis: producer, consumer, sink or all (this process plays them all)', 'all')
    .option('--max-backlog <frames>', 'Redis: frames waiting for consumers before the producer waits', '32')
    .option('--claim-idle-ms <ms>', 'Redis: take over frames another consumer has held this long', '5000')
    .option('--consumer <name>', "Redis: this consumer's name (default host-pid)")
    .option(
      '--monitor <host:port>',
      'serve the live monitor and Prometheus /metrics here (e.g. 127.0.0.1:8080; the sink side)',
    )
    .option(
      '--summary <file.json>',
      'run summary: frames, hits, hit rate, peaks per hit, frames/s, latency, lost, duplicates',
    )
    .option('--rate <hz>', 'hold the source to this repetition rate, as a detector')
    .option('--workers <n>', 'worker threads for the finder (peaknet: a session each)', '1')
    .option('--min-peaks <n>', 'hit decision: at least this many peaks', '10')
    .option('--all-frames', 'keep misses in the CXI too')
    .option('--gzip <level>', "gzip level of the CXI's frames (0 = none)", '0')
    .option('--queue <frames>', 'frames held between source and finder (backpressure beyond)', '8')
    .option('--data-path <path>', 'frame dataset in HDF5 sources', '/entry_1/data_1/data')
    .option(
      '--mask <file[:dataset]>',
      'extra mask file (nonzero = good; default dataset /data/data); repeatable',
      collect,
    )
    .option('--json', 'print the summary as JSON')
    .option(
      '--config <run.json>',
      'settings as a file: the flags in camelCase (flags given here win; paths relative to it)',
    );
  addMethodOptions(command).action(run);
}
