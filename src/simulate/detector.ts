/**
 * The detector's response: per-run fixed state (bad pixels, gain map, pedestal residuals) and the
 * per-frame exposure that turns expected photons into ADU. The full pass over the slab (background
 * photons) runs in WebAssembly SIMD (expose-kernel.ts); the spot pixels are then drawn again in a sparse
 * JavaScript pass with background plus spot. Random numbers come from a Mulberry32 counter seeded by the
 * caller plus the tables in poisson.ts.
 *
 * Per pixel: photons k ~ Poisson(mu) (table inversion below POISSON_NORMAL_ABOVE_MEAN, rounded normal
 * above); ADU = k x aduPerPhoton(panel) x relativeGain + pedestal residual + panel common mode + a
 * Gaussian of variance dark^2 + (photon spread)^2 k (dark noise and the spread of each photon's ADU,
 * which add up to one Gaussian), clipped to the panel's max_adu, optionally rounded to whole ADU; 0
 * where the detector gives nothing (outside panels, geometry bad regions, dead pixels); a fixed high
 * value at hot pixels.
 */
import { geometryMask } from '../detector/mask.js';
import type { PixelMaps } from '../detector/pixel-maps.js';
import { MULBERRY32_STEP, mulberry32Hash } from '../util/random.js';
import {
  createExposureKernel,
  type ExposureKernel,
  GAIN_UNIT,
  type PanelExposure,
  PEDESTAL_UNIT_ADU,
} from './expose-kernel.js';
import {
  NORMAL_TABLE_BITS,
  normalQuantiles,
  POISSON_NORMAL_ABOVE_MEAN,
  poissonFromTables,
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
  /**
   * What the exposure loop reads per pixel, packed into one word to halve its memory traffic: relative
   * gain in units of GAIN_UNIT in the high 16 bits, the pedestal residual in units of PEDESTAL_UNIT_ADU
   * (signed) in the low 16; 0 where not measured. Derived from the arrays above (which hold the same
   * quantised values) by `createDetectorState`; rebuild it with `packGainPedestal(..., gainPedestal)`
   * after changing them. It lives in the kernel's memory: GAIN_UNIT steps (range [0, 8)) and
   * PEDESTAL_UNIT_ADU steps (range +-512 ADU).
   */
  gainPedestal: Int32Array;
  /** The WebAssembly pass that exposes the slab (owns gainPedestal, a background map and the image). */
  kernel: ExposureKernel;
}

/** Packs measured, relativeGain and pedestalAdu into `gainPedestal` (see DetectorState). */
export function packGainPedestal(
  measured: Uint8Array,
  relativeGain: Float32Array,
  pedestalAdu: Float32Array,
  out: Int32Array = new Int32Array(measured.length),
): Int32Array {
  for (let i = 0; i < measured.length; i++) {
    if (!measured[i]) {
      out[i] = 0;
      continue;
    }
    const gain = Math.min(65535, Math.max(1, Math.round(relativeGain[i] / GAIN_UNIT)));
    const pedestal = Math.min(32767, Math.max(-32768, Math.round(pedestalAdu[i] / PEDESTAL_UNIT_ADU)));
    out[i] = (gain << 16) | (pedestal & 0xffff);
  }
  return out;
}

/** Gaussian draw from a `() => number` source (set-up code only; the frame loop uses the table). */
function gaussian(random: () => number): number {
  const table = normalQuantiles();
  return table[Math.floor(random() * (1 << NORMAL_TABLE_BITS))];
}

/** The random part of the run's detector state, drawn in one fixed order (see `drawDetectorPixels`). */
interface DetectorDraws {
  /** As DetectorState.measured (dead pixels already cleared). */
  measured: Uint8Array;
  dead: number[];
  hotList: number[];
}

/**
 * Draws the per-run pixel state from `random`: panel gains, per-pixel gain and pedestal (into `gains`),
 * then dead and hot pixels. It consumes the same draws with or without `gains` (the bad-pixel mask of a
 * run needs only the dead and hot pixels, and must find the same ones as the frames' detector).
 */
