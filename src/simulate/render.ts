/**
 * Image formation for the still-diffraction simulator: turns a frame's `SimSpot`s into detector ADU
 * with background and detector effects, and records the exact truth.
 *
 * Truth (the labels models learn from):
 * - A spot's footprint is the set of its pixels whose expected spot signal is at least
 *   `peakMaskFractionOfMax` (0.5: half maximum, as the reference system's labels) of the spot's largest
 *   expected pixel signal, among the pixels that exist on its panel.
 * - A spot is *detectable*, and gets a truth row and mask pixels, when its expected signal over the
 *   measured pixels of its footprint, S, reaches `truthMinSnr` standard deviations of the noise there:
 *   S / sqrt(S + B + n (darkNoise/gain)^2) >= truthMinSnr, with B the expected background photons and n
 *   the footprint's measured pixels (readout noise counted in photons). That ratio is the row's `snr`.
 * - `peakMask` is 1 on the footprint pixels of detectable spots that the detector measures (not bad,
 *   dead or hot); truth rows: the centre (slab fs/ss), the expected integrated ADU above background over
 *   the spot's measured pixels, the largest expected pixel ADU, the mask pixel count and the snr.
 *   `truthSpotIndex[row]` is the spot's index in the input list.
 */
import type { PixelMaps } from '../detector/pixel-maps.js';
import { createPeakList, type PeakList } from '../peaks/peak-list.js';
import { seededRandom } from '../util/random.js';
import {
  type BackgroundModel,
  type BackgroundParams,
  type BeamstopParams,
  backgroundMapForEnergy,
  beamstopShadowMap,
  createBackgroundModel,
} from './background.js';
import {
  createDetectorState,
  type DetectorParams,
  type DetectorState,
  detectorGoodPixels,
  exposeFrame,
  panelAduPerPhoton,
} from './detector.js';
import { normalQuantiles, seedFrom } from './poisson.js';
import { createSpotPixels, drawSpot, type ProfileParams, type SpotPixels } from './profile.js';
import type { FrameConditions, SimSpot } from './types.js';

export type BackgroundLevel = 'none' | 'water' | 'heavy';
export const backgroundLevels: readonly BackgroundLevel[] = ['none', 'water', 'heavy'];

export interface ImagingOptions extends BackgroundParams, BeamstopParams, DetectorParams, ProfileParams {
  /** 'none': no background photons; 'water': the values below; 'heavy': them x heavyBackgroundScale. */
  background: BackgroundLevel;
  heavyBackgroundScale: number;
  /** Shot-to-shot sigma of the background intensity (log-normal), e.g. 0.15. */
  backgroundJitterFraction: number;
  /** Mask threshold as a fraction of the spot's largest expected pixel signal. */
  peakMaskFractionOfMax: number;
  /** Detectability threshold on the footprint's expected signal-to-noise ratio. */
  truthMinSnr: number;
}

/**
 * Defaults tuned against the real CSPAD thermolysin frame (docs/simulator-realism.md, re-made by
 * scripts/simulator-realism.ts): background photons are per 110 um pixel at 130 mm and scale with each
 * pixel's solid angle; noise is in ADU. That frame's detector also needs gainScale = 8/25 (its file
 * says 25 ADU/photon, its one-photon peak is at 8): a property of that run, not a default.
 */
export const defaultImagingOptions: ImagingOptions = {
  background: 'water',
  heavyBackgroundScale: 4,
  backgroundJitterFraction: 0.15,
  // Background (photons per pixel)
  waterRingPhotonsPerPx: 3.3,
  waterRingDA: 3.7,
  waterRingSigmaPerA: 0.065,
  waterRingOuterSigmaPerA: 0.13,
  airScatterPhotonsPerPx: 0.55,
  airScatterHalfAngleRad: 1.5,
  parasiticPhotonsPerPx: 2,
  parasiticScaleM: 0.004,
  jetStreakPhotonsPerPx: 0.5,
  jetStreakSigmaM: 0.0004,
  jetStreakLengthM: 0.03,
  polarisationFraction: 0.99,
  // Beamstop
  beamstopRadiusM: 0.002,
  beamstopEdgeM: 0.0003,
  beamstopArmWidthM: 0.0004,
  // Detector
  aduPerPhotonFallback: 1,
  gainScale: 1,
  photonAduSpreadFraction: 0.3,
  darkNoiseAdu: 1.3,
  pedestalResidualAdu: 0.8,
  commonModeAdu: 1,
  panelGainSpreadFraction: 0.03,
  pixelGainSpreadFraction: 0.01,
  hotPixelFraction: 2e-5,
  hotPixelAdu: 2000,
  deadPixelFraction: 2e-5,
  roundAdu: true,
  // Spot profile
  profileReachSigmas: 4,
  lorentzianTailFraction: 0,
  lorentzianWidthFactor: 2,
  maxSupersample: 5,
  // Truth
  peakMaskFractionOfMax: 0.5,
  truthMinSnr: 3,
};

