/**
 * `braggflow train --config C.json`: everything that fixes a training run, validated with zod. A
 * problem becomes one UserError naming the file and the field (`C.json: data.sources.0.presets.1:
 * unknown preset 'lysozym'`). Paths inside the config are relative to the config file.
 *
 * Units: pixels (`Px`), metres (`M`), micrometres (`Um`), electronvolts (`Ev`); ranges are `[low,
 * high]`, drawn log-uniformly for scales (gain, fluence) and uniformly otherwise.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { resolveConfig } from '../nn/models/registry.js';
import { presetNames } from '../simulate/presets.js';
import { readUserFile, UserError } from '../util/errors.js';

const range = (min: number, max = Number.POSITIVE_INFINITY) =>
  z
    .tuple([z.number().min(min).max(max), z.number().min(min).max(max)])
    .refine(([lo, hi]) => lo <= hi, { error: 'must be [low, high] with low <= high' });
const positiveInt = z.number().int().min(1);

/** Made-up detectors (synthetic-geometry.ts); each drawn detector serves `framesPerDetector` frames. */
const syntheticSchema = z.object({
  kind: z.literal('synthetic'),
  panelRowsPx: range(32, 4096),
  panelColsPx: range(32, 4096),
  gridRows: range(1, 16),
  gridCols: range(1, 16),
  gapPx: range(0, 100).default([0, 8]),
  pixelUm: range(10, 1000),
  clenM: range(0.02, 5),
  photonEnergyEv: range(1000, 50_000),
  /** Fewer panels are drawn where a grid would pass this many pixels (simulation time per frame). */
  maxPixels: positiveInt.default(1_500_000),
});

const geometryEntry = z.union([z.string().min(1), syntheticSchema]);

const simulateSourceSchema = z.object({
  kind: z.literal('simulate'),
  /** Share of training tiles from this source (relative to the other sources' weights). */
  weight: z.number().positive().default(1),
  /** `embedded`, a `.geom` path, or a synthetic family. */
  geometries: z.array(geometryEntry).min(1),
  presets: z
    .array(
      z.string().refine((name) => presetNames.includes(name), {
        error: (issue) => `unknown preset '${issue.input}' (known: ${presetNames.join(', ')})`,
      }),
    )
    .min(1)
    .default(presetNames),
  hitRate: z.number().min(0).max(1).default(0.8),
  /** ADU per photon of integrating detectors (log-uniform). */
  gainAduPerPhoton: range(0.01, 10_000).default([1, 50]),
  /** Readout noise, photons (uniform); times the gain in ADU. */
  darkNoisePhotons: range(0, 10).default([0.05, 0.4]),
  /** Share of detectors drawn photon counting (Pilatus, Eiger: 1 count per photon, no readout noise). */
  photonCountingFraction: z.number().min(0).max(1).default(0.3),
  /** Share of integrating detectors that store fractional values (calibrated keV, not whole ADU). */
  unroundedFraction: z.number().min(0).max(1).default(0.2),
  backgrounds: z
    .array(z.enum(['none', 'water', 'heavy']))
    .min(1)
    .default(['none', 'water', 'water', 'heavy']),
  fluenceScale: range(1e-3, 1e3).default([0.25, 4]),
  framesPerDetector: positiveInt.default(8),
  /**
   * The truth rule: a spot is labelled (mask pixels, truth row) when its expected integrated signal
   * reaches this many standard deviations of its noise (render.ts). 3 counts every spot that is there
   * in principle; expert spot finding (DIALS' 3-sigma pixels in spots of 2 or more) reports fewer.
   */
  truthMinSnr: z.number().positive().default(3),
});

const datasetSourceSchema = z.object({
  kind: z.literal('dataset'),
  weight: z.number().positive().default(1),
  /** CXI/HDF5 with frames at /entry_1/data_1/data and masks at /entry_1/truth_1/mask. */
  path: z.string().min(1),
  geom: z.string().min(1),
  /** Frames [first, end) (default all). */
  frames: z.tuple([z.number().int().min(0), z.number().int().min(1)]).optional(),
});

const sourceSchema = z.discriminatedUnion('kind', [simulateSourceSchema, datasetSourceSchema]);

