/**
 * Fits a 2-D pseudo-Voigt profile on a planar background to the pixels around one Bragg peak
 * (Levenberg–Marquardt, analytic Jacobian), and turns a fit into a per-pixel label (the pixels at or
 * above half of the peak's maximum).
 *
 * Conventions, as everywhere in the project: positions are panel pixels along fs (fast scan, the
 * column) and ss (slow scan, the row), 0.0 = the centre of the first pixel, so pixel (fs, ss) covers
 * [fs - 0.5, fs + 0.5) x [ss - 0.5, ss + 0.5) and lies at index ss * width + fs. The model is sampled
 * at pixel centres (no integration over the pixel's area). Intensities are in the image's own units
 * (ADU or photons); `gain` (units per photon) links them to counting statistics.
 *
 * The model, for a pixel centred at (x, y):
 *
 *   f(x, y) = A [eta L(r) + (1 - eta) G(r)] + b0 + bFs (x - fsRef) + bSs (y - ssRef)
 *   r^2 = (x - x0)^2 / sFs^2 + (y - y0)^2 / sSs^2,   G = exp(-ln2 r^2),   L = 1 / (1 + r^2)
 *
 * G(1) = L(1) = 1/2 and both fall monotonically with r, so for every mixing eta in [0, 1] the profile
 * is at or above half its maximum A exactly where r <= 1: sFs and sSs are half widths at half maximum
 * (HWHM) along fs and ss, whatever eta is. The ellipse is axis aligned (no rotation).
 *
 * One image is one panel: a fit window never reaches across a panel's edge. A window that the edge
 * clips is fitted on the pixels it keeps.
 */

/** The peak itself (no background). Positions and widths in panel pixels. */
export interface PseudoVoigtProfile {
  /** Peak height above the background (image units): the profile's value at its centre. */
  amplitude: number;
  /** Centre along fs (pixels, 0.0 = centre of the first pixel). */
  fsPx: number;
  /** Centre along ss (pixels, 0.0 = centre of the first pixel). */
  ssPx: number;
  /** Half width at half maximum along fs (pixels). */
  hwhmFsPx: number;
  /** Half width at half maximum along ss (pixels). */
  hwhmSsPx: number;
  /** Lorentzian fraction: 0 = pure Gaussian, 1 = pure Lorentzian. */
  eta: number;
}

/** b(fs, ss) = b0 + bFs (fs - fsRef) + bSs (ss - ssRef), in image units (slopes per pixel). */
export interface PlanarBackground {
  b0: number;
  bFs: number;
  bSs: number;
  /** Where b0 applies: the fit window's centre pixel. */
  fsRef: number;
  ssRef: number;
}

/**
 * Why a fit is bad: a fixed vocabulary, so reasons can be counted. `centre moved too far` is more
 * than maxShiftPx from the position passed in; `centre left the window` is a centre that ended on the
 * window's boundary (it wanted out); `amplitude not significant` is amplitude / amplitudeError below
 * minAmplitudeSnr.
 */
export type BadFitReason =
  | 'start outside the panel'
  | 'too few good pixels'
  | 'non-finite fit'
  | 'not converged'
  | 'amplitude <= 0'
  | 'centre left the window'
  | 'centre moved too far'
  | 'width at a bound'
  | 'amplitude not significant'
  | 'reduced chi-square above threshold';

/** The pixels a fit used: an inclusive box of panel pixels (the window, clipped to the panel). */
export interface FitWindow {
  fsMin: number;
  fsMax: number;
  ssMin: number;
  ssMax: number;
}

export interface PseudoVoigtFit extends PseudoVoigtProfile {
  background: PlanarBackground;
  /** Standard error of the amplitude (image units), scaled by max(1, reduced chi-square). */
  amplitudeError: number;
  /** sum(w res^2) / (n - 9) with w = 1 / variance (see FitOptions.weighting). */
  reducedChiSquare: number;
  /** Good (unmasked, finite) pixels fitted. */
  pixels: number;
  /** Levenberg–Marquardt trial steps taken (each one model evaluation over the window). */
  iterations: number;
  converged: boolean;
  /** True when the fit should not be trusted; badReason says why (the first reason found). */
  bad: boolean;
  badReason?: BadFitReason;
  window: FitWindow;
}

/**
 * How each pixel's variance is modelled (weights are 1 / variance):
 * - `poisson` (default): var = max(gain x value, noiseFloor). Counting statistics on the measured
 *   value (Neyman weighting): right for dark-subtracted data in photons, or in ADU with `gain` ADU per
 *   photon. It needs no estimate from the window, so a Lorentzian tail reaching the window's border
 *   cannot spoil it, and the reduced chi-square is ~1 for a good fit to counting noise.
 * - `border`: var = max(s^2 + gain x max(value - background, 0), noiseFloor), where s^2 is the scatter
 *   of the window's border about its least-squares plane (read noise, background shot noise, whatever
 *   the units) and the second term is the peak's shot noise. For data whose noise scale is unknown.
 *   A peak whose tails reach the border inflates s^2: the fit is unaffected much, but the reduced
 *   chi-square comes out below 1 (pick a window of at least ~4 HWHM either side of the centre).
 * Weights are computed once from the data before the fit, so each fit minimises one fixed quadratic
 * form and every accepted LM step lowers it.
 */
export type FitWeighting = 'poisson' | 'border';

