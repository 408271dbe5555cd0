/**
 * Expected background photons per pixel: what a liquid-jet still shot puts on the detector besides
 * Bragg spots. All terms are given in photons per *reference pixel*, a 110 um CSPAD pixel at 130 mm
 * (REFERENCE_PIXEL_SOLID_ANGLE_SR, where the defaults were tuned against a real frame), and scaled to
 * each pixel's own solid angle, so a smaller pixel or a longer camera length sees fewer photons per pixel;
 * values are for the 'water' level, before the frame's intensity jitter (render.ts applies both).
 *
 * - water/solvent ring: a two-sided Gaussian in 1/d centred at `waterRingDA` (about 3.0-3.7 A is the ring's
 *   extent at room temperature), from the resolution map of the frame's photon energy and camera length;
 * - air (and diffuse solvent) scatter: strongest at low angle, falling as a Lorentzian in 2theta;
 * - parasitic scatter near the beam (slits, windows): an exponential in the radius on the detector;
 * - the liquid-jet streak: a line through the beam centre at a per-run angle, Gaussian across it and
 *   fading along it;
 * - solid angle (cos^3 2theta for a flat pixel) and polarisation (horizontal, along lab x) factors;
 * - the beamstop shadow (`beamstopShadowMap`): a disc with a soft edge plus its holder arm, a factor in
 *   [0, 1] that multiplies everything, spots included.
 */
import { type PixelMaps, panelClensM } from '../detector/pixel-maps.js';
import { HC_EV_M } from '../io/geom.js';

/** Solid angle of the reference pixel the intensities are given for: 110 um at 130 mm, steradian. */
export const REFERENCE_PIXEL_SOLID_ANGLE_SR = (110e-6 / 0.13) ** 2;

export interface BackgroundParams {
  /** Peak of the water ring, photons per pixel. */
  waterRingPhotonsPerPx: number;
  /** Ring centre as a resolution, angstrom. */
  waterRingDA: number;
  /**
   * Gaussian sigmas of the ring in 1/d (1/angstrom) on its low- and high-resolution sides: solvent rings
   * fall off more slowly towards high angle (the real CSPAD frame's ring is about 1.5x wider outside).
   */
  waterRingSigmaPerA: number;
  waterRingOuterSigmaPerA: number;
  /** Air and diffuse scatter at 2theta = 0, photons per pixel, and the 2theta where it halves. */
  airScatterPhotonsPerPx: number;
  airScatterHalfAngleRad: number;
  /** Parasitic scatter at the beam centre, photons per pixel, and its 1/e radius on the detector. */
  parasiticPhotonsPerPx: number;
  parasiticScaleM: number;
  /** Jet streak at the beam centre, photons per pixel; its Gaussian half-width and 1/e length. */
  jetStreakPhotonsPerPx: number;
  jetStreakSigmaM: number;
  jetStreakLengthM: number;
  /** Fraction of the beam polarised horizontally (lab x); 0 turns the polarisation factor off. */
  polarisationFraction: number;
}

export interface BeamstopParams {
  /** Radius of the beamstop's shadow, metres on the detector (0: none), and its soft edge width. */
  beamstopRadiusM: number;
  beamstopEdgeM: number;
  /** Width of the holder arm's shadow, metres (0: none). */
  beamstopArmWidthM: number;
}

/** Frame beam values the background depends on. */
export interface BackgroundBeam {
  photonEnergyEv: number;
  clenM: number;
}

/**
 * The background split by what a frame's photon energy changes. Per pixel: the photons that do not
 * depend on the energy (air, parasitic, jet: they depend on angles and distances only), the factor that
 * multiplies the water ring (solid angle, obliquity, polarisation), and sin(theta), through which the
 * energy moves the ring (1/d = 2 sin(theta) / lambda). A map for an energy is then
 * `energyFree + ringFactor x ring(sinTheta)`: `backgroundMapForEnergy` tabulates the ring over sin(theta)
 * for the energy, so a new energy costs one light pass, not sqrt/atan2/exp per pixel (~250 ms on 4
 * Mpixel). Built for one camera length; `transmission` (the beamstop shadow) multiplies both terms.
 */
