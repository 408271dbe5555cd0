/**
 * Automatic peakfinder8 parameter search: the grid search a beamline scientist does by hand, scored by
 * micro F1 (summed matches over frames) against reference peaks within a radius. Two strategies:
 *
 * - grid: every configuration on every frame;
 * - successive halving: every configuration on a small, evenly spaced subset of frames, keep the best
 *   1/eta, grow the subset eta-fold, ... until the survivors run on all frames.
 *
 * Work is spread over worker threads (tune-worker.ts); each worker builds the peakfinder8 context once
 * and sees the frames through one SharedArrayBuffer (no copy per worker). Results are integer counts
 * per (configuration, frame), so the outcome is the same for any number of workers; ties go to the
 * configuration listed first in the grid.
 */
import { computePixelMaps, type PixelMaps } from '../detector/pixel-maps.js';
import { matchPeaks, type PointSet, scoresFromCounts } from '../engine/match.js';
import type { Geometry } from '../io/geom.js';
import { heatmapSvg } from '../plot/svg.js';
import { UserError } from '../util/errors.js';
import { createWorkerPool, type WorkerPool, workerScriptUrl } from '../util/worker-pool.js';
import {
  createPf8Context,
  defaultPf8Params,
  type Pf8Context,
  type Pf8Params,
  peakfinder8,
} from './peakfinder8.js';
import { parsePf8ParamsPartial } from './pf8-params.js';

/** The parameters a grid may vary, by the indexamajig option names the CLI uses. */
export const gridKeys = {
  threshold: 'adcThreshold',
  'min-snr': 'minSnr',
  'min-pix-count': 'minPixCount',
  'max-pix-count': 'maxPixCount',
  'local-bg-radius': 'localBgRadius',
  'min-res': 'minResPx',
  'max-res': 'maxResPx',
} as const satisfies Record<string, keyof Pf8Params>;

export type GridName = keyof typeof gridKeys;
export type GridKey = (typeof gridKeys)[GridName];

/** Values per varied parameter; parameters not named stay at the base (indexamajig defaults). */
export type Pf8Grid = Partial<Record<GridKey, number[]>>;

/**
 * A fixed grid (756 configurations) with thresholds around the usual CSPAD/Jungfrau range in ADU: the
 * default before the search space came from the data (defaultGridFor), kept for comparisons.
 */
export const defaultPf8Grid: Readonly<Pf8Grid> = Object.freeze({
  adcThreshold: [100, 150, 200, 300, 400, 800],
  minSnr: [3, 4, 5, 6, 8, 10, 12],
  minPixCount: [1, 2, 3],
  maxPixCount: [50, 200],
  localBgRadius: [2, 3, 4],
});

/**
 * What the default search space is derived from: the frames' own background, in detector units.
 * `noiseAdu` is the median over radius bins of each bin's robust sigma (1.4826 x MAD), floored at the
 * values' quantum (1 for integer data); `backgroundP99Adu` is the largest bin's 99th percentile: the
 * strongest background there is, rings and scatter included.
 */
export interface GridBasis {
  noiseAdu: number;
  backgroundP99Adu: number;
  /** The geometry's adu_per_photon (or adu_per_eV x photon energy), when it gives one. */
  aduPerPhoton?: number;
}

/** Radius bins for the background statistics, pixels wide. */
const BASIS_BIN_PX = 20;
/** Pixels sampled per bin and frame (evenly strided): enough for a median, cheap on 16 Mpixel. */
const BASIS_SAMPLES = 4000;

/**
 * Robust per-radius statistics of the frames' good pixels (mask 1), the basis of the default grid.
 * Peaks are a tiny fraction of any bin, so medians and MADs see the background.
 */
