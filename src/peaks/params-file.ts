/**
 * Peak-finder parameter files, as `braggflow tune` writes them and `braggflow peaks --params` reads
 * them: `{"method": "pf8", "params": {...}, "f1": 0.91, "tuning": {...}}` (f1 and tuning optional). Parameter names may be ours
 * (camelCase) or CrystFEL's / DIALS' (`min-snr`, `global_threshold`...). Errors name the file and field.
 */
import { z } from 'zod';
import { readUserFile, UserError } from '../util/errors.js';
import { type DispersionParams, defaultDispersionParams } from './dispersion.js';
import type { Pf8Params } from './peakfinder8.js';
import { parsePf8ParamsPartial } from './pf8-params.js';

export const peakMethods = ['pf8', 'dispersion'] as const;
export type PeakMethod = (typeof peakMethods)[number];

export type PeakParamsFile =
  | { method: 'pf8'; params: Partial<Pf8Params>; f1?: number }
  | { method: 'dispersion'; params: Partial<DispersionParams>; f1?: number };

const dispersionAliases: Record<string, keyof DispersionParams> = {
  sigma_background: 'nSigmaB',
  'sigma-background': 'nSigmaB',
  sigma_strong: 'nSigmaS',
  'sigma-strong': 'nSigmaS',
  kernel_size: 'kernelSize',
  'kernel-size': 'kernelSize',
  global_threshold: 'globalThreshold',
  'global-threshold': 'globalThreshold',
  min_local: 'minLocal',
  'min-local': 'minLocal',
  min_spot_size: 'minSpotSize',
  'min-spot-size': 'minSpotSize',
  max_spot_size: 'maxSpotSize',
  'max-spot-size': 'maxSpotSize',
  max_peaks: 'maxNumPeaks',
  'max-peaks': 'maxNumPeaks',
  maxPeaks: 'maxNumPeaks',
};

const positive = z.number({ error: 'must be a number' }).refine((v) => Number.isFinite(v) && v > 0, {
  error: 'must be a positive number',
});
const nonNegative = z.number({ error: 'must be a number' }).refine((v) => Number.isFinite(v) && v >= 0, {
  error: 'must be a number >= 0',
});
const count = (min: number) =>
  z
    .number({ error: `must be an integer >= ${min}` })
    .int({ error: `must be an integer >= ${min}` })
    .min(min, { error: `must be an integer >= ${min}` });

export const dispersionParamsSchema = z.strictObject({
  gain: positive,
  nSigmaB: nonNegative,
  nSigmaS: nonNegative,
  kernelSize: z.tuple([count(0), count(0)], { error: 'must be two half-sizes [fs, ss], e.g. [3, 3]' }),
  globalThreshold: z
    .number({ error: 'must be a number' })
    .refine(Number.isFinite, { error: 'must be finite' }),
  minLocal: count(2),
  minSpotSize: count(1),
  maxSpotSize: count(1),
  connectivity: z.union([z.literal(4), z.literal(8)], { error: 'must be 4 or 8' }),
  maxNumPeaks: count(1),
});

/** Validates dispersion parameters (any spelling); absent keys stay absent. */
export function parseDispersionParamsPartial(
  raw: unknown,
  file?: string,
  where?: string,
): Partial<DispersionParams> {
  const field = (key: string) => (where === undefined ? `field ${key}` : `field ${where}.${key}`);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new UserError('expected an object of dispersion parameters', file, where && `field ${where}`);
  const canonical: Record<string, unknown> = {};
  const spelling = new Map<string, string>();
  for (const [key, value] of Object.entries(raw)) {
    const name = dispersionAliases[key] ?? key;
    if (name in canonical)
      throw new UserError(`given twice (also as '${spelling.get(name)}')`, file, field(key));
    canonical[name] = value;
    spelling.set(name, key);
  }
  const result = dispersionParamsSchema.partial().safeParse(canonical);
  if (!result.success) {
    const issue = result.error.issues[0];
    if (issue.code === 'unrecognized_keys') {
      throw new UserError(
        `unknown dispersion parameter (known: ${Object.keys(defaultDispersionParams).join(', ')})`,
        file,
        field(issue.keys[0]),
      );
    }
    const key = String(issue.path[0] ?? '');
    throw new UserError(issue.message, file, field(spelling.get(key) ?? key));
  }
  return result.data as Partial<DispersionParams>;
}

/** Defaults overlaid with each layer in turn; checks the limits agree. */
export function resolveDispersionParams(...layers: Partial<DispersionParams>[]): DispersionParams {
  const params: DispersionParams = {
    ...defaultDispersionParams,
    kernelSize: [...defaultDispersionParams.kernelSize],
  };
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value !== undefined) (params as unknown as Record<string, unknown>)[key] = value;
    }
  }
  if (params.minSpotSize > params.maxSpotSize) {
    throw new UserError(`min spot size ${params.minSpotSize} is above max spot size ${params.maxSpotSize}`);
  }
  return params;
}

/** Reads and validates a parameter file. */
export function readPeakParamsFile(path: string): PeakParamsFile {
  const text = readUserFile(path, 'utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new UserError(`not JSON: ${(error as Error).message}`, path);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new UserError('expected an object {method, params, f1?}', path);
  // `tuning` is how `braggflow tune` found the parameters (its grid, search, frames): a record for
  // people, not read.
  const { method, params, f1, tuning, ...rest } = raw as Record<string, unknown>;
  const unknownKey = Object.keys(rest)[0];
  if (unknownKey !== undefined)
    throw new UserError('unknown field (expected method, params, f1, tuning)', path, `field ${unknownKey}`);
  if (tuning !== undefined && (tuning === null || typeof tuning !== 'object' || Array.isArray(tuning)))
    throw new UserError('must be an object (how tune found the parameters)', path, 'field tuning');
  if (typeof method !== 'string' || !(peakMethods as readonly string[]).includes(method))
    throw new UserError(`must be one of ${peakMethods.join(', ')}`, path, 'field method');
  if (f1 !== undefined && f1 !== null && (typeof f1 !== 'number' || !(f1 >= 0 && f1 <= 1)))
    throw new UserError('must be a number between 0 and 1', path, 'field f1');
  const f1Value = typeof f1 === 'number' ? f1 : undefined;
  if (method === 'pf8')
    return { method, params: parsePf8ParamsPartial(params ?? {}, path, 'params'), f1: f1Value };
  return {
    method: 'dispersion',
    params: parseDispersionParamsPartial(params ?? {}, path, 'params'),
    f1: f1Value,
  };
}