export interface RenderContext {
  maps: PixelMaps;
  options: ImagingOptions;
  detector: DetectorState;
  /** Beamstop transmission per pixel (fixed per run). */
  shadow: Float32Array;
  /** Per-run angles of the jet streak and the beamstop arm, radians in the lab x-y plane. */
  jetAngleRad: number;
  armAngleRad: number;
  /**
   * Expected background photons (level 'water'-scaled, shadowed) for recent beam values, most recently
   * used first, at most BACKGROUND_CACHE_MAPS; `key` is clen and energy bin (see backgroundFor).
   */
  backgroundMaps: { key: string; photons: Float32Array }[];
  /** The background's per-pixel terms for the last camera length (built on the first frame). */
  backgroundModel: BackgroundModel | undefined;
  /** All zeros: the map of background level 'none' (allocated by its first frame). */
  noBackground: Float32Array | undefined;
  /** Expected spot photons per pixel of the frame being rendered; zeroed again after each frame. */
  spotPhotons: Float32Array;
  touched: Int32Array;
}

export interface RenderedFrame {
  /** [ss * fs] detector values, ADU. */
  imageAdu: Float32Array;
  /** [ss * fs] 1 = peak pixel of a detectable spot (see the module comment). */
  peakMask: Uint8Array;
  truth: PeakList;
  truthSpotIndex: Int32Array;
}

const levelScale = (options: ImagingOptions): number =>
  options.background === 'none' ? 0 : options.background === 'heavy' ? options.heavyBackgroundScale : 1;

/** The run's render stream: the jet and beamstop-arm angles, then the detector state's draws. */
function runRandom(runSeed: number): { random: () => number; jetAngleRad: number; armAngleRad: number } {
  const random = seededRandom(runSeed ^ 0x5eed1e55);
  const jetAngleRad = random() * Math.PI;
  const armAngleRad = random() * 2 * Math.PI;
  return { random, jetAngleRad, armAngleRad };
}

/** Per-run fixed detector state; every random choice comes from `runSeed`. */
export function createRenderContext(
  maps: PixelMaps,
  options: ImagingOptions,
  runSeed: number,
): RenderContext {
  const { random, jetAngleRad, armAngleRad } = runRandom(runSeed);
  const detector = createDetectorState(maps, options, random);
  const size = maps.ssSize * maps.fsSize;
  return {
    maps,
    options,
    detector,
    shadow: beamstopShadowMap(maps, options, armAngleRad),
    jetAngleRad,
    armAngleRad,
    backgroundMaps: [],
    backgroundModel: undefined,
    noBackground: undefined,
    spotPhotons: new Float32Array(size),
    touched: new Int32Array(4096),
  };
}

/**
 * The pixels a run's detector measures (1 = good: in a panel, not masked by the geometry, neither dead
 * nor hot), the same as every render context of the run draws from `runSeed`, without building one.
 */
export function runGoodPixels(maps: PixelMaps, options: ImagingOptions, runSeed: number): Uint8Array {
  return detectorGoodPixels(maps, options, runRandom(runSeed).random);
}

/** Background maps kept per render context (16 MB each on a 4-Mpixel detector). */
const BACKGROUND_CACHE_MAPS = 3;

/**
 * The background map for this frame's beam, and its key. Recomputed only when the camera length changes
 * or the photon energy moves to another ~0.5 % bin (SASE jitter leaves the ring where it is), so
 * per-frame jitter does not cost a pass per pixel. The bins are absolute (a frame's map depends on its
 * own energy, not on which frames a worker rendered before), and the last few maps are kept: a run's
 * jitter visits two or three bins (0.1 % jitter at a bin edge). A new bin costs one light pass over the
 * background model (~20 ms on 4 Mpixel); a new camera length rebuilds the model (~250 ms).
 */
function backgroundFor(
  ctx: RenderContext,
  conditions: FrameConditions,
): { key: string; photons: Float32Array } {
  const energyBin = Math.round(Math.log(conditions.photonEnergyEv) / 0.005);
  const key = `${conditions.clenM}:${energyBin}`;
  const maps = ctx.backgroundMaps;
  const found = maps.findIndex((map) => map.key === key);
  if (found >= 0) {
    const [map] = maps.splice(found, 1);
    maps.unshift(map);
    return map;
  }
  // Reuse the least recently used buffer once the cache is full.
  const photons =
    maps.length >= BACKGROUND_CACHE_MAPS
      ? (maps.pop() as { photons: Float32Array }).photons
      : new Float32Array(ctx.maps.ssSize * ctx.maps.fsSize);
  if (ctx.backgroundModel?.clenM !== conditions.clenM)
    ctx.backgroundModel = createBackgroundModel(
      ctx.maps,
      ctx.options,
      conditions.clenM,
      ctx.jetAngleRad,
      ctx.shadow,
    );
  backgroundMapForEnergy(ctx.backgroundModel, ctx.options, Math.exp(energyBin * 0.005), photons);
  const map = { key, photons };
  maps.unshift(map);
  return map;
}

