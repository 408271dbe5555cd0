/**
 * The collecting node (OnDA's): what a beamline scientist watches during a run. Hit rate, frames per
 * second, peaks per hit, latency (source to processed), per-panel peak counts, and the peakogram: a
 * 2-D histogram of each peak's distance from the beam (pixels) against its brightest pixel
 * (log10 ADU), where ice rings, saturation and a drifting detector show up at a glance.
 */
import type { PixelMaps } from '../detector/pixel-maps.js';
import type { ErrorMessage, FrameResult } from './protocol.js';

/** Peakogram bins: radius 0..maxRadius in `RADIUS_BINS`, log10(max ADU) -1..6 in `INTENSITY_BINS`. */
export const RADIUS_BINS = 64;
export const INTENSITY_BINS = 56;
export const LOG_INTENSITY_RANGE: [number, number] = [-1, 6];

export interface Peakogram {
  radiusEdgesPx: [number, number];
  log10MaxAduEdges: [number, number];
  /** counts[r * INTENSITY_BINS + i]. */
  counts: number[];
  radiusBins: number;
  intensityBins: number;
}

export interface RunStats {
  frames: number;
  hits: number;
  hitRate: number;
  peaks: number;
  peaksPerHit: number;
  framesPerSecond: number;
  latencyMs: { p50: number; p99: number };
  deadLetters: { source: string; file: string; event: number; reason: string }[];
  perPanelPeaks: Record<string, number>;
  peakogram: Peakogram;
  seconds: number;
}

export interface Collector {
  add(result: FrameResult): void;
  deadLetter(message: ErrorMessage): void;
  stats(): RunStats;
  /** Frames added so far (what `stats().frames` says, without computing the rest). */
  readonly frames: number;
  /** The running counts, without computing the statistics (sorted latencies, the peakogram). */
  totals(): { frames: number; hits: number; peaks: number; hitPeaks: number };
}

/** The q-quantile of sorted values (nearest rank). */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function createCollector(maps: PixelMaps): Collector {
  const started = performance.now();
  let maxRadius = 0;
  for (const r of maps.radiusPx) if (r > maxRadius) maxRadius = r;
  maxRadius = Math.max(1, Math.ceil(maxRadius));
  const counts = new Array<number>(RADIUS_BINS * INTENSITY_BINS).fill(0);
  const panelNames = maps.geometry.panels.map((p) => p.name);
  const perPanel = new Array<number>(panelNames.length).fill(0);
  const latencies: number[] = [];
  const deadLetters: RunStats['deadLetters'] = [];
  let frames = 0;
  let hits = 0;
  let peaks = 0;
  let hitPeaks = 0;
  let firstMs: number | undefined;
  let lastMs = 0;
  const [logLo, logHi] = LOG_INTENSITY_RANGE;
  return {
    add(result) {
      frames++;
      firstMs ??= result.sentAtMs;
      lastMs = Math.max(lastMs, result.doneAtMs);
      latencies.push(result.doneAtMs - result.sentAtMs);
      const list = result.peaks;
      peaks += list.count;
      if (result.hit) {
        hits++;
        hitPeaks += list.count;
      }
      for (let k = 0; k < list.count; k++) {
        const pixel = Math.round(list.ss[k]) * maps.fsSize + Math.round(list.fs[k]);
        const panel = maps.panelIndex[pixel];
        if (panel >= 0) perPanel[panel]++;
        const radius = maps.radiusPx[pixel];
        if (!Number.isFinite(radius)) continue;
        const r = Math.min(RADIUS_BINS - 1, Math.floor((radius / maxRadius) * RADIUS_BINS));
        const log = Math.log10(Math.max(list.maxValue[k], 10 ** logLo));
        const i = Math.min(
          INTENSITY_BINS - 1,
          Math.max(0, Math.floor(((log - logLo) / (logHi - logLo)) * INTENSITY_BINS)),
        );
        counts[r * INTENSITY_BINS + i]++;
      }
    },
    deadLetter(message) {
      deadLetters.push({ ...message.id, reason: message.reason });
    },
    stats() {
      const sorted = [...latencies].sort((a, b) => a - b);
      const spanS = firstMs === undefined ? 0 : Math.max(1e-3, (lastMs - firstMs) / 1000);
      return {
        frames,
        hits,
        hitRate: frames > 0 ? hits / frames : 0,
        peaks,
        peaksPerHit: hits > 0 ? hitPeaks / hits : 0,
        framesPerSecond: spanS > 0 ? frames / spanS : 0,
        latencyMs: { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99) },
        deadLetters: [...deadLetters],
        perPanelPeaks: Object.fromEntries(panelNames.map((name, p) => [name, perPanel[p]])),
        peakogram: {
          radiusEdgesPx: [0, maxRadius],
          log10MaxAduEdges: [logLo, logHi],
          counts: [...counts],
          radiusBins: RADIUS_BINS,
          intensityBins: INTENSITY_BINS,
        },
        seconds: (performance.now() - started) / 1000,
      };
    },
    get frames() {
      return frames;
    },
    totals: () => ({ frames, hits, peaks, hitPeaks }),
  };
}