export function backgroundBasis(
  frames: readonly ArrayLike<number>[],
  maps: Pick<PixelMaps, 'radiusPx'>,
  mask: Uint8Array,
  aduPerPhoton?: number,
): GridBasis {
  const bins = new Map<number, number[]>();
  const counts = new Map<number, number>();
  for (let i = 0; i < mask.length; i++) {
    const r = maps.radiusPx[i];
    if (!mask[i] || !Number.isFinite(r)) continue;
    const b = Math.floor(r / BASIS_BIN_PX);
    counts.set(b, (counts.get(b) ?? 0) + 1);
  }
  const strides = new Map(
    [...counts].map(([b, n]) => [b, Math.max(1, Math.floor((n * frames.length) / BASIS_SAMPLES))]),
  );
  const seen = new Map<number, number>();
  let quantum = Number.POSITIVE_INFINITY;
  for (const frame of frames) {
    for (let i = 0; i < mask.length; i++) {
      const r = maps.radiusPx[i];
      const v = frame[i];
      if (!mask[i] || !Number.isFinite(r) || !Number.isFinite(v)) continue;
      const b = Math.floor(r / BASIS_BIN_PX);
      const k = (seen.get(b) ?? 0) + 1;
      seen.set(b, k);
      if (k % (strides.get(b) ?? 1) !== 0) continue;
      let values = bins.get(b);
      if (values === undefined) {
        values = [];
        bins.set(b, values);
      }
      values.push(v);
    }
  }
  const sigmas: number[] = [];
  let p99 = 0;
  for (const values of bins.values()) {
    if (values.length < 100) continue;
    values.sort((a, b) => a - b);
    for (let i = 1; i < values.length; i++) {
      const step = values[i] - values[i - 1];
      if (step > 0 && step < quantum) quantum = step;
    }
    const median = values[values.length >> 1];
    const deviations = values.map((v) => Math.abs(v - median)).sort((a, b) => a - b);
    sigmas.push(1.4826 * deviations[deviations.length >> 1]);
    p99 = Math.max(p99, values[Math.floor(0.99 * (values.length - 1))]);
  }
  sigmas.sort((a, b) => a - b);
  if (!Number.isFinite(quantum)) quantum = 1;
  const noise = Math.max(sigmas.length === 0 ? 0 : sigmas[sigmas.length >> 1], quantum);
  const basis: GridBasis = { noiseAdu: noise, backgroundP99Adu: p99 };
  if (aduPerPhoton !== undefined && aduPerPhoton > 0) basis.aduPerPhoton = aduPerPhoton;
  return basis;
}

/** Two significant figures: thresholds people read and type. */
function round2(value: number): number {
  const scale = 10 ** (Math.floor(Math.log10(value)) - 1);
  return Number((Math.round(value / scale) * scale).toPrecision(2));
}

/**
 * The default search space for these frames: thresholds on a log scale from twice the background
 * noise to well above the strongest background (4 x its 99th percentile, at least 30 x the noise),
 * plus 3, 5 and 10 photons' worth where the geometry says what a photon is; SNR, pixel counts and
 * background radius over the ranges people try. The same search whatever the detector's units.
 */
export function defaultGridFor(basis: GridBasis): Pf8Grid {
  const low = 2 * basis.noiseAdu;
  const high = Math.max(4 * basis.backgroundP99Adu, 30 * basis.noiseAdu);
  const steps = 8;
  const thresholds = Array.from({ length: steps }, (_, i) => round2(low * (high / low) ** (i / (steps - 1))));
  if (basis.aduPerPhoton !== undefined)
    for (const photons of [3, 5, 10]) thresholds.push(round2(photons * basis.aduPerPhoton));
  return {
    adcThreshold: [...new Set(thresholds)].sort((a, b) => a - b),
    minSnr: [3, 4, 5, 6, 8],
    minPixCount: [1, 2, 3],
    maxPixCount: [200],
    localBgRadius: [2, 3, 4],
  };
}

/** Order in which axes nest when the grid is expanded (last varies fastest). */
const axisOrder: GridKey[] = [
  'adcThreshold',
  'minSnr',
  'minPixCount',
  'maxPixCount',
  'localBgRadius',
  'minResPx',
  'maxResPx',
];

