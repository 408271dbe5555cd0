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
 * Expected background photons per pixel into `out` (0 where no panel). `jetAngleRad` is the streak's
 * direction in the lab x-y plane.
 */
export function backgroundPhotonMap(
  maps: PixelMaps,
  params: BackgroundParams,
  beam: BackgroundBeam,
  jetAngleRad: number,
  out: Float32Array = new Float32Array(maps.ssSize * maps.fsSize),
): Float32Array {
  const clens = panelClensM(maps.geometry, beam.clenM);
  // Solid angle of each panel's pixel on the axis at its distance, relative to the reference pixel;
  // the cos^3 factor below adds the obliquity.
  const panelSolidAngle = Float64Array.from(maps.geometry.panels, (panel, p) => {
    const z = clens[p] + panel.coffsetM;
    return 1 / (panel.resPxPerM * panel.resPxPerM * z * z * REFERENCE_PIXEL_SOLID_ANGLE_SR);
  });
  const invLambdaPerA = beam.photonEnergyEv / (HC_EV_M * 1e10);
  const ringCentre = 1 / params.waterRingDA;
  const ringScaleInner = -0.5 / (params.waterRingSigmaPerA * params.waterRingSigmaPerA);
  const ringScaleOuter = -0.5 / (params.waterRingOuterSigmaPerA * params.waterRingOuterSigmaPerA);
  const airScale = 1 / params.airScatterHalfAngleRad;
  const jetCos = Math.cos(jetAngleRad);
  const jetSin = Math.sin(jetAngleRad);
  const jetScale = -0.5 / (params.jetStreakSigmaM * params.jetStreakSigmaM);
  const { xM, yM, zOffsetM, panelIndex } = maps;
  const pol = params.polarisationFraction;
  for (let i = 0; i < out.length; i++) {
    const p = panelIndex[i];
    if (p < 0) {
      out[i] = 0;
      continue;
    }
    const x = xM[i];
    const y = yM[i];
    const z = clens[p] + zOffsetM[i];
    const rM = Math.sqrt(x * x + y * y);
    const distance = Math.sqrt(rM * rM + z * z);
    const cos2t = z / distance;
    const sin2t = rM / distance;
    const twoTheta = Math.atan2(rM, z);
    // 1/d = 2 sin(theta) / lambda, with sin(theta) = sqrt((1 - cos 2theta) / 2).
    const invD = 2 * invLambdaPerA * Math.sqrt(0.5 * (1 - cos2t));
    const dRing = invD - ringCentre;
    const a = twoTheta * airScale;
    let photons =
      params.waterRingPhotonsPerPx * Math.exp((dRing < 0 ? ringScaleInner : ringScaleOuter) * dRing * dRing) +
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
    out[i] = photons * panelSolidAngle[p] * cos2t * cos2t * cos2t * polarisation;
  }
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
