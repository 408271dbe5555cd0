/**
 * peakfinder8 parameters from outside (a tuned params file, command-line flags): validated with zod,
 * accepting our camelCase names and CrystFEL's indexamajig names (`threshold`, `min-snr`, ...). Every
 * problem is one UserError naming the file and the field as the user wrote it.
 */
import { z } from 'zod';
import { UserError } from '../util/errors.js';
import { defaultPf8Params, type Pf8Params } from './peakfinder8.js';

/** Our name -> the names CrystFEL's indexamajig uses (flag without dashes, and its underscore form). */
export const pf8ParamAliases: Record<keyof Pf8Params, string[]> = {
  adcThreshold: ['threshold', 'adc-threshold', 'adc_threshold', 'adc_thresh'],
  minSnr: ['min-snr', 'min_snr'],
  minPixCount: ['min-pix-count', 'min_pix_count'],
  maxPixCount: ['max-pix-count', 'max_pix_count'],
  localBgRadius: ['local-bg-radius', 'local_bg_radius'],
  minResPx: ['min-res', 'min_res', 'minRes'],
  maxResPx: ['max-res', 'max_res', 'maxRes'],
  maxNumPeaks: ['max-peaks', 'max_peaks', 'maxPeaks', 'max_num_peaks'],
};

/** The command-line flag of each parameter (indexamajig's). */
export const pf8ParamFlags: Record<keyof Pf8Params, string> = {
  adcThreshold: '--threshold',
  minSnr: '--min-snr',
  minPixCount: '--min-pix-count',
  maxPixCount: '--max-pix-count',
  localBgRadius: '--local-bg-radius',
  minResPx: '--min-res',
  maxResPx: '--max-res',
  maxNumPeaks: '--max-peaks',
};

const fromText = (value: unknown) =>
  typeof value === 'string' && value.trim() !== '' ? Number(value.trim()) : value;

const finite = (what: string) =>
  z.preprocess(
    fromText,
    z.number({ error: `must be ${what}` }).refine(Number.isFinite, { error: `must be ${what}` }),
  );

const integer = (min: number) =>
  z.preprocess(
    fromText,
    z
      .number({ error: `must be an integer >= ${min}` })
      .int({ error: `must be an integer >= ${min}` })
      .min(min, { error: `must be an integer >= ${min}` }),
  );

/**
 * `max-res`: a radius in pixels, or null / "inf" / "none" for no limit (JSON cannot hold Infinity, and
 * zod numbers are finite, hence the 'none' stand-in).
 */
const radiusLimit = z
  .preprocess(
    (value) => {
      if (value === null || value === Number.POSITIVE_INFINITY) return 'none';
      if (typeof value === 'string' && /^(inf|infinity|none)$/i.test(value.trim())) return 'none';
      return fromText(value);
    },
    z.union([z.literal('none'), z.number().refine((v) => v > 0)], {
      error: 'must be a positive radius in pixels, or null for no limit',
    }),
  )
  .transform((value) => (value === 'none' ? Number.POSITIVE_INFINITY : value));

export const pf8ParamsSchema = z.strictObject({
  adcThreshold: finite('a number of ADU'),
  minSnr: finite('a number').refine((v) => v >= 0, { error: 'must be >= 0' }),
  minPixCount: integer(1),
  maxPixCount: integer(1),
  localBgRadius: integer(1),
  minResPx: finite('a radius in pixels').refine((v) => v >= 0, { error: 'must be >= 0 pixels' }),
  maxResPx: radiusLimit,
  maxNumPeaks: integer(1),
});

/** Maps CrystFEL-style keys to ours; a key given twice (two spellings) is an error. */
function canonicalKeys(raw: Record<string, unknown>, file?: string, where?: string): Record<string, unknown> {
  const byAlias = new Map<string, keyof Pf8Params>();
  for (const [key, aliases] of Object.entries(pf8ParamAliases) as [keyof Pf8Params, string[]][]) {
    for (const alias of aliases) byAlias.set(alias, key);
  }
  const out: Record<string, unknown> = {};
  const spelledAs = new Map<string, string>();
  for (const [key, value] of Object.entries(raw)) {
    const canonical = byAlias.get(key) ?? key;
    const earlier = spelledAs.get(canonical);
    if (earlier !== undefined) {
      throw new UserError(`given twice (also as '${earlier}')`, file, fieldWhere(where, key));
    }
    spelledAs.set(canonical, key);
    out[canonical] = value;
  }
  return out;
}

function fieldWhere(where: string | undefined, key: string): string {
  return where === undefined ? `field ${key}` : `field ${where}.${key}`;
}

/**
 * Validates a partial set of parameters (any spelling); `file`/`where` name the source in errors
 * (`where` is the path of the object inside the file, e.g. `params`). Absent keys stay absent.
 */
export function parsePf8ParamsPartial(raw: unknown, file?: string, where?: string): Partial<Pf8Params> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new UserError('expected an object of peakfinder8 parameters', file, where && `field ${where}`);
  }
  const canonical = canonicalKeys(raw as Record<string, unknown>, file, where);
  const spelling = new Map<string, string>();
  for (const key of Object.keys(raw as object)) {
    const alias = Object.entries(pf8ParamAliases).find(([, names]) => names.includes(key));
    spelling.set(alias?.[0] ?? key, key);
  }
  const result = pf8ParamsSchema.partial().safeParse(canonical);
  if (!result.success) {
    const issue = result.error.issues[0];
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0];
      const known = Object.keys(pf8ParamFlags).join(', ');
      throw new UserError(`unknown peakfinder8 parameter (known: ${known})`, file, fieldWhere(where, key));
    }
    const key = String(issue.path[0] ?? '');
    throw new UserError(issue.message, file, fieldWhere(where, spelling.get(key) ?? key));
  }
  return result.data as Partial<Pf8Params>;
}

/** Defaults, then each layer in turn (a params file, then flags); checks the limits agree. */
export function resolvePf8Params(...layers: Partial<Pf8Params>[]): Pf8Params {
  const params: Pf8Params = { ...defaultPf8Params };
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer) as [keyof Pf8Params, number | undefined][]) {
      if (value !== undefined) params[key] = value;
    }
  }
  if (params.minPixCount > params.maxPixCount) {
    throw new UserError(
      `min-pix-count ${params.minPixCount} is above max-pix-count ${params.maxPixCount}`,
      undefined,
      '--min-pix-count',
    );
  }
  if (params.minResPx >= params.maxResPx) {
    throw new UserError(
      `min-res ${params.minResPx} px is not below max-res ${params.maxResPx} px`,
      undefined,
      '--min-res',
    );
  }
  return params;
}

/** Parameters as JSON can hold them (no limit on max-res is null), e.g. for a params file. */
export function pf8ParamsToJson(params: Pf8Params): Record<string, number | null> {
  return { ...params, maxResPx: Number.isFinite(params.maxResPx) ? params.maxResPx : null };
}