/** Parses `threshold=100,200;min-snr=3,4` (names as indexamajig's options). */
export function parseGrid(text: string): Pf8Grid {
  const grid: Pf8Grid = {};
  for (const part of text.split(';')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const name = (eq < 0 ? part : part.slice(0, eq)).trim();
    if (!(name in gridKeys) || eq < 0) {
      throw new UserError(
        `expected NAME=v1,v2,... with NAME one of ${Object.keys(gridKeys).join(', ')}; got '${part.trim()}'`,
        undefined,
        '--grid',
      );
    }
    const key = gridKeys[name as GridName];
    if (grid[key] !== undefined) throw new UserError(`${name} is given twice`, undefined, '--grid');
    const values = part
      .slice(eq + 1)
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '')
      .map((v) => (v === 'inf' || v === 'Infinity' ? Number.POSITIVE_INFINITY : Number(v)));
    if (values.length === 0 || values.some(Number.isNaN))
      throw new UserError(`${name} needs a comma-separated list of numbers`, undefined, '--grid');
    // The params-file rules (integers where needed, positive radii, ...) apply to every value.
    for (const value of values) {
      try {
        parsePf8ParamsPartial({ [key]: value });
      } catch (error) {
        if (!(error instanceof UserError)) throw error;
        throw new UserError(`${name}=${value}: ${error.message}`, undefined, '--grid');
      }
    }
    grid[key] = [...new Set(values)];
  }
  return grid;
}

/** The grid as `--grid` reads it (round trip: parseGrid(gridToSpec(g)) equals g). */
export function gridToSpec(grid: Pf8Grid): string {
  const parts: string[] = [];
  for (const [name, key] of Object.entries(gridKeys)) {
    const values = grid[key];
    if (values === undefined) continue;
    parts.push(`${name}=${values.map((v) => (Number.isFinite(v) ? String(v) : 'inf')).join(',')}`);
  }
  return parts.join(';');
}

/**
 * Every configuration of the grid over `base`, in a fixed order (threshold outermost); combinations
 * that cannot work (min-pix-count above max-pix-count, min-res not below max-res) are left out.
 */
export function expandGrid(grid: Pf8Grid, base: Pf8Params = defaultPf8Params): Pf8Params[] {
  let configs: Pf8Params[] = [{ ...base }];
  for (const key of axisOrder) {
    const values = grid[key];
    if (values === undefined || values.length === 0) continue;
    configs = configs.flatMap((config) => values.map((value) => ({ ...config, [key]: value })));
  }
  configs = configs.filter((c) => c.minPixCount <= c.maxPixCount && c.minResPx < c.maxResPx);
  if (configs.length === 0)
    throw new UserError(
      'no configuration left: every min-pix-count is above max-pix-count (or min-res >= max-res)',
      undefined,
      '--grid',
    );
  return configs;
}

/** Matched, found and reference counts. */
export interface PeakCounts {
  matched: number;
  found: number;
  reference: number;
}

export interface Scored extends PeakCounts {
  precision: number;
  recall: number;
  f1: number;
}

export function scoreCounts(counts: PeakCounts): Scored {
  return { ...counts, ...scoresFromCounts(counts.matched, counts.found, counts.reference) };
}

/** What a worker (or the main thread when workers = 0) holds for the whole search. */
export interface TuneWorkerData {
  geometry: Geometry;
  /** 1 = good, slab layout; pixels at 0 take no part (masked panels of a held-out split too). */
  mask: Uint8Array;
  /** All frames, [frame][ss * fs] float32, in one SharedArrayBuffer. */
  frames: Float32Array;
  frameCount: number;
  labels: { fs: Float32Array; ss: Float32Array; count: number }[];
  radiusPx: number;
}

export interface TuneTask {
  configs: Pf8Params[];
  frames: number[];
}

/** Runs tasks against the frames: builds the peakfinder8 context once. */
export function createTaskEvaluator(data: TuneWorkerData): (task: TuneTask) => Int32Array {
  let ctx: Pf8Context | undefined;
  const pixels = data.frameCount === 0 ? 0 : data.frames.length / data.frameCount;
  return (task) => {
    ctx ??= createPf8Context(computePixelMaps(data.geometry), data.mask);
    const out = new Int32Array(task.configs.length * task.frames.length * 3);
    let k = 0;
    for (const config of task.configs) {
      for (const f of task.frames) {
        const image = data.frames.subarray(f * pixels, (f + 1) * pixels);
        const found = peakfinder8(image, ctx, config);
        const match = matchPeaks(found, data.labels[f], data.radiusPx);
        out[k++] = match.matched;
        out[k++] = match.found;
        out[k++] = match.reference;
      }
    }
    return out;
  };
}

export interface TuneInput {
  geometry: Geometry;
  mask: Uint8Array;
  /** Frames, each [ss * fs] (float32 views are copied into shared memory once). */
  frames: Float32Array[];
  /** Reference peaks per frame, same length as `frames`. */
  labels: PointSet[];
  radiusPx: number;
  /** Worker threads; 0 evaluates on the calling thread (small jobs, tests). */
  workers: number;
}

