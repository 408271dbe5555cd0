/**
 * The detector's response: per-run fixed state (bad pixels, gain map, pedestal residuals) and the
 * per-frame exposure that turns expected photons into ADU. One pass over the slab for the background
 * (8 bytes read per pixel) and a sparse pass over the spot pixels, typed arrays only; random numbers come
 * from an inline Mulberry32 stream seeded by the caller plus the tables in poisson.ts.
 *
 * Per pixel: photons ~ Poisson(mu) (table inversion below POISSON_NORMAL_ABOVE_MEAN, rounded normal above);
 * ADU = photons x aduPerPhoton(panel) x relativeGain + pedestal residual + panel common mode + dark
 * noise, clipped to the panel's max_adu, optionally rounded to whole ADU; 0 where the detector gives
 * nothing (outside panels, geometry bad regions, dead pixels); a fixed high value at hot pixels.
 */
import { geometryMask } from '../detector/mask.js';
import type { PixelMaps } from '../detector/pixel-maps.js';
import {
  NORMAL_TABLE_BITS,
  normalQuantiles,
  POISSON_GRID_STEPS_PER_PHOTON,
  POISSON_GUIDE_BITS,
  POISSON_NORMAL_ABOVE_MEAN,
  poissonFromTables,
  poissonTables,
  smallNormalQuantiles,
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
   * quantised values) by `createDetectorState`; rebuild it with `packGainPedestal` after changing them.
   */
  gainPedestal: Int32Array;
}

/** Relative gain step of the packed word (range [0, 8)). */
const GAIN_UNIT = 2 ** -13;
/** Pedestal step of the packed word, ADU (range +-512 ADU). */
const PEDESTAL_UNIT_ADU = 2 ** -6;

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

// Rounding in the exposure loops: x + 1.5 x 2^52 - 1.5 x 2^52 rounds x to the nearest integer (ties to
// even) for |x| < 2^51 with two additions; Math.round on noisy values compiles to branches that
// mispredict, and cost 4x the whole rest of the per-pixel work in V8 (57 vs 13 ms per 4-Mpixel pass).
// The constant is written as a literal (or a function-local const) where it is used: a module-level
// const is reloaded and hole-checked per pixel.

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
    gainPedestal: packGainPedestal(measured, relativeGain, pedestalAdu),
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
  /** Seed of the inline random stream. */
  seed: number;
}

/**
 * Background photons and ADU over one panel's rectangle (rows of `width` pixels, `stride` apart), in
 * one pass; spot pixels are redrawn afterwards by `exposeSpotPixel`. Every input is a parameter so the
 * loop keeps them in registers (closures over mutable locals made V8 reload them per pixel); returns
 * the generator state so the stream continues on the next panel.
 *
 * Per measured pixel one Mulberry32 word B (its low 16 bits round the mean stochastically onto the
 * Poisson table grid, its top 16 bits pick the dark-noise quantile) and, where the mean is not 0, a word
 * A (the Poisson count; its low 16 bits the photon-spread quantile). No data-dependent branch but the
 * rare extra comparisons of the table lookup: photon spread and dark noise are added unconditionally
 * (x 0 when off; sqrt(0) = 0 for no photons). Unpredictable branches and memory traffic, not
 * arithmetic, were what a pixel cost: the loop reads 8 bytes per pixel and writes 4.
 */
