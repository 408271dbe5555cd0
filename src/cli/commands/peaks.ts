import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseFrameRange } from '../../util/frame-range.js';
import {
  addMethodOptions,
  type MethodCliOptions,
  resolveFinderSpec,
  resolvePeakNetOptions,
} from '../method-options.js';
import { printJson } from '../output.js';

interface PeaksCliOptions extends MethodCliOptions {
  geom: string;
  in: string[];
  out: string;
  dataPath?: string;
  mask?: string[];
  frames?: string;
  workers: string;
  withFrames?: boolean;
  json?: boolean;
}

/** The progress bar over frames, and each frame's peaks kept for `--json`. */
async function frameRecorder(json: boolean) {
  const [{ createProgress }, { peakColumns }] = await Promise.all([
    import('../../util/progress.js'),
    import('../../peaks/peak-list.js'),
  ]);
  const frames: { file: string; frame: number; count: number; peaks: Record<string, number>[] }[] = [];
  let progress: ReturnType<typeof createProgress> | undefined;
  return {
    frames,
    onFrame(done: number, total: number, result: import('../../peaks/run-peaks.js').FrameResult) {
      progress ??= createProgress('peaks', total, (line) => process.stderr.write(`${line}\n`));
      progress.update(done, `${result.peaks.count} peaks`);
      if (!json) return;
      const peaks: Record<string, number>[] = [];
      for (let k = 0; k < result.peaks.count; k++) {
        const peak: Record<string, number> = {};
        for (const column of peakColumns) peak[column] = result.peaks[column][k];
        peaks.push(peak);
      }
      frames.push({ file: result.file, frame: result.frame, count: result.peaks.count, peaks });
    },
    stop: () => progress?.stop(),
  };
}

async function run(options: PeaksCliOptions): Promise<void> {
  const [{ UserError }, pf8, { runPeaks }] = await Promise.all([
    import('../../util/errors.js'),
    import('../../peaks/pf8-params.js'),
    import('../../peaks/run-peaks.js'),
  ]);
  const method = options.method;
  if (method === 'peaknet') return runPeakNet(options);
  const spec = await resolveFinderSpec(options);
  const workers = Number(options.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 256)
    throw new UserError(`must be an integer from 1 to 256, got '${options.workers}'`, undefined, '--workers');

  const recorder = await frameRecorder(options.json === true);
  const frames = recorder.frames;
  const summary = await runPeaks({
    geometryPath: options.geom,
    inputs: options.in,
    outPath: options.out,
    spec,
    dataPath: options.dataPath,
    maskFiles: options.mask,
    frames: options.frames === undefined ? undefined : parseFrameRange(options.frames),
    workers,
    withFrames: options.withFrames,
    onFrame: recorder.onFrame,
  });
  recorder.stop();
  const params =
    spec.method === 'pf8'
      ? pf8.pf8ParamsToJson(spec.params)
      : (spec.params as unknown as Record<string, unknown>);
  printSummary(options, summary, { method, params }, frames);
}

/** The run's summary: JSON (`head` first, then the counts and every frame) or one line. */
function printSummary(
  options: PeaksCliOptions,
  summary: import('../../peaks/run-peaks.js').RunPeaksSummary,
  head: Record<string, unknown>,
  frames: unknown[],
): void {
  for (const warning of summary.warnings) process.stderr.write(`braggflow: warning: ${warning}\n`);
  if (options.json) {
    printJson({
      ...head,
      out: options.out,
      frameCount: summary.frames,
      peakCount: summary.peaks,
      peaksDropped: summary.peaksDropped,
      warnings: summary.warnings,
      seconds: summary.seconds,
      frameData: summary.frameData,
      lst: summary.lstPath,
      geom: summary.geomPath,
      frames,
    });
    return;
  }
  process.stdout.write(
    `${summary.frames} frames, ${summary.peaks} peaks (${(summary.peaks / Math.max(1, summary.frames)).toFixed(1)} per frame) -> ${options.out} in ${summary.seconds.toFixed(2)} s\n`,
  );
  if (summary.frameData !== 'none')
    process.stdout.write(
      `${options.out} ${summary.frameData === 'linked' ? 'links the frames of its input' : 'holds the frames'}; ` +
        `indexamajig -i ${summary.lstPath} -g ${summary.geomPath} --peaks=cxi reads it\n`,
    );
  else if (options.in.length > 1 || options.frames !== undefined)
    process.stdout.write(
      `${options.out} names each row's file and event (sourceFile, sourceEvent); give --with-frames to hold the frames for CrystFEL\n`,
    );
  if (summary.peaksDropped > 0)
    process.stdout.write(`${summary.peaksDropped} peaks beyond the table width were left out\n`);
}

async function runPeakNet(options: PeaksCliOptions): Promise<void> {
  const [{ runPeaks }, modelFile, finder, { integerOption }] = await Promise.all([
    import('../../peaks/run-peaks.js'),
    import('../../infer/model-file.js'),
    import('../../infer/peaknet-finder.js'),
    import('../options.js'),
  ]);
  const { modelPath, provider, batch, maxPeaks } = await resolvePeakNetOptions(options);
  const file = modelFile.readModelFile(modelPath);
  const workers = integerOption('--workers', options.workers);
  const recorder = await frameRecorder(options.json === true);
  const frames = recorder.frames;
  const summary = await runPeaks({
    geometryPath: options.geom,
    inputs: options.in,
    outPath: options.out,
    // One worker: this thread, onnxruntime's own threads. More: frames in parallel, a session each.
    createFinder: async (maps, mask) =>
      workers === 1
        ? finder.createPeakNetFinder(file, maps, mask, { provider, batch, maxPeaks })
        : (await import('../../infer/peaknet-pool.js')).createPooledPeakNetFinder(
            modelPath,
            { text: readFileSync(options.geom, 'utf8'), path: options.geom },
            mask,
            workers,
            {
              provider,
              batch,
              maxPeaks,
            },
          ),
    maxPeaks,
    dataPath: options.dataPath,
    maskFiles: options.mask,
    frames: options.frames === undefined ? undefined : parseFrameRange(options.frames),
    withFrames: options.withFrames,
    onFrame: recorder.onFrame,
  });
  recorder.stop();
  printSummary(
    options,
    summary,
    { method: 'peaknet', model: modelPath, decision: file.meta.decision },
    frames,
  );
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function register(program: Command): void {
  const command = program
    .command('peaks')
    .description(
      'Find peaks in every frame (peakfinder8 or a DIALS-style dispersion finder); write a CXI peak table',
    )
    .requiredOption('--geom <file>', 'CrystFEL geometry')
    .requiredOption('--in <files...>', 'CXI/HDF5 frame stacks and/or CBF files, read in order')
    .requiredOption('--out <file.cxi>', 'CXI file to write (peak table under /entry_1/result_1)')
    .option('--data-path <path>', 'frame dataset in the HDF5 inputs', '/entry_1/data_1/data')
    .option(
      '--mask <file[:dataset]>',
      'extra mask file (nonzero = good; default dataset /data/data); repeatable',
      collect,
    )
    .option('--frames <a:b>', 'frames a (included) to b (excluded), counted over all inputs in order')
    .option(
      '--workers <n>',
      "worker threads (frames in parallel, output in input order; peaknet: one onnxruntime thread each, 1 = this thread with onnxruntime's threads)",
      '1',
    )
    .option(
      '--with-frames',
      'copy the frames into the output (a single whole HDF5 input is linked without it)',
    )
    .option('--json', "print the parameters and every frame's peaks as JSON");
  addMethodOptions(command).action(run);
}