/** Scores configurations; holds workers until closed. */
export interface Pf8Scorer {
  readonly frameCount: number;
  /** Counts per configuration and frame: [config][frame] -> matched, found, reference (flat). */
  countsPerFrame(
    configs: Pf8Params[],
    frames: number[],
    onBatch?: (firstConfig: number, counts: Int32Array) => void,
  ): Promise<Int32Array>;
  close(): Promise<void>;
}

/** Configurations per task: small enough to balance workers and report progress, large enough to be cheap. */
function batchSize(configs: number, frames: number, workers: number): number {
  const target = Math.max(1, Math.ceil(configs / Math.max(1, workers * 8)));
  return Math.max(1, Math.min(target, Math.ceil(64 / Math.max(1, frames))));
}

export function createPf8Scorer(input: TuneInput): Pf8Scorer {
  const frameCount = input.frames.length;
  if (input.labels.length !== frameCount)
    throw new UserError(`${frameCount} frames but ${input.labels.length} label lists`);
  const pixels = frameCount === 0 ? 0 : input.frames[0].length;
  const shared = new Float32Array(new SharedArrayBuffer(Math.max(4, frameCount * pixels * 4)));
  input.frames.forEach((frame, f) => {
    if (frame.length !== pixels)
      throw new Error(`frame ${f} has ${frame.length} pixels, frame 0 has ${pixels}`);
    shared.set(frame, f * pixels);
  });
  const data: TuneWorkerData = {
    geometry: input.geometry,
    mask: input.mask,
    frames: shared.subarray(0, frameCount * pixels),
    frameCount,
    labels: input.labels.map((l) => ({
      fs: Float32Array.from({ length: l.count }, (_, k) => l.fs[k]),
      ss: Float32Array.from({ length: l.count }, (_, k) => l.ss[k]),
      count: l.count,
    })),
    radiusPx: input.radiusPx,
  };
  const local = input.workers === 0 ? createTaskEvaluator(data) : undefined;
  const pool: WorkerPool<TuneTask, Int32Array> | undefined =
    input.workers === 0
      ? undefined
      : createWorkerPool(workerScriptUrl(import.meta.url, 'tune-worker'), input.workers, data);
  return {
    frameCount,
    async countsPerFrame(configs, frames, onBatch) {
      const out = new Int32Array(configs.length * frames.length * 3);
      const size = batchSize(configs.length, frames.length, pool?.size ?? 1);
      const jobs: Promise<void>[] = [];
      for (let start = 0; start < configs.length; start += size) {
        const task: TuneTask = { configs: configs.slice(start, start + size), frames };
        const place = (counts: Int32Array) => {
          out.set(counts, start * frames.length * 3);
          onBatch?.(start, counts);
        };
        if (local !== undefined) {
          place(local(task));
          // Let progress output and signals through between batches.
          await new Promise((resolve) => setImmediate(resolve));
        } else jobs.push(pool!.run(task).then(place));
      }
      await Promise.all(jobs);
      return out;
    },
    async close() {
      await pool?.close();
    },
  };
}

export type SearchKind = 'grid' | 'halving';

export interface TuneOptions {
  configs: Pf8Params[];
  search: SearchKind;
  /** Successive halving: keep 1/eta per round, grow the frame subset eta-fold (default 3). */
  eta?: number;
  /** Called after each batch: evaluations (configuration x frame) done and planned. */
  onProgress?: (done: number, total: number, best: number) => void;
}

export interface ConfigResult extends Scored {
  /** Index into the grid. */
  index: number;
  params: Pf8Params;
  /** Frames this score is over. */
  frames: number;
}

export interface TuneRound {
  frames: number;
  configs: number;
  bestF1: number;
}

export interface TuneResult {
  search: SearchKind;
  best: ConfigResult;
  rounds: TuneRound[];
  /** Every configuration scored on the first round's frames (all frames for a grid). */
  firstRound: ConfigResult[];
  evaluations: number;
}

/** `count` frame indices spread evenly over `total` (deterministic). */
export function evenlySpaced(count: number, total: number): number[] {
  if (count >= total) return Array.from({ length: total }, (_, i) => i);
  return Array.from({ length: count }, (_, i) => Math.floor(((i + 0.5) * total) / count));
}

