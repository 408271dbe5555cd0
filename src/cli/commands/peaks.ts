import type { Command } from 'commander';
import { parseFrameRange } from '../../util/frame-range.js';
import { printJson } from '../output.js';

interface PeaksCliOptions {
  method: string;
  geom: string;
  in: string[];
  out: string;
  params?: string;
  dataPath?: string;
  mask?: string[];
  frames?: string;
  workers: string;
  json?: boolean;
  // peaknet
  model?: string;
  provider?: string;
  batch?: string;
  // pf8 (indexamajig names)
  threshold?: string;
  minSnr?: string;
  minPixCount?: string;
  maxPixCount?: string;
  localBgRadius?: string;
  minRes?: string;
  maxRes?: string;
  maxPeaks?: string;
  // dispersion (DIALS names)
  gain?: string;
  sigmaBackground?: string;
  sigmaStrong?: string;
  kernelSize?: string;
  globalThreshold?: string;
  minSpotSize?: string;
  maxSpotSize?: string;
}

const pf8Flags: [keyof PeaksCliOptions, string][] = [
  ['threshold', 'threshold'],
  ['minSnr', 'min-snr'],
  ['minPixCount', 'min-pix-count'],
  ['maxPixCount', 'max-pix-count'],
  ['localBgRadius', 'local-bg-radius'],
  ['minRes', 'min-res'],
  ['maxRes', 'max-res'],
  ['maxPeaks', 'max-peaks'],
];

const dispersionFlags: [keyof PeaksCliOptions, string][] = [
  ['gain', 'gain'],
  ['sigmaBackground', 'sigma-background'],
  ['sigmaStrong', 'sigma-strong'],
  ['kernelSize', 'kernel-size'],
  ['globalThreshold', 'global-threshold'],
  ['minSpotSize', 'min-spot-size'],
  ['maxSpotSize', 'max-spot-size'],
  ['maxPeaks', 'max-peaks'],
];

/** Flags given on the command line, as a raw params object keyed by the flag names. */
function flagValues(
  options: PeaksCliOptions,
  flags: [keyof PeaksCliOptions, string][],
): Record<string, string> {
  const raw: Record<string, string> = {};
  for (const [key, flag] of flags) {
    const value = options[key];
    if (typeof value === 'string') raw[flag] = value;
  }
  return raw;
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
  const [{ UserError }, paramsFile, pf8, { runPeaks }] = await Promise.all([
    import('../../util/errors.js'),
    import('../../peaks/params-file.js'),
    import('../../peaks/pf8-params.js'),
    import('../../peaks/run-peaks.js'),
  ]);
  const method = options.method;
  if (method === 'peaknet') return runPeakNet(options);
  if (method !== 'pf8' && method !== 'dispersion')
    throw new UserError(
      `unknown method '${method}' (known: pf8, dispersion, peaknet)`,
      undefined,
      '--method',
    );
  const fromFile = options.params === undefined ? undefined : paramsFile.readPeakParamsFile(options.params);
  if (fromFile !== undefined && fromFile.method !== method) {
    throw new UserError(
      `holds ${fromFile.method} parameters, but --method is ${method}`,
      options.params,
      'field method',
    );
  }
  // Flag errors name the flag, not a field.
  const asFlag = <T>(parse: () => T): T => {
    try {
      return parse();
    } catch (error) {
      if (error instanceof UserError && error.file === undefined && error.where?.startsWith('field ')) {
        throw new UserError(error.message, undefined, `--${error.where.slice('field '.length)}`);
      }
      throw error;
    }
  };
  let spec: import('../../peaks/finder.js').PeakFinderSpec;
  if (method === 'pf8') {
    const flags = asFlag(() => pf8.parsePf8ParamsPartial(flagValues(options, pf8Flags)));
    spec = { method, params: pf8.resolvePf8Params((fromFile?.params ?? {}) as object, flags) };
  } else {
    const raw: Record<string, unknown> = {};
    for (const [flag, value] of Object.entries(flagValues(options, dispersionFlags))) {
      if (flag === 'kernel-size') {
        const parts = value.split(/[\s,]+/).filter((part) => part !== '');
        raw[flag] = (parts.length === 1 ? [parts[0], parts[0]] : parts).map(Number);
      } else raw[flag] = Number(value);
    }
    const flags = asFlag(() => paramsFile.parseDispersionParamsPartial(raw));
    spec = { method, params: paramsFile.resolveDispersionParams((fromFile?.params ?? {}) as object, flags) };
  }
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
  if (options.json) {
    printJson({
      ...head,
      out: options.out,
      frameCount: summary.frames,
      peakCount: summary.peaks,
      peaksDropped: summary.peaksDropped,
      seconds: summary.seconds,
      frames,
    });
    return;
  }
  process.stdout.write(
    `${summary.frames} frames, ${summary.peaks} peaks (${(summary.peaks / Math.max(1, summary.frames)).toFixed(1)} per frame) -> ${options.out} in ${summary.seconds.toFixed(2)} s\n`,
  );
  if (summary.peaksDropped > 0)
    process.stdout.write(`${summary.peaksDropped} peaks beyond the table width were left out\n`);
}