export interface FitOptions {
  /** Side of the square fit window in pixels, odd, 5 to 255 (default 9). */
  windowPx?: number;
  /** Most LM trial steps (default 50); a fit that runs out is flagged bad (not converged). */
  maxIterations?: number;
  /** Variance model (default `poisson`; see FitWeighting). */
  weighting?: FitWeighting;
  /** Image units per photon (default 1: the image counts photons). */
  gain?: number;
  /** Smallest variance a pixel gets, in image units squared (default: gain, i.e. one photon). */
  noiseFloor?: number;
  /** Largest distance (pixels) the fitted centre may lie from the (fsPx, ssPx) passed in (default 2). */
  maxShiftPx?: number;
  /** Fits with a larger reduced chi-square are bad (default Infinity: not checked). */
  maxReducedChiSquare?: number;
  /** Fits whose amplitude / amplitudeError is below this are bad: no significant peak (default 4). */
  minAmplitudeSnr?: number;
  /** Smallest HWHM the fit may reach, pixels (default MIN_HWHM_PX). */
  minHwhmPx?: number;
  /**
   * Sample points per pixel side (default 1: the model is sampled at pixel centres). With S > 1 the
   * model is averaged over an S x S grid in each pixel, as a pixel records a spot: needed for spots of
   * about a pixel, whose centre-sampled profile cannot put two equal pixels either side of a boundary.
   * Costs S^2 model evaluations per pixel. At most MAX_SUPERSAMPLE.
   */
  supersample?: number;
  /**
   * A width at its lower bound is an unresolved spot (narrower than the pixels that sample it), not a
   * bad fit (default false). With pixel-centre sampling, a spot much narrower than a pixel makes the
   * width and the amplitude trade off: the amplitude is then judged by its error at the bound.
   */
  allowUnresolved?: boolean;
}

export interface LabelOptions {
  /** Only label pixels inside the fit's window (default false: the whole panel). */
  restrictToWindow?: boolean;
  /** Label a fit flagged bad too (default false: a bad fit labels nothing). */
  includeBad?: boolean;
}

/** What labelPixels needs: a profile, optionally with a fit's flags and window (a fit qualifies). */
export type LabelSource = PseudoVoigtProfile & { bad?: boolean; window?: FitWindow };

/** Parameters: A, x0, y0, sx, sy, eta, b0, bx, by (x0, y0 relative to the window's centre pixel). */
const NP = 9;
const LN2 = Math.LN2;
/** Smallest HWHM a fit may reach (pixels). */
export const MIN_HWHM_PX = 0.3;

/**
 * The normalised pseudo-Voigt shape at squared scaled radius r2: 1 at r = 0, exactly 1/2 at r = 1
 * (both the Gaussian and the Lorentzian are parametrised by their HWHM).
 */
export function pseudoVoigtShape(r2: number, eta: number): number {
  return eta / (1 + r2) + (1 - eta) * Math.exp(-LN2 * r2);
}

/**
 * The model at panel position (fs, ss) (pixels): the profile, plus the background when one is given.
 */
export function evaluatePseudoVoigt(
  profile: PseudoVoigtProfile,
  fs: number,
  ss: number,
  background?: PlanarBackground,
): number {
  const dx = (fs - profile.fsPx) / profile.hwhmFsPx;
  const dy = (ss - profile.ssPx) / profile.hwhmSsPx;
  let value = profile.amplitude * pseudoVoigtShape(dx * dx + dy * dy, profile.eta);
  if (background !== undefined) {
    value +=
      background.b0 + background.bFs * (fs - background.fsRef) + background.bSs * (ss - background.ssRef);
  }
  return value;
}

/**
 * Adds the model at every pixel centre of a width x height panel to `out` (index ss * width + fs),
 * the background too when given. `radiusPx` limits the profile to a box of that half side around the
 * centre (default: the whole panel; a Lorentzian tail never quite ends); the background always covers
 * the whole panel.
 */
export function renderPseudoVoigt(
  profile: PseudoVoigtProfile,
  width: number,
  height: number,
  out: Float32Array | Float64Array,
  background?: PlanarBackground,
  radiusPx = Number.POSITIVE_INFINITY,
): void {
  checkPanel(width, height, out.length, 'out');
  if (background !== undefined) {
    for (let ss = 0; ss < height; ss++) {
      for (let fs = 0; fs < width; fs++) {
        out[ss * width + fs] +=
          background.b0 + background.bFs * (fs - background.fsRef) + background.bSs * (ss - background.ssRef);
      }
    }
  }
  const fs0 = Math.max(0, Math.ceil(profile.fsPx - radiusPx));
  const fs1 = Math.min(width - 1, Math.floor(profile.fsPx + radiusPx));
  const ss0 = Math.max(0, Math.ceil(profile.ssPx - radiusPx));
  const ss1 = Math.min(height - 1, Math.floor(profile.ssPx + radiusPx));
  const isx = 1 / profile.hwhmFsPx;
  const isy = 1 / profile.hwhmSsPx;
  for (let ss = ss0; ss <= ss1; ss++) {
    const dy = (ss - profile.ssPx) * isy;
    for (let fs = fs0; fs <= fs1; fs++) {
      const dx = (fs - profile.fsPx) * isx;
      out[ss * width + fs] += profile.amplitude * pseudoVoigtShape(dx * dx + dy * dy, profile.eta);
    }
  }
}

function checkPanel(width: number, height: number, length: number, what: string): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`panel size must be positive integers, got ${width} x ${height}`);
  }
  if (length < width * height) {
    throw new RangeError(
      `${what} holds ${length} values, the ${width} x ${height} panel needs ${width * height}`,
    );
  }
}