/** Best first; ties to the configuration listed first. */
function byF1(a: ConfigResult, b: ConfigResult): number {
  return b.f1 - a.f1 || a.index - b.index;
}

/** Runs the search; the scorer decides where the work happens. */
export async function tunePf8(scorer: Pf8Scorer, options: TuneOptions): Promise<TuneResult> {
  const { configs, search } = options;
  const eta = options.eta ?? 3;
  if (configs.length === 0) throw new UserError('the grid is empty');
  if (!(eta >= 2)) throw new UserError(`eta must be at least 2, got ${eta}`);
  const total = scorer.frameCount;
  if (total === 0) throw new UserError('no frames to tune on');
  // Round r keeps ceil(C / eta^r) configurations on ceil(F / eta^(R - r)) frames; the last round
  // runs on every frame.
  const lastRound =
    search === 'grid' ? 0 : Math.max(0, Math.floor(Math.log(configs.length) / Math.log(eta) + 1e-9));
  const plan: { frames: number[]; keep: number }[] = [];
  for (let r = 0; r <= lastRound; r++) {
    const frameCount = Math.max(1, Math.ceil(total / eta ** (lastRound - r)));
    plan.push({ frames: evenlySpaced(frameCount, total), keep: Math.ceil(configs.length / eta ** r) });
  }
  const planned = plan.reduce((sum, p) => sum + p.keep * p.frames.length, 0);
  // Counts per configuration and frame, so a frame scored in one round is not scored again.
  const cache = new Map<number, Int32Array>();
  const cached = (index: number) => {
    let row = cache.get(index);
    if (row === undefined) {
      row = new Int32Array(total * 3).fill(-1);
      cache.set(index, row);
    }
    return row;
  };
  let done = 0;
  let bestSoFar = 0;
  let evaluations = 0;
  let survivors = configs.map((_, index) => index);
  const rounds: TuneRound[] = [];
  let firstRound: ConfigResult[] = [];
  let ranked: ConfigResult[] = [];
  for (const [r, step] of plan.entries()) {
    survivors = survivors.slice(0, step.keep);
    // Only the (configuration, frame) pairs not scored yet, grouped by their missing frames.
    const missing = new Map<string, { frames: number[]; configs: number[] }>();
    for (const index of survivors) {
      const row = cached(index);
      const frames = step.frames.filter((f) => row[f * 3] < 0);
      if (frames.length === 0) continue;
      const key = frames.join(',');
      const group = missing.get(key) ?? { frames, configs: [] };
      group.configs.push(index);
      missing.set(key, group);
    }
    for (const group of missing.values()) {
      const counts = await scorer.countsPerFrame(
        group.configs.map((i) => configs[i]),
        group.frames,
        (_first, counts) => {
          const perConfig = group.frames.length * 3;
          done += counts.length / 3;
          // Progress shows the best F1 among configurations already scored on all of this round's frames.
          if (group.frames.length === step.frames.length) {
            for (let at = 0; at < counts.length; at += perConfig) {
              const sum = { matched: 0, found: 0, reference: 0 };
              for (let k = at; k < at + perConfig; k += 3) {
                sum.matched += counts[k];
                sum.found += counts[k + 1];
                sum.reference += counts[k + 2];
              }
              bestSoFar = Math.max(bestSoFar, scoreCounts(sum).f1);
            }
          }
          options.onProgress?.(done, planned, bestSoFar);
        },
      );
      group.configs.forEach((index, c) => {
        const row = cached(index);
        group.frames.forEach((f, k) => {
          const at = (c * group.frames.length + k) * 3;
          row.set(counts.subarray(at, at + 3), f * 3);
        });
      });
      evaluations += group.configs.length * group.frames.length;
    }
    ranked = survivors
      .map((index) => {
        const row = cached(index);
        const sum = { matched: 0, found: 0, reference: 0 };
        for (const f of step.frames) {
          sum.matched += row[f * 3];
          sum.found += row[f * 3 + 1];
          sum.reference += row[f * 3 + 2];
        }
        return { index, params: configs[index], frames: step.frames.length, ...scoreCounts(sum) };
      })
      .sort(byF1);
    if (r === 0) firstRound = [...ranked].sort((a, b) => a.index - b.index);
    bestSoFar = Math.max(bestSoFar, ranked[0].f1);
    rounds.push({ frames: step.frames.length, configs: survivors.length, bestF1: ranked[0].f1 });
    survivors = ranked.map((c) => c.index).slice(0, Math.ceil(survivors.length / eta));
  }
  return { search, best: ranked[0], rounds, firstRound, evaluations };
}

