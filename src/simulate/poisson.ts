/**
 * Fast random numbers for the detector model. A 4-Mpixel frame needs ~8 million draws; at 10 frames/s
 * on one core that leaves a few nanoseconds per draw, so the hot loop in detector.ts inlines its own
 * generator and uses the tables built here instead of Math.log / Math.exp / Box-Muller per pixel:
 * - `normalQuantiles()`: 2^16 standard-normal quantiles at bin midpoints; a 32-bit random word's top 16
 *   bits pick one (tails cut at about ±4.3 sigma, i.e. a Gaussian of variance 0.99977).
 * - `expNeg(mean)`: e^-mean from a table with linear interpolation (relative error < 2e-6 on [0, 64)),
 *   for Poisson inversion at small means.
 * Above `POISSON_NORMAL_ABOVE_MEAN` the Poisson count is the rounded normal approximation.
 */

/** Poisson means at or above this are drawn as round(mean + sqrt(mean) z). */
export const POISSON_NORMAL_ABOVE_MEAN = 30;

export const NORMAL_TABLE_BITS = 16;
let normalTable: Float32Array | undefined;

/** Standard-normal quantile (Acklam's rational approximation, relative error < 1.2e-9). */
export function inverseNormalCdf(p: number): number {
  if (!(p > 0 && p < 1)) return p <= 0 ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (
      (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
      ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    );
  }
  if (p > 1 - low) return -inverseNormalCdf(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
  );
}

/** The quantile table (built once, 256 KiB): entry j is the quantile of (j + 0.5) / 2^16. */
export function normalQuantiles(): Float32Array {
  if (normalTable === undefined) {
    const size = 1 << NORMAL_TABLE_BITS;
    normalTable = new Float32Array(size);
    for (let j = 0; j < size; j++) normalTable[j] = inverseNormalCdf((j + 0.5) / size);
  }
  return normalTable;
}

export const EXP_STEPS_PER_UNIT = 256;
const EXP_RANGE = 64;
let expTable: Float64Array | undefined;

/** e^(-j / EXP_STEPS_PER_UNIT) for j = 0 .. 64 x EXP_STEPS_PER_UNIT + 1 (for inlined lookups). */
export function expTableBuilt(): Float64Array {
  if (expTable === undefined) {
    expTable = new Float64Array(EXP_RANGE * EXP_STEPS_PER_UNIT + 2);
    for (let j = 0; j < expTable.length; j++) expTable[j] = Math.exp(-j / EXP_STEPS_PER_UNIT);
  }
  return expTable;
}

let reciprocals: Float64Array | undefined;

/** 1 / k for k = 0 .. 1023 (entry 0 unused): the inversion loop multiplies instead of dividing. */
export function reciprocalTable(): Float64Array {
  if (reciprocals === undefined) {
    reciprocals = new Float64Array(1024);
    for (let k = 1; k < 1024; k++) reciprocals[k] = 1 / k;
  }
  return reciprocals;
}

/** e^-x for x >= 0 from the table (falls back to Math.exp beyond its range). */
export function expNeg(x: number): number {
  const table = expTable ?? expTableBuilt();
  const scaled = x * EXP_STEPS_PER_UNIT;
  if (!(scaled < EXP_RANGE * EXP_STEPS_PER_UNIT)) return Math.exp(-x);
  const j = scaled | 0;
  const t = scaled - j;
  return table[j] + t * (table[j + 1] - table[j]);
}

/**
 * Poisson count by inversion of the CDF with uniform `u` in [0, 1): exact (to the table) for small
 * means; callers switch to the normal approximation at POISSON_NORMAL_ABOVE_MEAN.
 */
export function poissonByInversion(mean: number, u: number): number {
  let p = expNeg(mean);
  let cdf = p;
  let k = 0;
  // The cap guards against u ~ 1 with a cdf that rounds short of it.
  while (u >= cdf && k < 1000) {
    k++;
    p *= mean / k;
    cdf += p;
    // u within rounding of 1: the remaining tail is negligible.
    if (p < 1e-16 && k > mean) break;
  }
  return k;
}

/** One Poisson draw from a `() => number` uniform source (for code off the hot path and tests). */
export function samplePoisson(mean: number, random: () => number): number {
  if (!(mean > 0)) return 0;
  if (mean < POISSON_NORMAL_ABOVE_MEAN) return poissonByInversion(mean, random());
  const z = normalQuantiles()[Math.floor(random() * (1 << NORMAL_TABLE_BITS))];
  return Math.max(0, Math.round(mean + Math.sqrt(mean) * z));
}

/**
 * A 32-bit seed drawn from a `() => number` source, so a frame's inline generator is determined by the
 * caller's stream.
 */
export function seedFrom(random: () => number): number {
  return Math.floor(random() * 4294967296) >>> 0;
}