/** Scratch reused by every fit: per-pixel arrays (grown to the largest window seen) and 9x9 systems. */
interface Workspace {
  /** Largest window side the arrays hold. */
  capacity: number;
  /** Window columns and rows; the first column's u and the first row's v. */
  columns: number;
  rows: number;
  uFirst: number;
  vFirst: number;
  /** Per pixel: window column and row, u and v (relative to the centre pixel), value, weight. */
  col: Uint8Array;
  row: Uint8Array;
  u: Float64Array;
  v: Float64Array;
  y: Float64Array;
  w: Float64Array;
  border: Uint8Array;
  /** Sample points per pixel side (1: the pixel centre; S: an S x S grid averaged over the pixel). */
  supersample: number;
  /**
   * Per window column (row) and sample point (column * supersample + point), during one model
   * evaluation: x - x0, (x - x0)^2 / sx^2, its Gaussian.
   */
  colDx: Float64Array;
  colQ: Float64Array;
  colE: Float64Array;
  rowDy: Float64Array;
  rowQ: Float64Array;
  rowE: Float64Array;
  h: Float64Array;
  g: Float64Array;
  ht: Float64Array;
  gt: Float64Array;
  m: Float64Array;
  p: Float64Array;
  pt: Float64Array;
  delta: Float64Array;
  rhs: Float64Array;
  lo: Float64Array;
  hi: Float64Array;
}

let workspace: Workspace | undefined;

/** Most sample points per pixel side (FitOptions.supersample). */
export const MAX_SUPERSAMPLE = 7;

function getWorkspace(side: number): Workspace {
  if (workspace !== undefined && workspace.capacity >= side) return workspace;
  const capacity = side * side;
  workspace = {
    capacity: side,
    columns: 0,
    rows: 0,
    uFirst: 0,
    vFirst: 0,
    col: new Uint8Array(capacity),
    row: new Uint8Array(capacity),
    u: new Float64Array(capacity),
    v: new Float64Array(capacity),
    y: new Float64Array(capacity),
    w: new Float64Array(capacity),
    border: new Uint8Array(capacity),
    supersample: 1,
    colDx: new Float64Array(side * MAX_SUPERSAMPLE),
    colQ: new Float64Array(side * MAX_SUPERSAMPLE),
    colE: new Float64Array(side * MAX_SUPERSAMPLE),
    rowDy: new Float64Array(side * MAX_SUPERSAMPLE),
    rowQ: new Float64Array(side * MAX_SUPERSAMPLE),
    rowE: new Float64Array(side * MAX_SUPERSAMPLE),
    h: new Float64Array(NP * NP),
    g: new Float64Array(NP),
    ht: new Float64Array(NP * NP),
    gt: new Float64Array(NP),
    m: new Float64Array(NP * NP),
    p: new Float64Array(NP),
    pt: new Float64Array(NP),
    delta: new Float64Array(NP),
    rhs: new Float64Array(NP),
    lo: new Float64Array(NP),
    hi: new Float64Array(NP),
  };
  return workspace;
}

/** Offset of sample point k of S along a pixel side, from its centre: an S-point midpoint rule. */
function subOffset(k: number, S: number): number {
  return (k + 0.5) / S - 0.5;
}

/**
 * The profile (no background) averaged over the pixel centred at (fs, ss) on an S x S grid of sample
 * points (S = 1: its value at the centre): what a pixel records of a spot, as `supersample` fits it.
 */
export function pixelAveragedShape(
  profile: PseudoVoigtProfile,
  fs: number,
  ss: number,
  supersample = 1,
): number {
  const S = supersample;
  let sum = 0;
  for (let kr = 0; kr < S; kr++) {
    const dy = (ss + subOffset(kr, S) - profile.ssPx) / profile.hwhmSsPx;
    for (let kc = 0; kc < S; kc++) {
      const dx = (fs + subOffset(kc, S) - profile.fsPx) / profile.hwhmFsPx;
      sum += pseudoVoigtShape(dx * dx + dy * dy, profile.eta);
    }
  }
  return sum / (S * S);
}

/**
 * chi^2 = sum w (y - f)^2 at parameters p, with the normal equations' matrix h = J^T W J (9x9, full)
 * and right-hand side g = J^T W (y - f), J the analytic Jacobian df/dp. The sums live in locals (the
 * hot loop touches no array but its inputs); the background's columns are 1, u and v.
 */
