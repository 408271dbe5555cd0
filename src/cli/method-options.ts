/**
 * The peak-finding method's flags, shared by `peaks` and `run`: `--method pf8|dispersion|peaknet`,
 * `--params P.json` (as `tune` writes it), pf8's indexamajig-named flags, the dispersion finder's
 * DIALS-named flags, and peaknet's model, provider and batch. Flags override the params file.
 */
import type { Command } from 'commander';

export interface MethodCliOptions {
  method: string;
  params?: string;
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

export const pf8Flags: [keyof MethodCliOptions, string][] = [
  ['threshold', 'threshold'],
  ['minSnr', 'min-snr'],
  ['minPixCount', 'min-pix-count'],
  ['maxPixCount', 'max-pix-count'],
  ['localBgRadius', 'local-bg-radius'],
  ['minRes', 'min-res'],
  ['maxRes', 'max-res'],
  ['maxPeaks', 'max-peaks'],
];

export const dispersionFlags: [keyof MethodCliOptions, string][] = [
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
  options: MethodCliOptions,
  flags: [keyof MethodCliOptions, string][],
): Record<string, string> {
  const raw: Record<string, string> = {};
  for (const [key, flag] of flags) {
    const value = options[key];
    if (typeof value === 'string') raw[flag] = value;
  }
  return raw;
}

/** pf8 or dispersion: the finder spec from `--params` and the flags (flag errors name the flag). */
export async function resolveFinderSpec(
  options: MethodCliOptions,
): Promise<import('../peaks/finder.js').PeakFinderSpec> {
  const [{ UserError }, paramsFile, pf8] = await Promise.all([
    import('../util/errors.js'),
    import('../peaks/params-file.js'),
    import('../peaks/pf8-params.js'),
  ]);
  const method = options.method;
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
  if (method === 'pf8') {
    const flags = asFlag(() => pf8.parsePf8ParamsPartial(flagValues(options, pf8Flags)));
    return { method, params: pf8.resolvePf8Params((fromFile?.params ?? {}) as object, flags) };
  }
  const raw: Record<string, unknown> = {};
  for (const [flag, value] of Object.entries(flagValues(options, dispersionFlags))) {
    if (flag === 'kernel-size') {
      const parts = value.split(/[\s,]+/).filter((part) => part !== '');
      raw[flag] = (parts.length === 1 ? [parts[0], parts[0]] : parts).map(Number);
    } else raw[flag] = Number(value);
  }
  const flags = asFlag(() => paramsFile.parseDispersionParamsPartial(raw));
  return { method, params: paramsFile.resolveDispersionParams((fromFile?.params ?? {}) as object, flags) };
}

/** peaknet: the model file, provider, batch and table width; a finder's flag is a one-line error. */
export async function resolvePeakNetOptions(options: MethodCliOptions): Promise<{
  modelPath: string;
  provider: 'cpu' | 'webgpu' | 'cuda';
  batch: number;
  maxPeaks: number;
}> {
  const [{ UserError }, { integerOption }, { requireDefaultModel }] = await Promise.all([
    import('../util/errors.js'),
    import('./options.js'),
    import('../infer/default-model.js'),
  ]);
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
  return {
    modelPath: options.model ?? requireDefaultModel(),
    provider,
    batch: integerOption('--batch', options.batch ?? '8'),
    maxPeaks: options.maxPeaks === undefined ? 2048 : integerOption('--max-peaks', options.maxPeaks),
  };
}

export function addMethodOptions(command: Command): Command {
  return command
    .option('--method <name>', 'pf8, dispersion or peaknet', 'pf8')
    .option('--model <file.onnx>', 'peaknet: model file (default: the shipped models/peaknet-default.onnx)')
    .option('--provider <name>', 'peaknet: onnxruntime execution provider: cpu, webgpu or cuda', 'cpu')
    .option('--batch <n>', 'peaknet: panel tiles per model run (default 8)')
    .option(
      '--params <file.json>',
      'parameters {method, params, f1?} as written by `braggflow tune`; flags override',
    )
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
    .option('--max-spot-size <n>', 'dispersion: most pixels in a spot (default 1000)');
}