function drawDetectorPixels(
  maps: PixelMaps,
  params: DetectorParams,
  random: () => number,
  gains?: { relativeGain: Float32Array; pedestalAdu: Float32Array },
): DetectorDraws {
  const size = maps.ssSize * maps.fsSize;
  const measured = geometryMask(maps);
  const panelCount = maps.geometry.panels.length;
  const panelGain = new Float64Array(panelCount);
  for (let p = 0; p < panelCount; p++)
    panelGain[p] = Math.max(0.1, 1 + params.panelGainSpreadFraction * gaussian(random));
  const table = normalQuantiles();
  const { panelIndex } = maps;
  for (let i = 0; i < size; i++) {
    const p = panelIndex[i];
    if (p < 0) continue;
    const gainDraw = random();
    const pedestalDraw = random();
    if (gains === undefined) continue;
    gains.relativeGain[i] =
      panelGain[p] * Math.max(0.1, 1 + params.pixelGainSpreadFraction * table[(gainDraw * 65536) | 0]);
    gains.pedestalAdu[i] = params.pedestalResidualAdu * table[(pedestalDraw * 65536) | 0];
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
  return { measured, dead, hotList };
}

/**
 * The run's good pixels (1 = good) as `createDetectorState` would draw them from the same `random`: in
 * a panel, not masked by the geometry, neither dead nor hot. Cheap (no exposure kernel, no gain maps),
 * for the bad-pixel mask a run writes beside its frames.
 */
export function detectorGoodPixels(
  maps: PixelMaps,
  params: DetectorParams,
  random: () => number,
): Uint8Array {
  const { measured, hotList } = drawDetectorPixels(maps, params, random);
  for (const i of hotList) measured[i] = 0;
  return measured;
}

/** Draws the run's fixed detector state. */
export function createDetectorState(
  maps: PixelMaps,
  params: DetectorParams,
  random: () => number,
): DetectorState {
  const size = maps.ssSize * maps.fsSize;
  const relativeGain = new Float32Array(size);
  const pedestalAdu = new Float32Array(size);
  const { measured, dead, hotList } = drawDetectorPixels(maps, params, random, { relativeGain, pedestalAdu });
  const kernel = createExposureKernel(size);
  // Keep the values the packed word can hold, so truth (from relativeGain) and image agree exactly.
  for (let i = 0; i < size; i++) {
    relativeGain[i] = Math.round(relativeGain[i] / GAIN_UNIT) * GAIN_UNIT;
    pedestalAdu[i] = Math.round(pedestalAdu[i] / PEDESTAL_UNIT_ADU) * PEDESTAL_UNIT_ADU;
  }
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
    gainPedestal: packGainPedestal(measured, relativeGain, pedestalAdu, kernel.gainPedestal),
    kernel,
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
  /**
   * Identifies the content of `backgroundPhotons` (same key, same values): the kernel keeps the last map
   * it copied and skips the 16 MB copy when the key repeats. Absent: the map is copied every frame.
   */
  backgroundKey?: string;
  backgroundScale: number;
  /** Expected spot photons per pixel (already shadowed), added to the background. */
  spotPhotons: Float32Array;
  /**
   * Where `spotPhotons` is not 0 (repeats allowed), first `spotPixelCount` entries: those pixels are
   * drawn in a second, sparse pass, so the full pass never reads `spotPhotons`. Absent: found by a scan.
   */
  spotPixels?: Int32Array;
  spotPixelCount?: number;
  /** ADU per photon per panel for this frame. */
  aduPerPhoton: Float64Array;
  /** Per-panel offsets for this frame (common mode), ADU. */
  panelOffsetAdu: Float64Array;
  /** Seed of the frame's random stream. */
  seed: number;
}

/**
 * Draws pixel `i` again from scratch with mean `mu` (background plus spot), with the noise model of the
 * full pass and three fresh words; returns the generator counter. Set-up per call is small: a frame has
 * thousands of spot pixels, not millions. Rounding: x + 1.5 x 2^52 - 1.5 x 2^52 is x rounded to the
 * nearest integer (ties to even, as the kernel's f32x4.nearest) for |x| < 2^51, without Math.round's
 * branches.
 */
function exposeSpotPixel(
  i: number,
  mu: number,
  packed: number,
  panel: PanelExposure,
  table: Float32Array,
  seed: number,
  out: Float32Array,
): number {
  const s = seed | 0;
  const a = mulberry32Hash((s + MULBERRY32_STEP) | 0);
  const b = mulberry32Hash((s + 2 * MULBERRY32_STEP) | 0);
  const v = mulberry32Hash((s + 3 * MULBERRY32_STEP) | 0) * 2.3283064365386963e-10;
  let photons = 0;
  if (mu >= POISSON_NORMAL_ABOVE_MEAN) {
    photons = mu + Math.sqrt(mu) * table[a >>> 16] + 6755399441055744 - 6755399441055744;
    if (photons < 0) photons = 0;
  } else if (mu > 0) photons = poissonFromTables(mu, a, v);
  const spread = panel.photonSpreadAdu;
  let adu =
    photons * panel.aduPerPhoton * GAIN_UNIT * (packed >>> 16) +
    ((packed << 16) >> 16) * PEDESTAL_UNIT_ADU +
    panel.offsetAdu +
    Math.sqrt(panel.darkNoiseAdu * panel.darkNoiseAdu + spread * spread * photons) * table[b >>> 16];
  if (adu > panel.maxAdu) adu = panel.maxAdu;
  out[i] = panel.roundAdu ? adu + 6755399441055744 - 6755399441055744 : adu;
  return (s + 3 * MULBERRY32_STEP) | 0;
}

/** Whether the panels' rectangles cover every slab pixel (then the full pass writes all of `out`). */
const slabCovered = new WeakMap<PixelMaps, boolean>();
function panelsCoverSlab(maps: PixelMaps): boolean {
  let covered = slabCovered.get(maps);
  if (covered === undefined) {
    const seen = new Uint8Array(maps.ssSize * maps.fsSize);
    const { panels } = maps.geometry;
    for (let p = 0; p < panels.length; p++) {
      const panel = panels[p];
      const ss0 = panel.minSs + maps.layout.panelSsOffset[p];
      for (let ss = ss0; ss <= ss0 + panel.maxSs - panel.minSs; ss++)
        seen.fill(1, ss * maps.fsSize + panel.minFs, ss * maps.fsSize + panel.maxFs + 1);
    }
    covered = seen.every((x) => x === 1);
    slabCovered.set(maps, covered);
  }
  return covered;
}

/**
 * Exposes one frame into `out` (ADU); pixels with no measurement are 0. The full pass draws the
 * background; the pixels with spot photons are then drawn again with background plus spot (a fresh,
 * independent draw of the pixel, so overlapping spots listed twice are still counted once).
 */
export function exposeFrame(
  maps: PixelMaps,
  state: DetectorState,
  params: DetectorParams,
  exposure: Exposure,
  out: Float32Array,
): Float32Array {
  const { gainPedestal, kernel } = state;
  const { aduPerPhoton, panelOffsetAdu, backgroundPhotons, backgroundScale, spotPhotons } = exposure;
  if (
    backgroundPhotons !== kernel.background &&
    (exposure.backgroundKey === undefined || exposure.backgroundKey !== kernel.backgroundKey)
  ) {
    kernel.background.set(backgroundPhotons);
    kernel.backgroundKey = exposure.backgroundKey;
  }
  if (!panelsCoverSlab(maps)) kernel.image.fill(0);
  let s = exposure.seed | 0;
  const table = normalQuantiles();
  const { fsSize } = maps;
  const panels = maps.geometry.panels;
  const ssOffsets = maps.layout.panelSsOffset;
  const panelFrames: PanelExposure[] = panels.map((panel, p) => ({
    backgroundScale,
    aduPerPhoton: aduPerPhoton[p],
    offsetAdu: panelOffsetAdu[p],
    maxAdu: panel.maxAdu,
    darkNoiseAdu: params.darkNoiseAdu,
    photonSpreadAdu: params.photonAduSpreadFraction * aduPerPhoton[p],
    roundAdu: params.roundAdu,
  }));
  for (let p = 0; p < panels.length; p++) {
    const panel = panels[p];
    s = kernel.exposeRows(
      (panel.minSs + ssOffsets[p]) * fsSize + panel.minFs,
      panel.maxSs - panel.minSs + 1,
      panel.maxFs - panel.minFs + 1,
      fsSize,
      s,
      panelFrames[p],
    );
  }
  out.set(kernel.image);
  let spotPixels = exposure.spotPixels;
  let spotPixelCount = exposure.spotPixelCount ?? spotPixels?.length ?? 0;
  if (spotPixels === undefined) {
    const found: number[] = [];
    for (let i = 0; i < spotPhotons.length; i++) if (spotPhotons[i] !== 0) found.push(i);
    spotPixels = Int32Array.from(found);
    spotPixelCount = found.length;
  }
  const { panelIndex } = maps;
  for (let k = 0; k < spotPixelCount; k++) {
    const i = spotPixels[k];
    const packed = gainPedestal[i];
    if (packed === 0 || spotPhotons[i] === 0) continue;
    const mu = backgroundPhotons[i] * backgroundScale + spotPhotons[i];
    s = exposeSpotPixel(i, mu, packed, panelFrames[panelIndex[i]], table, s, out);
  }
  const { hotPixels, hotPixelValuesAdu } = state;
  for (let k = 0; k < hotPixels.length; k++) {
    const i = hotPixels[k];
    out[i] = Math.min(hotPixelValuesAdu[k], panels[panelIndex[i]].maxAdu);
  }
  return out;
}