function accumulate(n: number, ws: Workspace, p: Float64Array, h: Float64Array, g: Float64Array): number {
  const { u, v, y, w, col, row, colDx, colQ, colE, rowDy, rowQ, rowE } = ws;
  const a = p[0];
  const x0 = p[1];
  const y0 = p[2];
  const isx = 1 / p[3];
  const isy = 1 / p[4];
  const eta = p[5];
  const b0 = p[6];
  const bx = p[7];
  const by = p[8];
  const isx2 = isx * isx;
  const isy2 = isy * isy;
  const gEta = 1 - eta;
  const cG = gEta * LN2;
  // exp(-ln2 r^2) = exp(-ln2 qx) exp(-ln2 qy): one exponential per window column and row, not pixel.
  const S = ws.supersample;
  for (let c = 0, uc = ws.uFirst; c < ws.columns; c++, uc++) {
    for (let k = 0; k < S; k++) {
      const dx = uc + subOffset(k, S) - x0;
      const qx = dx * dx * isx2;
      colDx[c * S + k] = dx;
      colQ[c * S + k] = qx;
      colE[c * S + k] = Math.exp(-LN2 * qx);
    }
  }
  for (let r = 0, vr = ws.vFirst; r < ws.rows; r++, vr++) {
    for (let k = 0; k < S; k++) {
      const dy = vr + subOffset(k, S) - y0;
      const qy = dy * dy * isy2;
      rowDy[r * S + k] = dy;
      rowQ[r * S + k] = qy;
      rowE[r * S + k] = Math.exp(-LN2 * qy);
    }
  }
  const perSample = 1 / (S * S);
  let h00 = 0;
  let h01 = 0;
  let h02 = 0;
  let h03 = 0;
  let h04 = 0;
  let h05 = 0;
  let h06 = 0;
  let h07 = 0;
  let h08 = 0;
  let h11 = 0;
  let h12 = 0;
  let h13 = 0;
  let h14 = 0;
  let h15 = 0;
  let h16 = 0;
  let h17 = 0;
  let h18 = 0;
  let h22 = 0;
  let h23 = 0;
  let h24 = 0;
  let h25 = 0;
  let h26 = 0;
  let h27 = 0;
  let h28 = 0;
  let h33 = 0;
  let h34 = 0;
  let h35 = 0;
  let h36 = 0;
  let h37 = 0;
  let h38 = 0;
  let h44 = 0;
  let h45 = 0;
  let h46 = 0;
  let h47 = 0;
  let h48 = 0;
  let h55 = 0;
  let h56 = 0;
  let h57 = 0;
  let h58 = 0;
  let h66 = 0;
  let h67 = 0;
  let h68 = 0;
  let h77 = 0;
  let h78 = 0;
  let h88 = 0;
  let g0 = 0;
  let g1 = 0;
  let g2 = 0;
  let g3 = 0;
  let g4 = 0;
  let g5 = 0;
  let g6 = 0;
  let g7 = 0;
  let g8 = 0;
  let chi2 = 0;
  for (let i = 0; i < n; i++) {
    const ui = u[i];
    const vi = v[i];
    const ci = col[i];
    const ri = row[i];
    // The profile and its derivatives averaged over the pixel's sample points (one: its centre).
    // c = -2 A dShape/dr2; the shape parameters' derivatives follow from dr2/dp.
    let shape = 0;
    let j1 = 0;
    let j2 = 0;
    let j3 = 0;
    let j4 = 0;
    let j5 = 0;
    for (let kr = ri * S, kEnd = kr + S; kr < kEnd; kr++) {
      const dy = rowDy[kr];
      const qy = rowQ[kr];
      const ey = rowE[kr];
      for (let kc = ci * S, cEnd = kc + S; kc < cEnd; kc++) {
        const qx = colQ[kc];
        const r2 = qx + qy;
        const gs = colE[kc] * ey;
        const ls = 1 / (1 + r2);
        shape += eta * ls + gEta * gs;
        const c = 2 * a * (eta * ls * ls + cG * gs);
        j1 += c * colDx[kc] * isx2;
        j2 += c * dy * isy2;
        j3 += c * qx * isx;
        j4 += c * qy * isy;
        j5 += a * (ls - gs);
      }
    }
    if (S > 1) {
      shape *= perSample;
      j1 *= perSample;
      j2 *= perSample;
      j3 *= perSample;
      j4 *= perSample;
      j5 *= perSample;
    }
    const res = y[i] - (a * shape + b0 + bx * ui + by * vi);
    const wi = w[i];
    chi2 += wi * res * res;
    const w0 = wi * shape;
    const w1 = wi * j1;
    const w2 = wi * j2;
    const w3 = wi * j3;
    const w4 = wi * j4;
    const w5 = wi * j5;
    h00 += w0 * shape;
    h01 += w0 * j1;
    h02 += w0 * j2;
    h03 += w0 * j3;
    h04 += w0 * j4;
    h05 += w0 * j5;
    h06 += w0;
    h07 += w0 * ui;
    h08 += w0 * vi;
    g0 += w0 * res;
    h11 += w1 * j1;
    h12 += w1 * j2;
    h13 += w1 * j3;
    h14 += w1 * j4;
    h15 += w1 * j5;
    h16 += w1;
    h17 += w1 * ui;
    h18 += w1 * vi;
    g1 += w1 * res;
    h22 += w2 * j2;
    h23 += w2 * j3;
    h24 += w2 * j4;
    h25 += w2 * j5;
    h26 += w2;
    h27 += w2 * ui;
    h28 += w2 * vi;
    g2 += w2 * res;
    h33 += w3 * j3;
    h34 += w3 * j4;
    h35 += w3 * j5;
    h36 += w3;
    h37 += w3 * ui;
    h38 += w3 * vi;
    g3 += w3 * res;
    h44 += w4 * j4;
    h45 += w4 * j5;
    h46 += w4;
    h47 += w4 * ui;
    h48 += w4 * vi;
    g4 += w4 * res;
    h55 += w5 * j5;
    h56 += w5;
    h57 += w5 * ui;
    h58 += w5 * vi;
    g5 += w5 * res;
    const wu = wi * ui;
    const wv = wi * vi;
    h66 += wi;
    h67 += wu;
    h68 += wv;
    h77 += wu * ui;
    h78 += wu * vi;
    h88 += wv * vi;
    const wr = wi * res;
    g6 += wr;
    g7 += wr * ui;
    g8 += wr * vi;
  }
  h[0] = h00;
  h[1] = h01;
  h[9] = h01;
  h[2] = h02;
  h[18] = h02;
  h[3] = h03;
  h[27] = h03;
  h[4] = h04;
  h[36] = h04;
  h[5] = h05;
  h[45] = h05;
  h[6] = h06;
  h[54] = h06;
  h[7] = h07;
  h[63] = h07;
  h[8] = h08;
  h[72] = h08;
  h[10] = h11;
  h[11] = h12;
  h[19] = h12;
  h[12] = h13;
  h[28] = h13;
  h[13] = h14;
  h[37] = h14;
  h[14] = h15;
  h[46] = h15;
  h[15] = h16;
  h[55] = h16;
  h[16] = h17;
  h[64] = h17;
  h[17] = h18;
  h[73] = h18;
  h[20] = h22;
  h[21] = h23;
  h[29] = h23;
  h[22] = h24;
  h[38] = h24;
  h[23] = h25;
  h[47] = h25;
  h[24] = h26;
  h[56] = h26;
  h[25] = h27;
  h[65] = h27;
  h[26] = h28;
  h[74] = h28;
  h[30] = h33;
  h[31] = h34;
  h[39] = h34;
  h[32] = h35;
  h[48] = h35;
  h[33] = h36;
  h[57] = h36;
  h[34] = h37;
  h[66] = h37;
  h[35] = h38;
  h[75] = h38;
  h[40] = h44;
  h[41] = h45;
  h[49] = h45;
  h[42] = h46;
  h[58] = h46;
  h[43] = h47;
  h[67] = h47;
  h[44] = h48;
  h[76] = h48;
  h[50] = h55;
  h[51] = h56;
  h[59] = h56;
  h[52] = h57;
  h[68] = h57;
  h[53] = h58;
  h[77] = h58;
  h[60] = h66;
  h[61] = h67;
  h[69] = h67;
  h[62] = h68;
  h[78] = h68;
  h[70] = h77;
  h[71] = h78;
  h[79] = h78;
  h[80] = h88;
  g[0] = g0;
  g[1] = g1;
  g[2] = g2;
  g[3] = g3;
  g[4] = g4;
  g[5] = g5;
  g[6] = g6;
  g[7] = g7;
  g[8] = g8;
  return chi2;
}