/**
 * Renders one frame. `random` drives every per-frame choice (jitter, noise), so a seed fixes the frame.
 * Spots are drawn as given (a miss passes none; `conditions.hit` is not consulted). `out` lends buffers
 * to reuse instead of allocating the image and mask. The context holds per-frame scratch: render one
 * frame at a time per context (one context per worker).
 */
export function renderFrame(
  ctx: RenderContext,
  spots: readonly SimSpot[],
  conditions: FrameConditions,
  random: () => number,
  out?: { imageAdu?: Float32Array; peakMask?: Uint8Array },
): RenderedFrame {
  const { maps, options, detector, shadow, spotPhotons } = ctx;
  const size = maps.ssSize * maps.fsSize;
  const table = normalQuantiles();
  const gaussian = () => table[(random() * 65536) | 0];

  const scaleLevel = levelScale(options);
  if (scaleLevel === 0) ctx.noBackground ??= new Float32Array(size);
  const backgroundMap =
    scaleLevel > 0
      ? backgroundFor(ctx, conditions)
      : { key: 'none', photons: ctx.noBackground as Float32Array };
  const background = backgroundMap.photons;
  const jitter = options.backgroundJitterFraction;
  const backgroundScale = scaleLevel * Math.exp(jitter * gaussian() - 0.5 * jitter * jitter);
  const aduPerPhoton = panelAduPerPhoton(maps, options, conditions.photonEnergyEv);
  const panelOffsetAdu = Float64Array.from(aduPerPhoton, () => options.commonModeAdu * gaussian());
  const seed = seedFrom(random);

  // Spots: draw each, add it to the frame, and decide its truth from expected values.
  const truth = createPeakList(spots.length);
  const truthSpotIndex = new Int32Array(spots.length);
  const peakMask = out?.peakMask ?? new Uint8Array(size);
  if (out?.peakMask) peakMask.fill(0);
  const pixels: SpotPixels = createSpotPixels();
  const { measured, hot, relativeGain } = detector;
  const darkPhotonsSq = (p: number) => (options.darkNoiseAdu / aduPerPhoton[p]) ** 2;
  let touchedCount = 0;
  for (let k = 0; k < spots.length; k++) {
    const spot = spots[k];
    if (!(spot.photons > 0) || spot.panel < 0 || spot.panel >= maps.geometry.panels.length) continue;
    const n = drawSpot(maps, spot, options, pixels);
    if (n === 0) continue;
    if (ctx.touched.length < touchedCount + n) {
      const grown = new Int32Array(Math.max(ctx.touched.length * 2, touchedCount + n));
      grown.set(ctx.touched.subarray(0, touchedCount));
      ctx.touched = grown;
    }
    let maxExpected = 0;
    for (let j = 0; j < n; j++) {
      const i = pixels.indices[j];
      const value = pixels.photons[j] * shadow[i];
      pixels.photons[j] = value;
      spotPhotons[i] += value;
      ctx.touched[touchedCount++] = i;
      if (value > maxExpected) maxExpected = value;
    }
    const threshold = options.peakMaskFractionOfMax * maxExpected;
    const gain = aduPerPhoton[spot.panel];
    let signal = 0;
    let backgroundSum = 0;
    let footprint = 0;
    let totalAdu = 0;
    let maxAdu = 0;
    for (let j = 0; j < n; j++) {
      const i = pixels.indices[j];
      if (!measured[i] || hot[i]) continue;
      const value = pixels.photons[j];
      const adu = value * gain * relativeGain[i];
      totalAdu += adu;
      if (adu > maxAdu) maxAdu = adu;
      if (value >= threshold && value > 0) {
        signal += value;
        backgroundSum += background[i] * backgroundScale;
        footprint++;
      }
    }
    if (footprint === 0) continue;
    const snr = signal / Math.sqrt(signal + backgroundSum + footprint * darkPhotonsSq(spot.panel));
    if (!(snr >= options.truthMinSnr)) continue;
    for (let j = 0; j < n; j++) {
      const i = pixels.indices[j];
      if (measured[i] && !hot[i] && pixels.photons[j] >= threshold) peakMask[i] = 1;
    }
    const row = truth.count++;
    truth.fs[row] = spot.fs;
    truth.ss[row] = spot.ss;
    truth.totalIntensity[row] = totalAdu;
    truth.maxValue[row] = maxAdu;
    truth.nPixels[row] = footprint;
    truth.snr[row] = snr;
    truthSpotIndex[row] = k;
  }

  const imageAdu = out?.imageAdu ?? new Float32Array(size);
  exposeFrame(
    maps,
    detector,
    options,
    {
      backgroundPhotons: background,
      backgroundKey: backgroundMap.key,
      backgroundScale,
      spotPhotons,
      spotPixels: ctx.touched,
      spotPixelCount: touchedCount,
      aduPerPhoton,
      panelOffsetAdu,
      seed,
    },
    imageAdu,
  );
  for (let j = 0; j < touchedCount; j++) spotPhotons[ctx.touched[j]] = 0;
  return { imageAdu, peakMask, truth, truthSpotIndex: truthSpotIndex.slice(0, truth.count) };
}