export interface BackgroundModel {
  clenM: number;
  energyFreePhotons: Float32Array;
  ringFactor: Float32Array;
  sinTheta: Float32Array;
  maxSinTheta: number;
}

export function createBackgroundModel(
  maps: PixelMaps,
  params: BackgroundParams,
  clenM: number,
  jetAngleRad: number,
  transmission?: Float32Array,
): BackgroundModel {
  const size = maps.ssSize * maps.fsSize;
  const energyFreePhotons = new Float32Array(size);
  const ringFactor = new Float32Array(size);
  const sinTheta = new Float32Array(size);
  const clens = panelClensM(maps.geometry, clenM);
  // Solid angle of each panel's pixel on the axis at its distance, relative to the reference pixel;
  // the cos^3 factor below adds the obliquity.
  const panelSolidAngle = Float64Array.from(maps.geometry.panels, (panel, p) => {
    const z = clens[p] + panel.coffsetM;
    return 1 / (panel.resPxPerM * panel.resPxPerM * z * z * REFERENCE_PIXEL_SOLID_ANGLE_SR);
  });
  const airScale = 1 / params.airScatterHalfAngleRad;
  const jetCos = Math.cos(jetAngleRad);
  const jetSin = Math.sin(jetAngleRad);
  const jetScale = -0.5 / (params.jetStreakSigmaM * params.jetStreakSigmaM);
  const { xM, yM, zOffsetM, panelIndex } = maps;
  const pol = params.polarisationFraction;
  let maxSinTheta = 0;
  for (let i = 0; i < size; i++) {
    const p = panelIndex[i];
    if (p < 0) continue;
    const x = xM[i];
    const y = yM[i];
    const z = clens[p] + zOffsetM[i];
    const rM = Math.sqrt(x * x + y * y);
    const distance = Math.sqrt(rM * rM + z * z);
    const cos2t = z / distance;
    const sin2t = rM / distance;
    const twoTheta = Math.atan2(rM, z);
    const a = twoTheta * airScale;
    let photons =
      params.airScatterPhotonsPerPx / (1 + a * a) +
      params.parasiticPhotonsPerPx * Math.exp(-rM / params.parasiticScaleM);
    if (params.jetStreakPhotonsPerPx > 0) {
      const across = x * jetSin - y * jetCos;
      photons +=
        params.jetStreakPhotonsPerPx * Math.exp(jetScale * across * across - rM / params.jetStreakLengthM);
    }
    // Solid angle of a flat pixel relative to one on the axis; polarisation for a horizontal beam.
    const cosAz = rM > 0 ? x / rM : 0;
    const polarisation =
      1 - pol * sin2t * sin2t * cosAz * cosAz - (1 - pol) * sin2t * sin2t * (1 - cosAz * cosAz);
    const factor = panelSolidAngle[p] * cos2t * cos2t * cos2t * polarisation * (transmission?.[i] ?? 1);
    energyFreePhotons[i] = photons * factor;
    ringFactor[i] = factor;
    // sin(theta) = sqrt((1 - cos 2theta) / 2).
    sinTheta[i] = Math.sqrt(0.5 * (1 - cos2t));
    if (sinTheta[i] > maxSinTheta) maxSinTheta = sinTheta[i];
  }
  return { clenM, energyFreePhotons, ringFactor, sinTheta, maxSinTheta };
}

/** The water ring in photons per reference pixel at resolution 1/d (two-sided Gaussian). */
function waterRing(params: BackgroundParams, invDPerA: number): number {
  const dRing = invDPerA - 1 / params.waterRingDA;
  const sigma = dRing < 0 ? params.waterRingSigmaPerA : params.waterRingOuterSigmaPerA;
  return params.waterRingPhotonsPerPx * Math.exp((-0.5 * dRing * dRing) / (sigma * sigma));
}