/**
 * Solves m x = b for symmetric positive definite m (n x n, row major) by Cholesky; m is overwritten
 * by its lower factor. False when m is not positive definite (numerically).
 */
function choleskySolve(m: Float64Array, b: Float64Array, x: Float64Array, n: number): boolean {
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let j = 0; j <= i; j++) {
      const rj = j * n;
      let s = m[ri + j];
      for (let k = 0; k < j; k++) s -= m[ri + k] * m[rj + k];
      if (i === j) {
        if (!(s > 0)) return false;
        m[ri + i] = Math.sqrt(s);
      } else {
        m[ri + j] = s / m[rj + j];
      }
    }
  }
  for (let i = 0; i < n; i++) {
    let s = b[i];
    for (let k = 0; k < i; k++) s -= m[i * n + k] * x[k];
    x[i] = s / m[i * n + i];
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = x[i];
    for (let k = i + 1; k < n; k++) s -= m[k * n + i] * x[k];
    x[i] = s / m[i * n + i];
  }
  return true;
}

/**
 * Least-squares plane b0 + bx u + by v through the border pixels (unit weights); false when the border
 * does not pin a plane down (too few pixels, or all on one line).
 */
function fitBorderPlane(n: number, ws: Workspace, out: Float64Array): boolean {
  const { u, v, y, border, m, g } = ws;
  let s1 = 0;
  let su = 0;
  let sv = 0;
  let suu = 0;
  let suv = 0;
  let svv = 0;
  let sy = 0;
  let suy = 0;
  let svy = 0;
  for (let i = 0; i < n; i++) {
    if (border[i] === 0) continue;
    const ui = u[i];
    const vi = v[i];
    const yi = y[i];
    s1 += 1;
    su += ui;
    sv += vi;
    suu += ui * ui;
    suv += ui * vi;
    svv += vi * vi;
    sy += yi;
    suy += ui * yi;
    svy += vi * yi;
  }
  if (s1 < 6) return false;
  m[0] = s1;
  m[1] = su;
  m[2] = sv;
  m[3] = su;
  m[4] = suu;
  m[5] = suv;
  m[6] = sv;
  m[7] = suv;
  m[8] = svv;
  g[0] = sy;
  g[1] = suy;
  g[2] = svy;
  const det = s1 * (suu * svv - suv * suv) - su * (su * svv - suv * sv) + sv * (su * suv - suu * sv);
  if (!(det > 1e-9 * s1 * suu * svv)) return false;
  return choleskySolve(m, g, out, 3);
}

/**
 * Fits the pseudo-Voigt model to the window around (fsPx, ssPx) of one panel.
 *
 * `image` is the panel, width x height values at index ss * width + fs; `mask` (same layout, 1 = good)
 * drops pixels, as do non-finite values. The window (options.windowPx square) is centred on the pixel
 * nearest (fsPx, ssPx) and clipped to the panel.
 *
 * Start: a plane fitted to the window's border pixels (those of the unclipped window's edges that lie
 * on the panel), A = the highest value above it, the centre at the centroid of the pixels above half
 * of that, widths from their second moments, eta = 0.5. Then Levenberg–Marquardt with Marquardt's
 * diagonal damping, keeping HWHMs in [0.3, windowPx / 2], eta in [0, 1] and the centre within half a
 * pixel of the clipped window.
 *
 * The fit is flagged bad (in this order) when: fewer than 18 good pixels; non-finite values; not
 * converged; amplitude <= 0; the centre ended on the window's boundary (it wanted to leave); it lies
 * more than maxShiftPx from (fsPx, ssPx); a HWHM at a bound; amplitude / amplitudeError below
 * minAmplitudeSnr; reduced chi-square above maxReducedChiSquare.
 */