export const trainConfigSchema = z.object({
  model: z.string().default('peaknet-yocto-1x16-h16'),
  /**
   * Start from these weights (a checkpoint of the same model; its optimiser state and step are not
   * used): a fine-tuning phase with its own data, schedule and steps.
   */
  init: z.string().min(1).optional(),
  tile: z
    .object({
      heightPx: positiveInt.multipleOf(32),
      widthPx: positiveInt.multipleOf(32),
      overlapPx: z.number().int().min(0),
      /** Served on panel-fitted tiles up to this side (model-file.ts `TileSpec.maxPx`). */
      maxPx: positiveInt.multipleOf(32).optional(),
    })
    .default({ heightPx: 256, widthPx: 256, overlapPx: 32 }),
  /** Tiles per onnxruntime run, and runs whose gradients are summed into one update. */
  batch: positiveInt.default(8),
  /**
   * More tile shapes to train on, each with its own batch: update u trains on shape u mod (1 + n),
   * the tile being shape 0, each shape from its own stream of simulated frames. A model served on
   * panel-fitted tiles (`tile.maxPx`) must have seen tiles of those shapes: one trained on a single
   * tile size learns its borders, and on a tile four times larger flags most of the background.
   */
  shapes: z
    .array(
      z.object({
        heightPx: positiveInt.multipleOf(32),
        widthPx: positiveInt.multipleOf(32),
        batch: positiveInt,
      }),
    )
    .default([]),
  accumulation: positiveInt.default(1),
  /** Optimiser updates in the whole run. */
  steps: positiveInt,
  schedule: z
    .object({
      peakLr: z.number().positive(),
      warmupSteps: z.number().int().min(0),
      minLr: z.number().min(0),
    })
    .default({ peakLr: 2e-3, warmupSteps: 100, minLr: 2e-5 }),
  weightDecay: z.number().min(0).default(0.05),
  focal: z
    .object({ alpha: z.tuple([z.number().min(0), z.number().min(0)]), gamma: z.number().min(0) })
    .default({ alpha: [0.25, 0.75], gamma: 2 }),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31)
    .default(0),
  /** Steps between log lines, validations and checkpoints. */
  logEvery: positiveInt.default(25),
  evalEvery: positiveInt.default(500),
  checkpointEvery: positiveInt.default(250),
  data: z.object({
    sources: z.array(sourceSchema).min(1),
    /** Tiles cut from each frame before the next frame is drawn. */
    tilesPerFrame: positiveInt.default(4),
    /** Share of tiles placed over a true spot (the rest anywhere on the panel). */
    spotTileFraction: z.number().min(0).max(1).default(0.6),
    /** Share of tiles cut as a smaller panel (an ASIC padded into the tile, as serving pads it). */
    smallPanelFraction: z.number().min(0).max(1).default(0.3),
  }),
  augment: z
    .object({
      flips: z.boolean().default(true),
      rot90: z.boolean().default(true),
      /** Multiplies a tile's ADU (log-uniform); 1 for none. */
      gainScale: range(1e-3, 1e3).default([0.5, 2]),
      /** Adds a constant to a tile's ADU (uniform, in units of the tile's noise). */
      pedestalNoise: range(-1e4, 1e4).default([-20, 20]),
      /** Chance of Poisson re-noising (the tile read as photons at a random gain, drawn again). */
      renoise: z.number().min(0).max(1).default(0.2),
      /** Chance of a masked rectangle, and of a few hot pixels, in a tile. */
      maskedRegion: z.number().min(0).max(1).default(0.2),
      hotPixels: z.number().min(0).max(1).default(0.2),
      /** Chance of heavy-tailed background in a tile: 1-3 pixel clusters of 3-30 sigma (tile-sampler.ts). */
      outliers: z.number().min(0).max(1).default(0),
    })
    .default({
      flips: true,
      rot90: true,
      gainScale: [0.5, 2],
      pedestalNoise: [-20, 20],
      renoise: 0.2,
      maskedRegion: 0.2,
      hotPixels: 0.2,
      outliers: 0,
    }),
  validation: z
    .object({
      /** Held-out frames per source (drawn with another seed, never trained on). */
      framesPerSource: positiveInt.default(6),
      seed: z.number().int().min(0).default(1_000_003),
      radiusPx: z.number().positive().default(2),
    })
    .default({ framesPerSource: 6, seed: 1_000_003, radiusPx: 2 }),
});

export type TrainConfig = z.output<typeof trainConfigSchema>;
export type SimulateSourceConfig = z.output<typeof simulateSourceSchema>;
export type DatasetSourceConfig = z.output<typeof datasetSourceSchema>;
export type SourceConfig = z.output<typeof sourceSchema>;
export type SyntheticFamily = z.output<typeof syntheticSchema>;

/** Validates a config object; paths become absolute against `baseDir`. */
export function parseTrainConfig(raw: unknown, file = 'config', baseDir = process.cwd()): TrainConfig {
  const parsed = trainConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError(issue.message, file, issue.path.join('.') || undefined);
  }
  const config = parsed.data;
  try {
    resolveConfig(config.model);
  } catch (error) {
    throw new UserError((error as Error).message, file, 'model');
  }
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  if (config.init !== undefined) config.init = abs(config.init);
  for (const source of config.data.sources) {
    if (source.kind === 'simulate')
      source.geometries = source.geometries.map((g) =>
        typeof g === 'string' && g !== 'embedded' ? abs(g) : g,
      );
    else {
      source.path = abs(source.path);
      source.geom = abs(source.geom);
    }
  }
  return config;
}

export function readTrainConfig(path: string): TrainConfig {
  const text = readUserFile(path, 'utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new UserError(`is not JSON (${(error as Error).message})`, path);
  }
  return parseTrainConfig(raw, path, dirname(resolve(path)));
}
