/**
 * Spot profiles on the pixel grid. A spot is an anisotropic 2-D Gaussian (sigmas along the radial
 * direction and across it), optionally mixed with a small 2-D Lorentzian (Cauchy) tail, integrated over
 * each pixel's area by supersampling. The profile is evaluated on a box around the centre and scaled so
 * the box sums exactly to `spot.photons`: that is the flux an infinite detector would see (the part of a
 * Lorentzian tail beyond the box is folded back in). It is then kept only on pixels that exist on the
 * spot's own panel: photons landing in gaps, off the edge or on a neighbouring panel's slab rows are lost.
 */
import type { PixelMaps } from '../detector/pixel-maps.js';
import type { SimSpot } from './types.js';

export interface ProfileParams {
  /** The box reaches this many of the larger sigma (or Lorentzian widths) from the centre. */
  profileReachSigmas: number;
  /** Fraction of the spot's photons in the Lorentzian tail (0 = pure Gaussian). */
  lorentzianTailFraction: number;
  /** Lorentzian widths as multiples of the Gaussian sigmas. */
  lorentzianWidthFactor: number;
  /** Largest supersampling per pixel axis (used for the narrowest spots; wide ones need less). */
  maxSupersample: number;
}

/** A spot drawn on its panel: slab indices and expected photons, in reusable scratch arrays. */
export interface SpotPixels {
  count: number;
  indices: Int32Array;
  photons: Float64Array;
  /** Expected photons over the whole box, off-panel pixels included (= spot.photons). */
  boxPhotons: number;
}

export function createSpotPixels(capacity = 1024): SpotPixels {
  return { count: 0, indices: new Int32Array(capacity), photons: new Float64Array(capacity), boxPhotons: 0 };
}

/** Scratch for the box values (off-panel ones included). */
let boxScratch = new Float64Array(1024);

/** Largest exponent kept: samples below e^-40 of the peak count as 0. */
const MAX_HALF_Q = 40;

/**
 * Adds `weight` x exp(-Q/2) at every sample into the pixel bins of boxScratch, where Q is the quadratic
 * form of a Gaussian with sigmas (sr along the angle, st across). Along each sample row the values
 * follow a multiplicative recurrence (f(x + h) = f(x) r(x), r(x + h) = r(x) e^(-A h^2)), so a row costs
 * two exponentials whatever its length; rows and columns are limited to where Q/2 <= MAX_HALF_Q, which
 * also keeps the recurrence away from underflow.
 */
function addGaussian(
  sr: number,
  st: number,
  angleRad: number,
  weight: number,
  x0: number,
  y0: number,
  h: number,
  samples: number,
  n: number,
  side: number,
): void {
  const cos = Math.cos(angleRad);
  const sin = Math.sin(angleRad);
  const gr = 1 / (sr * sr);
  const gt = 1 / (st * st);
  // Q = A x^2 + 2 B x y + C y^2.
  const A = gr * cos * cos + gt * sin * sin;
  const B = (gr - gt) * sin * cos;
  const C = gr * sin * sin + gt * cos * cos;
  const rr = Math.exp(-A * h * h);
  const perSample = weight / (n * n);
  const conditional = C - (B * B) / A; // Q at the row's best x, per y^2
  const halfWidth = Math.sqrt((2 * MAX_HALF_Q) / A);
  for (let a = 0; a < samples; a++) {
    const y = y0 + a * h;
    const rowMin = 0.5 * conditional * y * y;
    if (rowMin > MAX_HALF_Q) continue;
    const xBest = (-B * y) / A;
    const first = Math.max(0, Math.ceil((xBest - halfWidth - x0) / h));
    const last = Math.min(samples - 1, Math.floor((xBest + halfWidth - x0) / h));
    if (first > last) continue;
    const x = x0 + first * h;
    let f = perSample * Math.exp(-0.5 * (A * x * x + 2 * B * x * y + C * y * y));
    let r = Math.exp(-0.5 * (A * (2 * x * h + h * h) + 2 * B * h * y));
    const rowBase = Math.floor(a / n) * side;
    let c = first;
    let pixel = Math.floor(c / n);
    let inPixel = c - pixel * n;
    for (; c <= last; c++) {
      boxScratch[rowBase + pixel] += f;
      f *= r;
      r *= rr;
      if (++inPixel === n) {
        inPixel = 0;
        pixel++;
      }
    }
  }
}