/** Intervals of the ring's table over sin(theta): the ring is >= 50 intervals wide on any detector. */
const RING_TABLE_INTERVALS = 8192;

/**
 * The model's map for one photon energy (see BackgroundModel), the ring linearly interpolated from a
 * table over sin(theta): within 1e-6 of the ring's peak of `backgroundPhotonMap`'s exact values.
 */
export function backgroundMapForEnergy(
  model: BackgroundModel,
  params: BackgroundParams,
  photonEnergyEv: number,
  out: Float32Array = new Float32Array(model.sinTheta.length),
): Float32Array {
  const invLambdaPerA = photonEnergyEv / (HC_EV_M * 1e10);
  const n = RING_TABLE_INTERVALS;
  const step = model.maxSinTheta / n || 1;
  const table = new Float64Array(n + 2);
  for (let k = 0; k <= n + 1; k++) table[k] = waterRing(params, 2 * invLambdaPerA * k * step);
  const { energyFreePhotons, ringFactor, sinTheta } = model;
  const perStep = 1 / step;
  for (let i = 0; i < out.length; i++) {
    const t = sinTheta[i] * perStep;
    const k = t | 0;
    const ring = table[k] + (t - k) * (table[k + 1] - table[k]);
    out[i] = energyFreePhotons[i] + ringFactor[i] * ring;
  }
  return out;
}

/**
 * Expected background photons per pixel into `out` (0 where no panel), with the ring evaluated exactly
 * per pixel. `jetAngleRad` is the streak's direction in the lab x-y plane.
 */
export function backgroundPhotonMap(
  maps: PixelMaps,
  params: BackgroundParams,
  beam: BackgroundBeam,
  jetAngleRad: number,
  out: Float32Array = new Float32Array(maps.ssSize * maps.fsSize),
): Float32Array {
  const model = createBackgroundModel(maps, params, beam.clenM, jetAngleRad);
  const invLambdaPerA = beam.photonEnergyEv / (HC_EV_M * 1e10);
  for (let i = 0; i < out.length; i++)
    out[i] =
      model.energyFreePhotons[i] +
      model.ringFactor[i] * waterRing(params, 2 * invLambdaPerA * model.sinTheta[i]);
  return out;
}

/** Beamstop transmission per pixel in [0, 1] (1 where no shadow, and where no panel). */
export function beamstopShadowMap(
  maps: PixelMaps,
  params: BeamstopParams,
  armAngleRad: number,
  out: Float32Array = new Float32Array(maps.ssSize * maps.fsSize),
): Float32Array {
  const { xM, yM, panelIndex } = maps;
  const edge = Math.max(params.beamstopEdgeM, 1e-9);
  const armCos = Math.cos(armAngleRad);
  const armSin = Math.sin(armAngleRad);
  const halfArm = params.beamstopArmWidthM / 2;
  for (let i = 0; i < out.length; i++) {
    if (panelIndex[i] < 0 || params.beamstopRadiusM <= 0) {
      out[i] = 1;
      continue;
    }
    const x = xM[i];
    const y = yM[i];
    const rM = Math.sqrt(x * x + y * y);
    // Distance outside the shadow: the disc, or the arm (a half-line from the centre).
    let outside = rM - params.beamstopRadiusM;
    if (halfArm > 0) {
      const along = x * armCos + y * armSin;
      if (along > 0) outside = Math.min(outside, Math.abs(x * armSin - y * armCos) - halfArm);
    }
    // Smooth step from 0 (inside) to 1 over the edge width.
    const t = Math.min(1, Math.max(0, outside / edge + 0.5));
    out[i] = t * t * (3 - 2 * t);
  }
  return out;
}
