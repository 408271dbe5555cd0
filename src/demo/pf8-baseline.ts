/**
 * The demo's baseline: peakfinder8 as a beamline runs it (indexamajig's defaults) and as `braggflow
 * tune` would set it up automatically (successive halving over a grid, scored against the simulator's
 * truth on the training frames only), both then run on the held-out frames.
 */

import type { PixelMaps } from '../detector/pixel-maps.js';
import type { Geometry } from '../io/geom.js';
import type { PeakList } from '../peaks/peak-list.js';
import { createPf8Context, defaultPf8Params, type Pf8Params, peakfinder8 } from '../peaks/peakfinder8.js';
import { createPf8Scorer, expandGrid, type Pf8Grid, type TuneResult, tunePf8 } from '../peaks/tune.js';
import { createProgress, type Progress } from '../util/progress.js';
import { median } from '../util/stats.js';
import type { LabelledFrame } from './simulated-run.js';

/**
 * The demo's grid (270 configurations): thresholds on this detector's scale (1 ADU per photon, a few
 * photons of background per pixel), where indexamajig's 800 ADU default finds only the brightest
 * spots, and the SNR, pixel-count and background-ring choices people try.
 */
export const demoPf8Grid: Readonly<Pf8Grid> = Object.freeze({
  adcThreshold: [5, 10, 20, 40, 80, 160],
  minSnr: [3, 4, 5, 6, 8],
  minPixCount: [1, 2, 3],
  localBgRadius: [2, 3, 4],
});

export interface Pf8BaselineOptions {
  geometry: Geometry;
  maps: PixelMaps;
  /** Good pixels (1), slab layout. */
  mask: Uint8Array;
  train: readonly LabelledFrame[];
  heldOut: readonly LabelledFrame[];
  radiusPx: number;
  /** Default demoPf8Grid. */
  grid?: Pf8Grid;
  /** Worker threads for the search (0: this thread). */
  workers: number;
  log: (line: string) => void;
}

export interface Pf8Run {
  params: Pf8Params;
  /** Peaks per held-out frame. */
  peaks: PeakList[];
  /** Median time per held-out frame, ms. */
  msPerFrame: number;
}

export interface Pf8Baseline {
  defaults: Pf8Run;
  tuned: Pf8Run;
  tuning: TuneResult & { configurations: number; seconds: number; workers: number };
}

export async function runPf8Baseline(options: Pf8BaselineOptions): Promise<Pf8Baseline> {
  const configs = expandGrid(options.grid ?? demoPf8Grid, defaultPf8Params);
  const started = performance.now();
  const scorer = createPf8Scorer({
    geometry: options.geometry,
    mask: options.mask,
    frames: options.train.map((f) => f.image),
    labels: options.train.map((f) => f.truth),
    radiusPx: options.radiusPx,
    workers: options.workers,
  });
  let result: TuneResult;
  try {
    let bar: Progress | undefined;
    result = await tunePf8(scorer, {
      configs,
      search: 'halving',
      onProgress(done, planned, best) {
        bar ??= createProgress('tune', planned, options.log, Math.max(1, Math.ceil(planned / 4)));
        bar.update(done, `best F1 ${best.toFixed(3)}`);
      },
    });
    bar?.stop();
  } finally {
    await scorer.close();
  }
  const seconds = (performance.now() - started) / 1000;

  const context = createPf8Context(options.maps, options.mask);
  const run = (params: Pf8Params): Pf8Run => {
    const times: number[] = [];
    const peaks = options.heldOut.map((frame) => {
      const start = performance.now();
      const found = peakfinder8(frame.image, context, params);
      times.push(performance.now() - start);
      return found;
    });
    return { params, peaks, msPerFrame: median(times) };
  };
  return {
    defaults: run({ ...defaultPf8Params }),
    tuned: run(result.best.params),
    tuning: { ...result, configurations: configs.length, seconds, workers: options.workers },
  };
}
