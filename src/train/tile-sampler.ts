/**
 * Training tiles cut the way serving cuts them (src/infer/tiling.ts): a window of one panel, never
 * across a seam, placed at the tile's origin with padding after it, preprocessed on its own good
 * pixels by the model file's preprocessing (src/infer/preprocess.ts). What the model learns on is
 * therefore exactly what it will be served, whatever the detector.
 *
 * A window is either a full tile inside a panel (as a large module is tiled) or, for a share of tiles,
 * a smaller random rectangle (as a CSPAD ASIC or an ePix ASIC is padded into one tile). Augmentations
 * act on the raw ADU before preprocessing (gain, pedestal, Poisson thinning, masked rectangles, hot
 * pixels, whose target stays background) and on the window's orientation (flips, rot90), so padding
 * stays after the panel's pixels as at serving.
 */
import { panelSlabRect } from '../detector/mask.js';
import type { Preprocessing, TileSpec } from '../infer/model-file.js';
import { preprocessTile, tileStatistics } from '../infer/preprocess.js';
import { TILE_STRIDE_PX } from '../infer/tiling.js';
import { samplePoisson } from '../simulate/poisson.js';
import type { TrainConfig } from './config.js';
import type { TrainingFrame } from './frame-source.js';

export interface TileSamplerOptions {
  tile: Pick<TileSpec, 'heightPx' | 'widthPx'>;
  preprocessing: Preprocessing;
  spotTileFraction: number;
  smallPanelFraction: number;
  augment: TrainConfig['augment'];
  /**
   * Draw the panel again (up to 8 times, keeping the spot-or-area choice) while the tile is more than
   * one stride (32 px) longer than it along an axis: a tile of this shape serves panels it fits
   * (panel-fitted serving), so it is trained on those, not on small panels lost in padding.
   */
  preferFittingPanels?: boolean;
}

/** Panel draws before a tile that prefers fitting panels takes what it has. */
const FITTING_DRAWS = 8;

/** Smallest side of a small-panel window, pixels. */
const MIN_WINDOW_PX = 48;

/** Scratch for one window; reused across calls. */
interface Scratch {
  raw: Float32Array;
  valid: Uint8Array;
  target: Uint8Array;
  raw2: Float32Array;
  valid2: Uint8Array;
  target2: Uint8Array;
}

export interface TileSampler {
  /**
   * Cuts one training tile of `frame` into `values` (model input, [H * W]) and `target` (0/1), drawing
   * every choice from `random`; returns the peak pixels in the tile.
   */
  sample(frame: TrainingFrame, random: () => number, values: Float32Array, target: Uint8Array): number;
}