/** Scores given parameter sets on every frame (defaults vs tuned, held-out checks). */
export async function scorePf8(scorer: Pf8Scorer, params: Pf8Params[]): Promise<Scored[]> {
  const frames = Array.from({ length: scorer.frameCount }, (_, i) => i);
  const counts = await scorer.countsPerFrame(params, frames);
  return params.map((_, c) => {
    const sum = { matched: 0, found: 0, reference: 0 };
    for (let k = 0; k < frames.length; k++) {
      const at = (c * frames.length + k) * 3;
      sum.matched += counts[at];
      sum.found += counts[at + 1];
      sum.reference += counts[at + 2];
    }
    return scoreCounts(sum);
  });
}

export interface F1Surface {
  thresholds: number[];
  minSnrs: number[];
  /** Row-major [minSnr][threshold]: the best F1 over the other parameters. */
  f1: Float64Array;
  /** Frames behind each value. */
  frames: number;
}

/** The F1 surface over (threshold x minSnr), each cell the best over the other parameters. */
export function f1Surface(results: ConfigResult[]): F1Surface {
  const thresholds = [...new Set(results.map((r) => r.params.adcThreshold))].sort((a, b) => a - b);
  const minSnrs = [...new Set(results.map((r) => r.params.minSnr))].sort((a, b) => a - b);
  const f1 = new Float64Array(thresholds.length * minSnrs.length).fill(Number.NaN);
  for (const r of results) {
    const cell =
      minSnrs.indexOf(r.params.minSnr) * thresholds.length + thresholds.indexOf(r.params.adcThreshold);
    if (!(f1[cell] >= r.f1)) f1[cell] = r.f1;
  }
  return { thresholds, minSnrs, f1, frames: results[0]?.frames ?? 0 };
}

/** The F1 surface as an annotated heatmap; the title names the best configuration. */
export function f1SurfaceSvg(surface: F1Surface, best: Pf8Params): string {
  return heatmapSvg({
    title: `pf8 F1, best over pixel counts and bg radius (${surface.frames} frame(s)); best: ${best.adcThreshold} ADU, SNR ${best.minSnr}, ${best.minPixCount}-${best.maxPixCount} px, bg ${best.localBgRadius}`,
    xLabel: 'threshold (ADU)',
    yLabel: 'min SNR',
    xTicks: surface.thresholds.map(String),
    yTicks: surface.minSnrs.map(String),
    values: surface.f1,
    colorLabel: 'F1',
    annotate: true,
    width: 860,
    height: 520,
  });
}

/** Panels grouped into modules of `panelsPerModule` consecutive panels (CSPAD 2x1: 2). */
export function moduleOfPanel(panel: number, panelsPerModule: number): number {
  return Math.floor(panel / panelsPerModule);
}

/**
 * A copy of `mask` keeping only panels whose module has the given parity (0 = even modules): half
 * the detector for tuning, the other half held out.
 */
export function moduleParityMask(
  mask: Uint8Array,
  panelIndex: ArrayLike<number>,
  panelsPerModule: number,
  parity: 0 | 1,
): Uint8Array {
  const out = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) {
    const p = panelIndex[i];
    out[i] = p >= 0 && moduleOfPanel(p, panelsPerModule) % 2 === parity ? mask[i] : 0;
  }
  return out;
}

/** The reference peaks that fall on good pixels of `mask` (nearest pixel), for scoring a panel subset. */
export function pointsInMask(points: PointSet, mask: Uint8Array, fsSize: number, ssSize: number): PointSet {
  const fs: number[] = [];
  const ss: number[] = [];
  for (let k = 0; k < points.count; k++) {
    const f = Math.round(points.fs[k]);
    const s = Math.round(points.ss[k]);
    if (f < 0 || s < 0 || f >= fsSize || s >= ssSize || mask[s * fsSize + f] === 0) continue;
    fs.push(points.fs[k]);
    ss.push(points.ss[k]);
  }
  return { count: fs.length, fs, ss };
}