export function fitPseudoVoigt(
  image: ArrayLike<number>,
  width: number,
  height: number,
  fsPx: number,
  ssPx: number,
  options: FitOptions = {},
  mask?: ArrayLike<number>,
): PseudoVoigtFit {
  checkPanel(width, height, image.length, 'image');
  if (mask !== undefined) checkPanel(width, height, mask.length, 'mask');
  const windowPx = options.windowPx ?? 9;
  if (!Number.isInteger(windowPx) || windowPx < 5 || windowPx > 255 || windowPx % 2 === 0) {
    throw new RangeError(`windowPx must be an odd integer in [5, 255], got ${windowPx}`);
  }
  const maxIterations = options.maxIterations ?? 50;
  const weighting = options.weighting ?? 'poisson';
  const gain = options.gain ?? 1;
  const noiseFloor = options.noiseFloor ?? gain;
  const maxShiftPx = options.maxShiftPx ?? 2;
  const maxReducedChiSquare = options.maxReducedChiSquare ?? Number.POSITIVE_INFINITY;
  const minAmplitudeSnr = options.minAmplitudeSnr ?? 4;
  const minHwhm = options.minHwhmPx ?? MIN_HWHM_PX;
  if (!(minHwhm > 0)) throw new RangeError(`minHwhmPx must be positive, got ${minHwhm}`);
  if (!(gain > 0) || !(noiseFloor > 0)) throw new RangeError('gain and noiseFloor must be positive');

  const half = (windowPx - 1) / 2;
  const ic = Math.floor(fsPx + 0.5);
  const jc = Math.floor(ssPx + 0.5);
  const window: FitWindow = {
    fsMin: Math.max(0, ic - half),
    fsMax: Math.min(width - 1, ic + half),
    ssMin: Math.max(0, jc - half),
    ssMax: Math.min(height - 1, jc + half),
  };
  const result: PseudoVoigtFit = {
    amplitude: Number.NaN,
    fsPx: Number.NaN,
    ssPx: Number.NaN,
    hwhmFsPx: Number.NaN,
    hwhmSsPx: Number.NaN,
    eta: Number.NaN,
    background: { b0: Number.NaN, bFs: Number.NaN, bSs: Number.NaN, fsRef: ic, ssRef: jc },
    amplitudeError: Number.NaN,
    reducedChiSquare: Number.NaN,
    pixels: 0,
    iterations: 0,
    converged: false,
    bad: true,
    window,
  };
  if (!(ic >= 0 && ic < width && jc >= 0 && jc < height)) {
    result.badReason = 'start outside the panel';
    return result;
  }

  // Gather the window's good pixels, in coordinates relative to the centre pixel (ic, jc).
  const ws = getWorkspace(windowPx);
  const supersample = options.supersample ?? 1;
  if (!Number.isInteger(supersample) || supersample < 1 || supersample > MAX_SUPERSAMPLE)
    throw new RangeError(`supersample must be an integer from 1 to ${MAX_SUPERSAMPLE}, got ${supersample}`);
  ws.supersample = supersample;
  const { u, v, y, w, border, col, row, p, lo, hi } = ws;
  ws.columns = window.fsMax - window.fsMin + 1;
  ws.rows = window.ssMax - window.ssMin + 1;
  ws.uFirst = window.fsMin - ic;
  ws.vFirst = window.ssMin - jc;
  let n = 0;
  for (let ss = window.ssMin; ss <= window.ssMax; ss++) {
    for (let fs = window.fsMin; fs <= window.fsMax; fs++) {
      const index = ss * width + fs;
      const value = +image[index];
      if (!Number.isFinite(value) || (mask !== undefined && mask[index] !== 1)) continue;
      const du = fs - ic;
      const dv = ss - jc;
      col[n] = fs - window.fsMin;
      row[n] = ss - window.ssMin;
      u[n] = du;
      v[n] = dv;
      y[n] = value;
      border[n] = du === -half || du === half || dv === -half || dv === half ? 1 : 0;
      n++;
    }
  }
  result.pixels = n;
  if (n < 2 * NP) {
    result.badReason = 'too few good pixels';
    return result;
  }

  // Background start: the border's plane, else the border's mean (else the window's minimum).
  const plane = ws.delta;
  let borderVariance = 0;
  if (fitBorderPlane(n, ws, plane)) {
    let ss2 = 0;
    let nb = 0;
    for (let i = 0; i < n; i++) {
      if (border[i] === 0) continue;
      const r = y[i] - (plane[0] + plane[1] * u[i] + plane[2] * v[i]);
      ss2 += r * r;
      nb++;
    }
    borderVariance = ss2 / (nb - 3);
  } else {
    let sum = 0;
    let nb = 0;
    let min = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      if (y[i] < min) min = y[i];
      if (border[i] === 0) continue;
      sum += y[i];
      nb++;
    }
    plane[0] = nb > 0 ? sum / nb : min;
    plane[1] = 0;
    plane[2] = 0;
    let ss2 = 0;
    for (let i = 0; i < n; i++) {
      if (border[i] === 0) continue;
      ss2 += (y[i] - plane[0]) ** 2;
    }
    borderVariance = nb > 1 ? ss2 / (nb - 1) : 0;
  }
  const b0 = plane[0];
  const bx = plane[1];
  const by = plane[2];

  // Amplitude, centroid and second moments of the pixels at or above half the highest one.
  let a0 = Number.NEGATIVE_INFINITY;
  let yScale = 0;
  for (let i = 0; i < n; i++) {
    const s = y[i] - (b0 + bx * u[i] + by * v[i]);
    if (s > a0) a0 = s;
    if (Math.abs(y[i]) > yScale) yScale = Math.abs(y[i]);
  }
  let sw = 0;
  let swu = 0;
  let swv = 0;
  let swuu = 0;
  let swvv = 0;
  const cut = 0.5 * a0;
  for (let i = 0; i < n; i++) {
    const s = y[i] - (b0 + bx * u[i] + by * v[i]);
    if (!(s >= cut) || !(s > 0)) continue;
    sw += s;
    swu += s * u[i];
    swv += s * v[i];
    swuu += s * u[i] * u[i];
    swvv += s * v[i] * v[i];
  }
  const maxHwhm = windowPx / 2;
  let cu = 0;
  let cv = 0;
  let sx0 = 1;
  let sy0 = 1;
  if (sw > 0) {
    cu = swu / sw;
    cv = swv / sw;
    // A uniformly filled ellipse of semi-axis s has second moment s^2 / 4 (+ 1/12 for pixel size).
    sx0 = 2 * Math.sqrt(Math.max(0, swuu / sw - cu * cu) + 1 / 12);
    sy0 = 2 * Math.sqrt(Math.max(0, swvv / sw - cv * cv) + 1 / 12);
  }
  const uMin = window.fsMin - ic - 0.5;
  const uMax = window.fsMax - ic + 0.5;
  const vMin = window.ssMin - jc - 0.5;
  const vMax = window.ssMax - jc + 0.5;
  lo.fill(Number.NEGATIVE_INFINITY);
  hi.fill(Number.POSITIVE_INFINITY);
  lo[1] = uMin;
  hi[1] = uMax;
  lo[2] = vMin;
  hi[2] = vMax;
  lo[3] = minHwhm;
  hi[3] = maxHwhm;
  lo[4] = minHwhm;
  hi[4] = maxHwhm;
  lo[5] = 0;
  hi[5] = 1;
  p[0] = Number.isFinite(a0) ? a0 : 0;
  p[1] = cu;
  p[2] = cv;
  p[3] = sx0;
  p[4] = sy0;
  p[5] = 0.5;
  p[6] = b0;
  p[7] = bx;
  p[8] = by;
  for (let k = 1; k <= 5; k++) p[k] = Math.min(hi[k], Math.max(lo[k], p[k]));

  // Weights: 1 / variance (see FitWeighting).
  let swyy = 0;
  for (let i = 0; i < n; i++) {
    let variance: number;
    if (weighting === 'border') {
      const s = y[i] - (b0 + bx * u[i] + by * v[i]);
      variance = borderVariance + gain * Math.max(s, 0);
    } else {
      variance = gain * y[i];
    }
    if (!(variance >= noiseFloor)) variance = noiseFloor;
    w[i] = 1 / variance;
    swyy += w[i] * y[i] * y[i];
  }

  const { converged, iterations, chi2 } = levenbergMarquardt(n, ws, maxIterations, swyy, yScale);
  const dof = n - NP;
  const reducedChiSquare = chi2 / dof;

  // Standard error of A from the undamped normal matrix at the solution.
  // A parameter held at a bound is fixed there: it carries no uncertainty, and leaving it free would
  // let an unresolved spot's width trade off against its amplitude (a sharp, bright spot would look
  // insignificant).
  const m = ws.m;
  m.set(ws.h);
  for (let k = 1; k <= 5; k++) {
    const tol = 1e-6 * Math.max(1, Math.abs(hi[k] - lo[k]));
    if (p[k] - lo[k] > tol && hi[k] - p[k] > tol) continue;
    for (let j = 0; j < NP; j++) {
      m[k * NP + j] = 0;
      m[j * NP + k] = 0;
    }
    m[k * NP + k] = 1;
  }
  const e0 = ws.gt;
  e0.fill(0);
  e0[0] = 1;
  const column = ws.pt;
  const amplitudeError = choleskySolve(m, e0, column, NP)
    ? Math.sqrt(Math.max(0, column[0]) * Math.max(1, reducedChiSquare))
    : Number.POSITIVE_INFINITY;

  result.amplitude = p[0];
  result.fsPx = ic + p[1];
  result.ssPx = jc + p[2];
  result.hwhmFsPx = p[3];
  result.hwhmSsPx = p[4];
  result.eta = p[5];
  result.background.b0 = p[6];
  result.background.bFs = p[7];
  result.background.bSs = p[8];
  result.amplitudeError = amplitudeError;
  result.reducedChiSquare = reducedChiSquare;
  result.iterations = iterations;
  result.converged = converged;

  const atBound = (k: number): boolean => {
    const tol = 1e-6 * Math.max(1, Math.abs(hi[k] - lo[k]));
    return p[k] - lo[k] <= tol || hi[k] - p[k] <= tol;
  };
  const atUpperBound = (k: number): boolean => hi[k] - p[k] <= 1e-6 * Math.max(1, Math.abs(hi[k] - lo[k]));
  const allowUnresolved = options.allowUnresolved === true;
  let reason: BadFitReason | undefined;
  let finite = Number.isFinite(chi2);
  for (let k = 0; k < NP; k++) finite &&= Number.isFinite(p[k]);
  if (!finite) reason = 'non-finite fit';
  else if (!converged) reason = 'not converged';
  else if (!(p[0] > 0)) reason = 'amplitude <= 0';
  else if (atBound(1) || atBound(2)) reason = 'centre left the window';
  else if (Math.hypot(result.fsPx - fsPx, result.ssPx - ssPx) > maxShiftPx) reason = 'centre moved too far';
  else if (allowUnresolved ? atUpperBound(3) || atUpperBound(4) : atBound(3) || atBound(4))
    reason = 'width at a bound';
  else if (!(p[0] >= minAmplitudeSnr * amplitudeError)) reason = 'amplitude not significant';
  else if (reducedChiSquare > maxReducedChiSquare) reason = 'reduced chi-square above threshold';
  result.bad = reason !== undefined;
  if (reason !== undefined) result.badReason = reason;
  return result;
}