/** Adds a 2-D Cauchy (Lorentzian) of total weight `weight` (widths wr, wt) at every sample, directly. */
function addCauchy(
  wr: number,
  wt: number,
  angleRad: number,
  weight: number,
  x0: number,
  y0: number,
  h: number,
  samples: number,
  n: number,
  side: number,
): void {
  const cos = Math.cos(angleRad);
  const sin = Math.sin(angleRad);
  const lr = 1 / (wr * wr);
  const lt = 1 / (wt * wt);
  const perSample = weight / (2 * Math.PI * wr * wt * n * n);
  for (let a = 0; a < samples; a++) {
    const y = y0 + a * h;
    const rowBase = Math.floor(a / n) * side;
    for (let c = 0; c < samples; c++) {
      const x = x0 + c * h;
      const u = x * cos + y * sin;
      const v = -x * sin + y * cos;
      const q = 1 + u * u * lr + v * v * lt;
      boxScratch[rowBase + Math.floor(c / n)] += perSample / (q * Math.sqrt(q));
    }
  }
}

/**
 * Draws `spot` into `into` (replacing its content). Returns the number of on-panel pixels. Pixels are
 * those of the slab with `panelIndex === spot.panel`.
 */
export function drawSpot(maps: PixelMaps, spot: SimSpot, params: ProfileParams, into: SpotPixels): number {
  // Narrower than 0.15 px is a point for the pixel grid (and keeps the recurrence well conditioned).
  const sr = Math.max(spot.sigmaRadialPx, 0.15);
  const st = Math.max(spot.sigmaTangentialPx, 0.15);
  const eta = Math.min(1, Math.max(0, params.lorentzianTailFraction));
  const widthFactor = eta > 0 ? Math.max(1, params.lorentzianWidthFactor) : 1;
  const reach = Math.max(1, Math.ceil(params.profileReachSigmas * Math.max(sr, st) * widthFactor));
  const side = 2 * reach + 1;
  const boxSize = side * side;
  if (boxScratch.length < boxSize) boxScratch = new Float64Array(boxSize * 2);
  if (into.indices.length < boxSize) {
    into.indices = new Int32Array(boxSize * 2);
    into.photons = new Float64Array(boxSize * 2);
  }
  boxScratch.fill(0, 0, boxSize);
  const n = Math.min(params.maxSupersample, Math.max(1, Math.ceil(2 / Math.min(sr, st))));
  const cfs = Math.round(spot.fs);
  const css = Math.round(spot.ss);
  // Sample positions relative to the centre: x_c = x0 + c h along fs, y_a = y0 + a h along ss.
  const h = 1 / n;
  const samples = side * n;
  const x0 = cfs - reach - spot.fs + 0.5 * h - 0.5;
  const y0 = css - reach - spot.ss + 0.5 * h - 0.5;
  addGaussian(sr, st, spot.radialAngleRad, (1 - eta) / (2 * Math.PI * sr * st), x0, y0, h, samples, n, side);
  if (eta > 0)
    addCauchy(sr * widthFactor, st * widthFactor, spot.radialAngleRad, eta, x0, y0, h, samples, n, side);
  let sum = 0;
  for (let b = 0; b < boxSize; b++) sum += boxScratch[b];
  const scale = sum > 0 ? spot.photons / sum : 0;
  into.boxPhotons = spot.photons;
  const { fsSize, ssSize, panelIndex } = maps;
  let count = 0;
  let b = 0;
  for (let dss = -reach; dss <= reach; dss++) {
    const ss = css + dss;
    for (let dfs = -reach; dfs <= reach; dfs++, b++) {
      const fs = cfs + dfs;
      if (ss < 0 || ss >= ssSize || fs < 0 || fs >= fsSize) continue;
      const i = ss * fsSize + fs;
      if (panelIndex[i] !== spot.panel) continue;
      into.indices[count] = i;
      into.photons[count] = boxScratch[b] * scale;
      count++;
    }
  }
  into.count = count;
  return count;
}
