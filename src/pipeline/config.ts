/**
 * `braggflow run --config run.json`: the same settings as the command line, as one file a facility
 * keeps with the experiment. Keys are the flags in camelCase (`minPeaks`, `maxBacklog`, pf8's
 * `threshold`, ...), checked with zod: an unknown key or a wrong type is one line naming the file and
 * the field. Paths in it (source files, geometry, outputs, params, model) are relative to the file.
 * A flag given on the command line wins over the file.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { readUserFile, UserError } from '../util/errors.js';

const text = z.string().min(1);
const count = z.number().int().min(0);
const positive = z.number().positive();

export const runConfigSchema = z
  .object({
    source: text,
    geom: text,
    out: text,
    summary: text,
    rate: positive,
    workers: count.min(1),
    minPeaks: count,
    allFrames: z.boolean(),
    gzip: count.max(9),
    queue: count.min(1),
    dataPath: text,
    mask: z.array(text),
    transport: text,
    run: text,
    role: z.enum(['producer', 'consumer', 'sink', 'all']),
    maxBacklog: count.min(1),
    claimIdleMs: count,
    consumer: text,
    monitor: text,
    method: z.enum(['pf8', 'dispersion', 'peaknet']),
    params: text,
    model: text,
    provider: z.enum(['cpu', 'webgpu', 'cuda']),
    batch: count.min(1),
    threshold: z.number(),
    minSnr: z.number(),
    minPixCount: count,
    maxPixCount: count,
    localBgRadius: count,
    minRes: z.number(),
    maxRes: z.number(),
    maxPeaks: count.min(1),
    gain: z.number(),
    sigmaBackground: z.number(),
    sigmaStrong: z.number(),
    kernelSize: z.union([z.number(), z.string()]),
    globalThreshold: z.number(),
    minSpotSize: count,
    maxSpotSize: count,
  })
  .partial()
  .strict();

export type RunConfig = z.infer<typeof runConfigSchema>;

const PATH_KEYS = ['geom', 'out', 'summary', 'params', 'model'] as const;

/** The config file, checked, with its paths made relative to the working directory. */
export function readRunConfig(path: string): RunConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readUserFile(path, 'utf8'));
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`is not JSON (${(error as Error).message})`, path);
  }
  const parsed = runConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path.join('.');
    const message =
      issue.code === 'unrecognized_keys'
        ? 'is not a run setting (keys are the flags in camelCase)'
        : issue.message;
    throw new UserError(message, path, field === '' ? undefined : field);
  }
  const base = dirname(resolve(path));
  const at = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const config: RunConfig = { ...parsed.data };
  for (const key of PATH_KEYS) if (config[key] !== undefined) config[key] = at(config[key] as string);
  if (config.mask !== undefined) config.mask = config.mask.map(at);
  if (config.source !== undefined) {
    const kind = /^([a-z]+):/.exec(config.source)?.[1];
    if (kind === undefined) config.source = at(config.source);
    else if (kind === 'file') config.source = `file:${at(config.source.slice(5))}`;
  }
  return config;
}