/**
 * Levenberg–Marquardt on ws.p (in place) with damping h + lambda diag(h); steps are clamped to
 * [ws.lo, ws.hi]. Converged when an accepted step lowers chi^2 by less than a relative 1e-6, when a
 * near-Gauss–Newton step moves no parameter by more than a relative 1e-9, when chi^2 is at rounding
 * level (an exact model), or when no damping finds a lower chi^2 (a minimum within rounding).
 * On return ws.h holds the normal matrix at ws.p.
 */
function levenbergMarquardt(
  n: number,
  ws: Workspace,
  maxIterations: number,
  swyy: number,
  yScale: number,
): { converged: boolean; iterations: number; chi2: number } {
  const { m, delta, lo, hi, rhs } = ws;
  let p = ws.p;
  let pt = ws.pt;
  let h = ws.h;
  let g = ws.g;
  let ht = ws.ht;
  let gt = ws.gt;
  let chi2 = accumulate(n, ws, p, h, g);
  const exact = 1e-13 * swyy;
  let lambda = 1e-3;
  let iterations = 0;
  let converged = chi2 <= exact;
  const scaleA = yScale > 0 ? yScale : 1;
  while (!converged && iterations < maxIterations && Number.isFinite(chi2)) {
    let maxDiag = 0;
    for (let k = 0; k < NP; k++) maxDiag = Math.max(maxDiag, h[k * NP + k]);
    const floor = 1e-12 * maxDiag + 1e-300;
    m.set(h);
    for (let k = 0; k < NP; k++) m[k * NP + k] += lambda * Math.max(h[k * NP + k], floor);
    // A parameter on a bound that chi^2 pushes further out stays put this step (its row and column
    // leave the system), so the others are not dragged by a step that clamping would undo.
    rhs.set(g);
    for (let k = 1; k <= 5; k++) {
      if ((p[k] <= lo[k] && g[k] <= 0) || (p[k] >= hi[k] && g[k] >= 0)) {
        for (let l = 0; l < NP; l++) {
          m[k * NP + l] = 0;
          m[l * NP + k] = 0;
        }
        m[k * NP + k] = 1;
        rhs[k] = 0;
      }
    }
    if (!choleskySolve(m, rhs, delta, NP)) {
      lambda *= 10;
      if (lambda > 1e12) break;
      continue;
    }
    let small = true;
    for (let k = 0; k < NP; k++) {
      let value = p[k] + delta[k];
      if (value < lo[k]) value = lo[k];
      else if (value > hi[k]) value = hi[k];
      pt[k] = value;
      const scale = k === 0 || k === 6 ? scaleA : k >= 7 ? scaleA / 4 : 1;
      if (Math.abs(value - p[k]) > 1e-9 * (Math.abs(p[k]) + scale)) small = false;
    }
    if (small && lambda <= 1e-2) {
      converged = true;
      break;
    }
    iterations++;
    const chi2t = accumulate(n, ws, pt, ht, gt);
    if (chi2t < chi2) {
      const drop = chi2 - chi2t;
      chi2 = chi2t;
      const swapP = p;
      p = pt;
      pt = swapP;
      const swapH = h;
      h = ht;
      ht = swapH;
      const swapG = g;
      g = gt;
      gt = swapG;
      lambda = Math.max(lambda * 0.1, 1e-9);
      if (drop <= 1e-6 * chi2 || chi2 <= exact) converged = true;
    } else {
      lambda *= 10;
      if (lambda > 1e10) converged = true;
    }
  }
  // Leave the solution and its normal matrix where the caller looks.
  if (p !== ws.p) ws.p.set(p);
  if (h !== ws.h) ws.h.set(h);
  return { converged, iterations, chi2 };
}

