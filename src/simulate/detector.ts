/**
 * The detector's response: per-run fixed state (bad pixels, gain map, pedestal residuals) and the
 * per-frame exposure that turns expected photons into ADU. One pass over the slab, typed arrays only;
 * random numbers come from an inline Mulberry32 stream seeded by the caller plus the tables in
 * poisson.ts, so a 4-Mpixel frame costs tens of milliseconds on one core.
 *
 * Per pixel: photons ~ Poisson(mu) (inversion below POISSON_NORMAL_ABOVE_MEAN, rounded normal above);
 * ADU = photons x aduPerPhoton(panel) x relativeGain + pedestal residual + panel common mode + dark
 * noise, clipped to the panel's max_adu, optionally rounded to whole ADU; 0 where the detector gives
 * nothing (outside panels, geometry bad regions, dead pixels); a fixed high value at hot pixels.
 */
import { geometryMask } from '../detector/mask.js';
import type { PixelMaps } from '../detector/pixel-maps.js';
import {
  EXP_STEPS_PER_UNIT,
  expTableBuilt,
  NORMAL_TABLE_BITS,
  normalQuantiles,
  POISSON_NORMAL_ABOVE_MEAN,
  reciprocalTable,
} from './poisson.js';

export interface DetectorParams {
  /** Gain used when the geometry gives neither adu_per_photon nor adu_per_eV. */
  aduPerPhotonFallback: number;
  /**
   * Multiplies the geometry's gain (1 = as the geometry says). A file's adu_per_photon is not always the
   * data's: the real CSPAD thermolysin frame says 25 but its one-photon peak sits at ~8 ADU.
   */
  gainScale: number;
  /**
   * Relative spread of one photon's ADU (charge sharing between pixels, gain fluctuations): a pixel with
   * k photons gets k g + sqrt(k) g x this x N(0, 1). Broadens the one-photon peak as real sensors do.
   */
  photonAduSpreadFraction: number;
  /** Gaussian readout (dark) noise per pixel per frame, ADU. */
  darkNoiseAdu: number;
  /** Sigma of the per-pixel pedestal left after dark subtraction (fixed per run), ADU. */
  pedestalResidualAdu: number;
  /** Sigma of a per-panel, per-frame offset (common mode), ADU. */
  commonModeAdu: number;
  /** Sigma of the per-panel relative gain error (fixed per run), e.g. 0.03 = 3 %. */
  panelGainSpreadFraction: number;
  /** Sigma of the per-pixel relative gain error (flat field, fixed per run). */
  pixelGainSpreadFraction: number;
  /** Fraction of measured pixels that are hot, and their typical value (ADU, +-50 % per pixel). */
  hotPixelFraction: number;
  hotPixelAdu: number;
  /** Fraction of pixels that read 0 regardless of signal. */
  deadPixelFraction: number;
  /** Real detectors store whole ADU. */
  roundAdu: boolean;
}

export interface DetectorState {
  /** 1 where the detector reports a measurement: inside a panel, not masked by the geometry, not dead. */
  measured: Uint8Array;
  /** Panel gain error x pixel flat field (dimensionless, ~1). */
  relativeGain: Float32Array;
  pedestalAdu: Float32Array;
  hotPixels: Int32Array;
  hotPixelValuesAdu: Float32Array;
  deadPixels: Int32Array;
  /** 1 at hot pixels (their value is not a measurement of the signal). */
  hot: Uint8Array;
}

/**
 * x + ROUND_MAGIC - ROUND_MAGIC rounds x to the nearest integer (ties to even) for |x| < 2^51 with two
 * additions: Math.round on noisy values compiles to branches that mispredict, and cost 4x the whole
 * rest of the per-pixel work in V8 (measured: 57 vs 13 ms per 4-Mpixel pass).
 */
const ROUND_MAGIC = 6755399441055744; // 1.5 x 2^52

/** Gaussian draw from a `() => number` source (set-up code only; the frame loop uses the table). */
function gaussian(random: () => number): number {
  const table = normalQuantiles();
  return table[Math.floor(random() * (1 << NORMAL_TABLE_BITS))];
}