function exposePanelRows(
  gainPedestal: Int32Array,
  backgroundPhotons: Float32Array,
  scale: number,
  table: Float32Array,
  small: Float32Array,
  guide: Uint8Array,
  cdfOffset: Int32Array,
  cdf: Float64Array,
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
  const steps = POISSON_GRID_STEPS_PER_PHOTON;
  const guideBits = POISSON_GUIDE_BITS;
  const guideShift = 32 - POISSON_GUIDE_BITS;
  const gainUnit = gain * GAIN_UNIT;
  const pedestalUnit = PEDESTAL_UNIT_ADU;
  // A literal, not the module constant: V8 reloads (and hole-checks) module bindings inside the loop.
  const roundMagic = 6755399441055744;
  for (let r = 0; r < rows; r++) {
    const rowStart = start + r * stride;
    const end = rowStart + width;
    for (let i = rowStart; i < end; i++) {
      const packed = gainPedestal[i];
      if (packed === 0) {
        out[i] = 0;
        continue;
      }
      s = (s + 0x6d2b79f5) | 0;
      let t = Math.imul(s ^ (s >>> 15), s | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      const b = t ^ (t >>> 14);
      const mu = backgroundPhotons[i] * scale;
      let photons = 0;
      let a = 0;
      if (mu > 0) {
        s = (s + 0x6d2b79f5) | 0;
        t = Math.imul(s ^ (s >>> 15), s | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        a = (t ^ (t >>> 14)) >>> 0;
        if (mu < normalAbove) {
          // j = floor(mu x steps + v), v uniform in [0, 1) from B's low bits.
          const j = (mu * steps + (b & 0xffff) * 1.52587890625e-5) | 0;
          const first = cdfOffset[j];
          let k = guide[(j << guideBits) | (a >>> guideShift)];
          while (a >= cdf[first + k]) k++;
          photons = k;
        } else {
          photons = mu + Math.sqrt(mu) * table[a >>> 16] + roundMagic - roundMagic;
          if (photons < 0) photons = 0;
        }
      }
      // Quantiles from the small table (the top 12 of the 16 bits); its two edge entries (1 in 2048:
      // ((j + 1) & 0xfff) < 2 for j = 0 and 4095) go to the full table with all 16.
      const spreadJ = (a >>> 4) & 0xfff;
      const spreadZ = ((spreadJ + 1) & 0xfff) < 2 ? table[a & 0xffff] : small[spreadJ];
      const darkJ = b >>> 20;
      const darkZ = ((darkJ + 1) & 0xfff) < 2 ? table[b >>> 16] : small[darkJ];
      let adu =
        photons * gainUnit * (packed >>> 16) +
        ((packed << 16) >> 16) * pedestalUnit +
        offset +
        photonSpreadAdu * Math.sqrt(photons) * spreadZ +
        dark * darkZ;
      if (adu > maxAdu) adu = maxAdu;
      out[i] = round ? adu + roundMagic - roundMagic : adu;
    }
  }
  return s;
}

/** Per-frame values of one panel that the sparse spot pass needs. */
interface PanelFrame {
  gain: number;
  offset: number;
  maxAdu: number;
  photonSpreadAdu: number;
}

/**
 * Draws pixel `i` again from scratch with mean `mu` (background plus spot), as the full pass does, with
 * three fresh words; returns the generator state. Set-up per call is small: a frame has thousands of
 * spot pixels, not millions.
 */
function exposeSpotPixel(
  i: number,
  mu: number,
  packed: number,
  panel: PanelFrame,
  dark: number,
  round: boolean,
  table: Float32Array,
  seed: number,
  out: Float32Array,
): number {
  let s = seed | 0;
  s = (s + 0x6d2b79f5) | 0;
  let t = Math.imul(s ^ (s >>> 15), s | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  const a = (t ^ (t >>> 14)) >>> 0;
  s = (s + 0x6d2b79f5) | 0;
  t = Math.imul(s ^ (s >>> 15), s | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  const b = t ^ (t >>> 14);
  s = (s + 0x6d2b79f5) | 0;
  t = Math.imul(s ^ (s >>> 15), s | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  const v = ((t ^ (t >>> 14)) >>> 0) * 2.3283064365386963e-10;
  let photons = 0;
  if (mu >= POISSON_NORMAL_ABOVE_MEAN) {
    photons = mu + Math.sqrt(mu) * table[a >>> 16] + 6755399441055744 - 6755399441055744;
    if (photons < 0) photons = 0;
  } else if (mu > 0) photons = poissonFromTables(mu, a, v);
  let adu =
    photons * panel.gain * GAIN_UNIT * (packed >>> 16) +
    ((packed << 16) >> 16) * PEDESTAL_UNIT_ADU +
    panel.offset +
    panel.photonSpreadAdu * Math.sqrt(photons) * table[a & 0xffff] +
    dark * table[b >>> 16];
  if (adu > panel.maxAdu) adu = panel.maxAdu;
  out[i] = round ? adu + 6755399441055744 - 6755399441055744 : adu;
  return s;
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
  const { gainPedestal } = state;
  const { aduPerPhoton, panelOffsetAdu, backgroundPhotons, backgroundScale, spotPhotons } = exposure;
  if (!panelsCoverSlab(maps)) out.fill(0);
  let s = exposure.seed | 0;
  const table = normalQuantiles();
  const small = smallNormalQuantiles();
  const { guide, offset: cdfOffset, cdf } = poissonTables();
  const { fsSize } = maps;
  const panels = maps.geometry.panels;
  const ssOffsets = maps.layout.panelSsOffset;
  const panelFrames: PanelFrame[] = panels.map((panel, p) => ({
    gain: aduPerPhoton[p],
    offset: panelOffsetAdu[p],
    maxAdu: panel.maxAdu,
    photonSpreadAdu: params.photonAduSpreadFraction * aduPerPhoton[p],
  }));
  for (let p = 0; p < panels.length; p++) {
    const panel = panels[p];
    const frame = panelFrames[p];
    s = exposePanelRows(
      gainPedestal,
      backgroundPhotons,
      backgroundScale,
      table,
      small,
      guide,
      cdfOffset,
      cdf,
      frame.gain,
      frame.offset,
      frame.maxAdu,
      params.darkNoiseAdu,
      frame.photonSpreadAdu,
      params.roundAdu,
      (panel.minSs + ssOffsets[p]) * fsSize + panel.minFs,
      panel.maxSs - panel.minSs + 1,
      panel.maxFs - panel.minFs + 1,
      fsSize,
      s,
      out,
    );
  }
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
    s = exposeSpotPixel(
      i,
      mu,
      packed,
      panelFrames[panelIndex[i]],
      params.darkNoiseAdu,
      params.roundAdu,
      table,
      s,
      out,
    );
  }
  const { hotPixels, hotPixelValuesAdu } = state;
  for (let k = 0; k < hotPixels.length; k++) {
    const i = hotPixels[k];
    out[i] = Math.min(hotPixelValuesAdu[k], panels[panelIndex[i]].maxAdu);
  }
  return out;
}