async function runPeakNet(options: PeaksCliOptions): Promise<void> {
  const [{ UserError }, { runPeaks }, modelFile, finder, { integerOption }, { requireDefaultModel }] =
    await Promise.all([
      import('../../util/errors.js'),
      import('../../peaks/run-peaks.js'),
      import('../../infer/model-file.js'),
      import('../../infer/peaknet-finder.js'),
      import('../options.js'),
      import('../../infer/default-model.js'),
    ]);
  const modelPath = options.model ?? requireDefaultModel();
  for (const flag of [...pf8Flags, ...dispersionFlags])
    if (flag[0] !== 'maxPeaks' && options[flag[0]] !== undefined)
      throw new UserError(
        `is a ${pf8Flags.includes(flag) ? 'pf8' : 'dispersion'} option; a model file needs no parameter`,
        undefined,
        `--${flag[1]}`,
      );
  const provider = options.provider ?? 'cpu';
  if (provider !== 'cpu' && provider !== 'webgpu' && provider !== 'cuda')
    throw new UserError(`unknown provider '${provider}' (known: cpu, webgpu, cuda)`, undefined, '--provider');
  const file = modelFile.readModelFile(modelPath);
  const batch = integerOption('--batch', options.batch ?? '8');
  const workers = integerOption('--workers', options.workers);
  const maxPeaks = options.maxPeaks === undefined ? 2048 : integerOption('--max-peaks', options.maxPeaks);
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
            options.geom,
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
  program
    .command('peaks')
    .description(
      'Find peaks in every frame (peakfinder8 or a DIALS-style dispersion finder); write a CXI peak table',
    )
    .option('--method <name>', 'pf8, dispersion or peaknet', 'pf8')
    .option('--model <file.onnx>', 'peaknet: model file (default: the shipped models/peaknet-default.onnx)')
    .option('--provider <name>', 'peaknet: onnxruntime execution provider: cpu, webgpu or cuda', 'cpu')
    .option('--batch <n>', 'peaknet: panel tiles per model run (default 8)')
    .requiredOption('--geom <file>', 'CrystFEL geometry')
    .requiredOption('--in <files...>', 'CXI/HDF5 frame stacks and/or CBF files, read in order')
    .requiredOption('--out <file.cxi>', 'CXI file to write (peak table under /entry_1/result_1)')
    .option(
      '--params <file.json>',
      'parameters {method, params, f1?} as written by `braggflow tune`; flags override',
    )
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
    .option('--json', "print the parameters and every frame's peaks as JSON")
    .option('--threshold <adu>', 'pf8: minimum threshold, ADU (default 800)')
    .option('--min-snr <x>', 'pf8: minimum SNR, and the radial sigma cut (default 5)')
    .option('--min-pix-count <n>', 'pf8: fewest pixels in a peak (default 2)')
    .option('--max-pix-count <n>', 'pf8: most pixels in a peak (default 200)')
    .option('--local-bg-radius <n>', 'pf8: background ring radius is 2x this, pixels (default 3)')
    .option('--min-res <px>', 'pf8: only pixels farther than this from the beam (default 0)')
    .option('--max-res <px>', 'pf8: only pixels nearer than this to the beam (default: no limit)')
    .option('--max-peaks <n>', 'most peaks per frame (default 2048)')
    .option('--gain <adu>', 'dispersion: ADU per photon (default 1)')
    .option('--sigma-background <x>', 'dispersion: dispersion test sigmas (default 6)')
    .option('--sigma-strong <x>', 'dispersion: strong pixel sigmas (default 3)')
    .option('--kernel-size <"kfs kss">', 'dispersion: window half-sizes (default "3 3": 7 x 7)')
    .option('--global-threshold <adu>', 'dispersion: pixels must exceed this (default 0)')
    .option('--min-spot-size <n>', 'dispersion: fewest pixels in a spot (default 2)')
    .option('--max-spot-size <n>', 'dispersion: most pixels in a spot (default 1000)')
    .action(run);
}
