/**
 * Fast random numbers for the detector model. A 4-Mpixel frame needs ~8 million draws; at 10 frames/s
 * on one core that leaves a few nanoseconds per draw, so the per-pixel pass uses the tables built here
 * instead of Math.log / Math.exp / Box-Muller per pixel:
 * - `normalQuantiles()`: 2^16 standard-normal quantiles at bin midpoints; a 32-bit random word's top 16
 *   bits pick one (tails cut at about ±4.3 sigma, i.e. a Gaussian of variance 0.99977).
 * - `smallNormalQuantiles()`: the same at 2^12 levels (L1-sized) for the per-pixel noise terms.
 * - `poissonTables()`: for small means, per-mean CDFs with a guide table (see there), so a Poisson
 *   draw costs a lookup and a rarely taken comparison instead of a loop over counts.
 * The per-pixel pass itself runs in WebAssembly (expose-kernel.ts) over copies of these tables.
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

export const SMALL_NORMAL_TABLE_BITS = 12;
let smallNormalTable: Float32Array | undefined;

/**
 * The same quantiles at 2^12 levels (16 KiB, stays in L1 next to the streams of a frame pass; the
 * 2^16 table's random reads cost ~15 % of a frame): entry j is the quantile of (j + 0.5) / 2^12. Callers
 * that land on one of the two outermost entries (p = 2^-11) look their word's 16 bits up in
 * `normalQuantiles()` instead, so the tails still reach ±4.3 sigma.
 */
export function smallNormalQuantiles(): Float32Array {
  if (smallNormalTable === undefined) {
    const size = 1 << SMALL_NORMAL_TABLE_BITS;
    smallNormalTable = new Float32Array(size);
    for (let j = 0; j < size; j++) smallNormalTable[j] = inverseNormalCdf((j + 0.5) / size);
  }
  return smallNormalTable;
}

/** Poisson means are tabulated on a grid of this many steps per photon, up to the normal cut-over. */
export const POISSON_GRID_STEPS_PER_PHOTON = 32;
/** The guide table splits the uniform's range into 2^POISSON_GUIDE_BITS bins. */
export const POISSON_GUIDE_BITS = 8;
/** A Poisson draw compares a uniform integer of this many bits with the tabulated CDF. */
export const POISSON_UNIFORM_BITS = 24;

/**
 * Table-driven Poisson inversion for means on the grid m_j = j / POISSON_GRID_STEPS_PER_PHOTON:
 * `cdf[offset[j] + k]` is floor(P(X <= k) x 2^24) (the last entry of each mean, a sentinel, is above
 * any 24-bit uniform), and `guide[j << POISSON_GUIDE_BITS | b]` the count at the start of the
 * uniform's bin b (indexed search, Chen & Asau). A draw is one lookup plus a comparison loop that runs
 * only in the few bins that hold a CDF step, so the per-pixel branch is almost always predicted.
 * Probabilities are resolved to 2^-24 (6e-8). Int32 entries, so the WebAssembly detector kernel
 * (expose-kernel.ts) reads the same tables as the JavaScript draws here.
 */
export interface PoissonTables {
  guide: Uint8Array;
  offset: Int32Array;
  cdf: Int32Array;
}

let poissonTableCache: PoissonTables | undefined;

/** Number of tabulated means: j up to POISSON_NORMAL_ABOVE_MEAN x steps + 1 (stochastic rounding). */
export const POISSON_TABLE_MEANS = POISSON_NORMAL_ABOVE_MEAN * POISSON_GRID_STEPS_PER_PHOTON + 2;

export function poissonTables(): PoissonTables {
  if (poissonTableCache !== undefined) return poissonTableCache;
  const steps = POISSON_GRID_STEPS_PER_PHOTON;
  const means = POISSON_TABLE_MEANS;
  const bins = 1 << POISSON_GUIDE_BITS;
  const scale = 2 ** POISSON_UNIFORM_BITS;
  const offset = new Int32Array(means + 1);
  for (let j = 0; j < means; j++) {
    const m = j / steps;
    // Counts whose upper tail is below ~1e-15, plus the sentinel.
    offset[j + 1] = offset[j] + Math.ceil(m + 9 * Math.sqrt(m) + 12) + 1;
  }
  const cdf = new Int32Array(offset[means]);
  const guide = new Uint8Array(means * bins);
  for (let j = 0; j < means; j++) {
    const m = j / steps;
    const first = offset[j];
    const last = offset[j + 1] - 1;
    let p = Math.exp(-m);
    let sum = p;
    for (let k = 0; first + k < last; k++) {
      cdf[first + k] = Math.min(scale, Math.floor(sum * scale));
      p *= m / (k + 1);
      sum += p;
    }
    cdf[last] = 2 * scale; // sentinel: above every uniform
    let k = 0;
    for (let b = 0; b < bins; b++) {
      const start = b * (scale / bins);
      while (start >= cdf[first + k]) k++;
      guide[j * bins + b] = k;
    }
  }
  poissonTableCache = { guide, offset, cdf };
  return poissonTableCache;
}

/**
 * Poisson count for `mean` (< POISSON_NORMAL_ABOVE_MEAN) from a uniform 32-bit `word` (its top 24
 * bits are used) and a uniform `v` in [0, 1) that rounds the mean stochastically to its two neighbours
 * on the grid: the mixture has exactly the mean `mean` and a variance larger by at most
 * 1 / (4 x steps^2) = 2.4e-4 photons^2. expose-kernel.ts does the same steps in WebAssembly.
 */
export function poissonFromTables(mean: number, word: number, v: number): number {
  const { guide, offset, cdf } = poissonTables();
  const j = (mean * POISSON_GRID_STEPS_PER_PHOTON + v) | 0;
  const first = offset[j];
  const u = word >>> (32 - POISSON_UNIFORM_BITS);
  let k = guide[(j << POISSON_GUIDE_BITS) | (u >>> (POISSON_UNIFORM_BITS - POISSON_GUIDE_BITS))];
  while (u >= cdf[first + k]) k++;
  return k;
}

/** One Poisson draw from a `() => number` uniform source (for code off the hot path and tests). */
export function samplePoisson(mean: number, random: () => number): number {
  if (!(mean > 0)) return 0;
  if (mean < POISSON_NORMAL_ABOVE_MEAN)
    return poissonFromTables(mean, Math.floor(random() * 4294967296), random());
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