export function createTileSampler(options: TileSamplerOptions): TileSampler {
  const { heightPx: H, widthPx: W } = options.tile;
  const maxSide = Math.max(H, W);
  const scratch: Scratch = {
    raw: new Float32Array(maxSide * maxSide),
    valid: new Uint8Array(maxSide * maxSide),
    target: new Uint8Array(maxSide * maxSide),
    raw2: new Float32Array(maxSide * maxSide),
    valid2: new Uint8Array(maxSide * maxSide),
    target2: new Uint8Array(maxSide * maxSide),
  };
  const tileValid = new Uint8Array(H * W);
  const areaCache = new WeakMap<object, Float64Array>();
  const aug = options.augment;

  return {
    sample(frame, random, values, target) {
      const { maps, goodPixels, image, mask, truth } = frame;
      // Panel: under a true spot, or by area. A tile that prefers fitting panels keeps that choice
      // and draws again within it (a spot on another panel, another panel by area) until the panel
      // fits, so its share of spot tiles stays spotTileFraction.
      const fits = (p: number) => {
        const r = panelSlabRect(maps, p);
        return r.ss1 - r.ss0 + 1 > H - TILE_STRIDE_PX && r.fs1 - r.fs0 + 1 > W - TILE_STRIDE_PX;
      };
      const draws = options.preferFittingPanels ? FITTING_DRAWS : 1;
      let panel = -1;
      let spot = -1;
      if (truth.count > 0 && random() < options.spotTileFraction) {
        for (let draw = 0; draw < draws; draw++) {
          spot = Math.floor(random() * truth.count);
          panel = maps.panelIndex[Math.round(truth.ss[spot]) * maps.fsSize + Math.round(truth.fs[spot])];
          if (panel >= 0 && fits(panel)) break;
        }
        if (panel < 0) spot = -1;
      }
      if (panel < 0) {
        let cumulative = areaCache.get(maps);
        if (cumulative === undefined) {
          let sum = 0;
          cumulative = Float64Array.from(maps.geometry.panels, (p) => {
            sum += (p.maxSs - p.minSs + 1) * (p.maxFs - p.minFs + 1);
            return sum;
          });
          areaCache.set(maps, cumulative);
        }
        for (let draw = 0; draw < draws; draw++) {
          const u = random() * cumulative[cumulative.length - 1];
          panel = cumulative.findIndex((c) => u < c);
          if (fits(panel)) break;
        }
      }
      const rect = panelSlabRect(maps, panel);
      const rows = rect.ss1 - rect.ss0 + 1;
      const cols = rect.fs1 - rect.fs0 + 1;
      // Window size: the tile (or the whole panel when smaller), or a smaller "ASIC".
      let h = Math.min(rows, H);
      let w = Math.min(cols, W);
      if (random() < options.smallPanelFraction) {
        h = Math.min(h, MIN_WINDOW_PX + Math.floor(random() * Math.max(1, H - MIN_WINDOW_PX)));
        w = Math.min(w, MIN_WINDOW_PX + Math.floor(random() * Math.max(1, W - MIN_WINDOW_PX)));
      }
      const place = (centre: number, lo: number, span: number, size: number) => {
        const start =
          centre < 0 ? lo + Math.floor(random() * (span - size + 1)) : Math.round(centre - random() * size);
        return Math.min(Math.max(start, lo), lo + span - size);
      };
      const ss0 = place(spot >= 0 ? truth.ss[spot] : -1, rect.ss0, rows, h);
      const fs0 = place(spot >= 0 ? truth.fs[spot] : -1, rect.fs0, cols, w);

      // Copy the window out (raw ADU), valid where the panel measures a finite value.
      const { raw, valid, target: win } = scratch;
      let peakPixels = 0;
      for (let r = 0; r < h; r++) {
        for (let c = 0; c < w; c++) {
          const i = (ss0 + r) * maps.fsSize + fs0 + c;
          const k = r * w + c;
          const v = image[i];
          const ok = maps.panelIndex[i] === panel && goodPixels[i] === 1 && Number.isFinite(v);
          raw[k] = ok ? v : 0;
          valid[k] = ok ? 1 : 0;
          win[k] = ok ? mask[i] : 0;
        }
      }
      const n = h * w;
      const gain = frame.aduPerPhoton > 0 ? frame.aduPerPhoton : 1;

      // Raw-domain augmentations.
      if (aug.renoise > 0 && random() < aug.renoise) {
        // Poisson thinning: keep each photon with probability f (a weaker shot), read out again.
        const f = 0.5 + 0.5 * random();
        for (let k = 0; k < n; k++)
          if (valid[k] && raw[k] > 0) raw[k] = samplePoisson((f * raw[k]) / gain, random) * gain;
      }
      const scale = aug.gainScale[0] * (aug.gainScale[1] / aug.gainScale[0]) ** random();
      const pedestal =
        (aug.pedestalNoise[0] + (aug.pedestalNoise[1] - aug.pedestalNoise[0]) * random()) * gain;
      if (scale !== 1 || pedestal !== 0)
        for (let k = 0; k < n; k++) if (valid[k]) raw[k] = raw[k] * scale + pedestal;
      if (random() < aug.maskedRegion) {
        const mh = 4 + Math.floor(random() * Math.min(60, h));
        const mw = 4 + Math.floor(random() * Math.min(60, w));
        const r0 = Math.floor(random() * Math.max(1, h - mh));
        const c0 = Math.floor(random() * Math.max(1, w - mw));
        for (let r = r0; r < Math.min(h, r0 + mh); r++)
          for (let c = c0; c < Math.min(w, c0 + mw); c++) {
            valid[r * w + c] = 0;
            win[r * w + c] = 0;
          }
      }
      if (random() < aug.hotPixels) {
        const count = 1 + Math.floor(random() * 5);
        for (let j = 0; j < count; j++) {
          const k = Math.floor(random() * n);
          if (!valid[k]) continue;
          raw[k] = (200 + 2000 * random()) * gain * scale + pedestal;
          win[k] = 0;
        }
      }
      if (aug.outliers > 0 && random() < aug.outliers) {
        // Real backgrounds have heavier tails than counting statistics (charge sharing, pixels off
        // their calibration, zingers): on the real CSPAD frame 2.6 % of the pixels away from any
        // spot sit above 5 sigma of the tile's clipped noise, against ~0.2 % simulated. Clusters of
        // 1-3 neighbouring pixels on 0.1-3 % of the pixels, 3-30 sigma a cluster (each pixel 0.5-1.5
        // times that), all labelled background.
        const { noise } = tileStatistics(raw, valid, n, options.preprocessing);
        const clusters = Math.round((1e-3 * 30 ** random() * n) / 2);
        for (let j = 0; j < clusters; j++) {
          let r = Math.floor(random() * h);
          let c = Math.floor(random() * w);
          const size = 1 + Math.floor(random() * 3);
          const sigmas = 3 * 10 ** random();
          for (let m = 0; m < size; m++) {
            const k = r * w + c;
            if (valid[k] && !win[k]) raw[k] += sigmas * (0.5 + random()) * noise;
            const step = Math.floor(random() * 4);
            r = Math.min(h - 1, Math.max(0, r + (step === 0 ? 1 : step === 1 ? -1 : 0)));
            c = Math.min(w - 1, Math.max(0, c + (step === 2 ? 1 : step === 3 ? -1 : 0)));
          }
        }
      }

      // Orientation: flips and a quarter turn (the turned window must still fit the tile).
      let src = { raw, valid, target: win, h, w };
      const turn = aug.rot90 && w <= H && h <= W && random() < 0.5;
      const flipR = aug.flips && random() < 0.5;
      const flipC = aug.flips && random() < 0.5;
      if (turn || flipR || flipC) {
        const oh = turn ? w : h;
        const ow = turn ? h : w;
        const { raw2, valid2, target2 } = scratch;
        for (let r = 0; r < oh; r++) {
          for (let c = 0; c < ow; c++) {
            // Output (r, c) reads input (sr, sc): transpose for the turn, then the flips.
            let sr = turn ? c : r;
            let sc = turn ? r : c;
            if (flipR) sr = h - 1 - sr;
            if (flipC) sc = w - 1 - sc;
            const from = sr * w + sc;
            const to = r * ow + c;
            raw2[to] = raw[from];
            valid2[to] = valid[from];
            target2[to] = win[from];
          }
        }
        src = { raw: raw2, valid: valid2, target: target2, h: oh, w: ow };
      }

      // Into the tile at its origin, padding after (as cutTile does), then the served preprocessing.
      values.fill(0);
      tileValid.fill(0);
      target.fill(0);
      for (let r = 0; r < src.h; r++) {
        for (let c = 0; c < src.w; c++) {
          const k = r * src.w + c;
          const t = r * W + c;
          values[t] = src.raw[k];
          tileValid[t] = src.valid[k];
          target[t] = src.valid[k] ? src.target[k] : 0;
          peakPixels += target[t];
        }
      }
      preprocessTile(values, tileValid, H * W, options.preprocessing);
      return peakPixels;
    },
  };
}