/**
 * Sets out[ss * width + fs] = 1 for every pixel of the width x height panel whose centre lies where
 * the profile (background excluded) is at or above half its maximum, i.e. r <= 1 (see the module
 * comment: exact for every eta). Pixels outside the panel are never touched; with restrictToWindow
 * only the fit's window is. Returns how many pixels that is (those already 1 included). A source with
 * amplitude <= 0 or non-finite values, or a bad fit (unless includeBad), labels nothing.
 */
export function labelPixels(
  fit: LabelSource,
  width: number,
  height: number,
  out: Uint8Array,
  options: LabelOptions = {},
): number {
  checkPanel(width, height, out.length, 'out');
  if (fit.bad === true && options.includeBad !== true) return 0;
  const { fsPx, ssPx, hwhmFsPx: sx, hwhmSsPx: sy } = fit;
  if (!(fit.amplitude > 0) || !Number.isFinite(fsPx) || !Number.isFinite(ssPx) || !(sx > 0) || !(sy > 0)) {
    return 0;
  }
  let fs0 = Math.max(0, Math.ceil(fsPx - sx));
  let fs1 = Math.min(width - 1, Math.floor(fsPx + sx));
  let ss0 = Math.max(0, Math.ceil(ssPx - sy));
  let ss1 = Math.min(height - 1, Math.floor(ssPx + sy));
  if (options.restrictToWindow === true && fit.window !== undefined) {
    fs0 = Math.max(fs0, fit.window.fsMin);
    fs1 = Math.min(fs1, fit.window.fsMax);
    ss0 = Math.max(ss0, fit.window.ssMin);
    ss1 = Math.min(ss1, fit.window.ssMax);
  }
  let count = 0;
  for (let ss = ss0; ss <= ss1; ss++) {
    const dy = (ss - ssPx) / sy;
    const qy = dy * dy;
    if (qy > 1) continue;
    for (let fs = fs0; fs <= fs1; fs++) {
      const dx = (fs - fsPx) / sx;
      if (dx * dx + qy <= 1) {
        out[ss * width + fs] = 1;
        count++;
      }
    }
  }
  return count;
}