/** Draws the run's fixed detector state. */
export function createDetectorState(
  maps: PixelMaps,
  params: DetectorParams,
  random: () => number,
): DetectorState {
  const size = maps.ssSize * maps.fsSize;
  const measured = geometryMask(maps);
  const panelCount = maps.geometry.panels.length;
  const panelGain = new Float64Array(panelCount);
  for (let p = 0; p < panelCount; p++)
    panelGain[p] = Math.max(0.1, 1 + params.panelGainSpreadFraction * gaussian(random));
  const relativeGain = new Float32Array(size);
  const pedestalAdu = new Float32Array(size);
  const table = normalQuantiles();
  const { panelIndex } = maps;
  for (let i = 0; i < size; i++) {
    const p = panelIndex[i];
    if (p < 0) continue;
    relativeGain[i] =
      panelGain[p] * Math.max(0.1, 1 + params.pixelGainSpreadFraction * table[(random() * 65536) | 0]);
    pedestalAdu[i] = params.pedestalResidualAdu * table[(random() * 65536) | 0];
  }
  const dead: number[] = [];
  const hotList: number[] = [];
  if (params.deadPixelFraction > 0 || params.hotPixelFraction > 0) {
    for (let i = 0; i < size; i++) {
      if (!measured[i]) continue;
      const u = random();
      if (u < params.deadPixelFraction) dead.push(i);
      else if (u < params.deadPixelFraction + params.hotPixelFraction) hotList.push(i);
    }
  }
  for (const i of dead) measured[i] = 0;
  const hot = new Uint8Array(size);
  const hotPixelValuesAdu = new Float32Array(hotList.length);
  hotList.forEach((i, k) => {
    hot[i] = 1;
    hotPixelValuesAdu[k] = params.hotPixelAdu * (0.5 + random());
  });
  return {
    measured,
    relativeGain,
    pedestalAdu,
    hotPixels: Int32Array.from(hotList),
    hotPixelValuesAdu,
    deadPixels: Int32Array.from(dead),
    hot,
  };
}

/**
 * ADU per photon of each panel at this photon energy: adu_per_photon, else adu_per_eV x E (both x
 * gainScale), else the fallback.
 */
export function panelAduPerPhoton(
  maps: PixelMaps,
  params: DetectorParams,
  photonEnergyEv: number,
): Float64Array {
  return Float64Array.from(maps.geometry.panels, (panel) => {
    if (panel.aduPerPhoton !== undefined) return panel.aduPerPhoton * params.gainScale;
    if (panel.aduPerEv !== undefined) return panel.aduPerEv * photonEnergyEv * params.gainScale;
    return params.aduPerPhotonFallback;
  });
}

/** What one exposure needs besides the state. */
export interface Exposure {
  /** Expected background photons per pixel, multiplied by `backgroundScale`. */
  backgroundPhotons: Float32Array;
  backgroundScale: number;
  /** Expected spot photons per pixel (already shadowed), added to the background. */
  spotPhotons: Float32Array;
  /** ADU per photon per panel for this frame. */
  aduPerPhoton: Float64Array;
  /** Per-panel offsets for this frame (common mode), ADU. */
  panelOffsetAdu: Float64Array;
  /** Seed of the inline random stream. */
  seed: number;
}

/**
 * Photons and ADU over one panel's rectangle (rows of `width` pixels, `stride` apart), in one pass.
 * Every input is a parameter so the loop keeps them in registers (closures over mutable locals made V8
 * reload them per pixel); returns the generator state so the stream continues on the next panel.
 */
function exposePanelRows(
  measured: Uint8Array,
  relativeGain: Float32Array,
  pedestalAdu: Float32Array,
  backgroundPhotons: Float32Array,
  scale: number,
  spotPhotons: Float32Array,
  table: Float32Array,
  gain: number,
  offset: number,
  maxAdu: number,
  dark: number,
  photonSpreadAdu: number,
  round: boolean,
  start: number,
  rows: number,
  width: number,
  stride: number,
  seed: number,
  out: Float32Array,
): number {
  let s = seed | 0;
  const normalAbove = POISSON_NORMAL_ABOVE_MEAN;
  const expTable = expTableBuilt();
  const expSteps = EXP_STEPS_PER_UNIT;
  const reciprocals = reciprocalTable();
  for (let r = 0; r < rows; r++) {
    const rowStart = start + r * stride;
    const end = rowStart + width;
    for (let i = rowStart; i < end; i++) {
      if (measured[i] === 0) {
        out[i] = 0;
        continue;
      }
      const mu = backgroundPhotons[i] * scale + spotPhotons[i];
      let photons = 0;
      let word = 0;
      if (mu > 0) {
        s = (s + 0x6d2b79f5) | 0;
        let t = Math.imul(s ^ (s >>> 15), s | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        word = (t ^ (t >>> 14)) >>> 0;
        if (mu < normalAbove) {
          // Inversion from P(0) = e^-mu (table, linear interpolation; mu < 30 stays inside it).
          const u = word * 2.3283064365386963e-10;
          const scaled = mu * expSteps;
          const j = scaled | 0;
          let prob = expTable[j] + (scaled - j) * (expTable[j + 1] - expTable[j]);
          let cdf = prob;
          while (u >= cdf) {
            photons++;
            prob *= mu * reciprocals[photons];
            cdf += prob;
            // u within rounding of 1: the remaining tail is negligible.
            if (prob < 1e-16 && photons > mu) break;
          }
        } else {
          photons = mu + Math.sqrt(mu) * table[word >>> 16] + ROUND_MAGIC - ROUND_MAGIC;
          if (photons < 0) photons = 0;
        }
      }
      let adu = photons * gain * relativeGain[i] + pedestalAdu[i] + offset;
      if (photons > 0 && photonSpreadAdu > 0) {
        // The word's low 16 bits: independent of the normal branch's high bits, and for inversion
        // they move u by < 2^-16, far below any count's probability interval that matters.
        adu += photonSpreadAdu * Math.sqrt(photons) * table[word & 0xffff];
      }
      if (dark > 0) {
        s = (s + 0x6d2b79f5) | 0;
        let t = Math.imul(s ^ (s >>> 15), s | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        adu += dark * table[((t ^ (t >>> 14)) >>> 0) >>> 16];
      }
      if (adu > maxAdu) adu = maxAdu;
      out[i] = round ? adu + ROUND_MAGIC - ROUND_MAGIC : adu;
    }
  }
  return s;
}

/** Exposes one frame into `out` (ADU); pixels with no measurement are 0. */
export function exposeFrame(
  maps: PixelMaps,
  state: DetectorState,
  params: DetectorParams,
  exposure: Exposure,
  out: Float32Array,
): Float32Array {
  const { measured, relativeGain, pedestalAdu } = state;
  const { aduPerPhoton, panelOffsetAdu } = exposure;
  out.fill(0);
  let s = exposure.seed | 0;
  const table = normalQuantiles();
  const { fsSize } = maps;
  const panels = maps.geometry.panels;
  const ssOffsets = maps.layout.panelSsOffset;
  for (let p = 0; p < panels.length; p++) {
    const panel = panels[p];
    s = exposePanelRows(
      measured,
      relativeGain,
      pedestalAdu,
      exposure.backgroundPhotons,
      exposure.backgroundScale,
      exposure.spotPhotons,
      table,
      aduPerPhoton[p],
      panelOffsetAdu[p],
      panel.maxAdu,
      params.darkNoiseAdu,
      params.photonAduSpreadFraction * aduPerPhoton[p],
      params.roundAdu,
      (panel.minSs + ssOffsets[p]) * fsSize + panel.minFs,
      panel.maxSs - panel.minSs + 1,
      panel.maxFs - panel.minFs + 1,
      fsSize,
      s,
      out,
    );
  }
  const { hotPixels, hotPixelValuesAdu } = state;
  const { panelIndex } = maps;
  for (let k = 0; k < hotPixels.length; k++) {
    const i = hotPixels[k];
    out[i] = Math.min(hotPixelValuesAdu[k], panels[panelIndex[i]].maxAdu);
  }
  return out;
}
