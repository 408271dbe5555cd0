/**
 * What the model sees of a panel tile, with no per-detector setting: detectors differ by orders of
 * magnitude in ADU per photon (a Pilatus counts 1 per photon, a CSPAD ~8 raw ADU, a Jungfrau in keV
 * units ~10), and in pedestal. Per tile, from the good pixels only:
 *
 *   level, noise  = mean and standard deviation after sigma clipping (the background, not the spots)
 *   noise         = max(noise, quantum / 2), quantum = the smallest step between distinct values
 *   input         = asinh((x - level) / noise), 0 at masked and padding pixels
 *
 * Multiplying a frame by a gain or adding a pedestal leaves the input unchanged (level, noise and
 * quantum all follow), so raw ADU go in as they are. The quantum floor is for photon-counting
 * detectors: at 0.05 photons per pixel most pixels read 0, the clipped spread collapses, and one
 * photon would look like hundreds of sigmas; with the floor one photon is two "sigmas" and a Bragg
 * spot of tens of photons tens. asinh keeps noise linear and compresses spots of thousands of photons
 * logarithmically, so saturated pixels and hot pixels do not set the scale.
 */
import type { Preprocessing } from './model-file.js';

export interface TileStatistics {
  /** Background level (clipped mean), in the tile's units. */
  level: number;
  /** Clipped standard deviation, floored at half the value quantum; 1 for a constant tile. */
  noise: number;
}

const QUANTUM_SAMPLE = 4096;

/**
 * The good pixels of a tile, packed (reused between calls: tiles are prepared one at a time). Float32
 * like the tile itself: the same values in half the memory of a Float64Array, and the clipping
 * passes' sums are still taken in double precision.
 */
let packed = new Float32Array(0);
let sorted = new Float32Array(0);

/** Sigma-clipped level and noise of `values` where `valid` is nonzero (the first `length` entries). */
export function tileStatistics(
  values: Float32Array,
  valid: Uint8Array,
  length: number,
  spec: Pick<Preprocessing, 'clipSigma' | 'clipIterations'>,
): TileStatistics {
  // Pack the good pixels once, in order: the clipping passes then skip padding and masked pixels
  // (half of a CSPAD ASIC's tile).
  if (packed.length < length) packed = new Float32Array(length);
  let count = 0;
  for (let i = 0; i < length; i++) {
    // Branch-free: write every pixel, advance only over good ones (a third of a CSPAD ASIC's tile
    // is padding, in long runs, but masked pixels are scattered and mispredict a branch).
    packed[count] = values[i];
    count += valid[i] !== 0 ? 1 : 0;
  }
  if (count === 0) return { level: 0, noise: 1 };
  let lo = Number.NEGATIVE_INFINITY;
  let hi = Number.POSITIVE_INFINITY;
  let level = 0;
  let noise = 0;
  // Pixels inside the last clipping bounds: they set the quantum sample's stride.
  let kept = count;
  const even = count & ~1;
  for (let iteration = 0; iteration <= spec.clipIterations; iteration++) {
    // Two interleaved accumulator pairs: each add waits on the one before it in its own chain only,
    // which halves the pass's latency-bound time (the pass is a few adds per pixel).
    let sum0 = 0;
    let sumSq0 = 0;
    let n0 = 0;
    let sum1 = 0;
    let sumSq1 = 0;
    let n1 = 0;
    for (let k = 0; k < even; k += 2) {
      const v = packed[k];
      const w = packed[k + 1];
      if (v >= lo && v <= hi) {
        sum0 += v;
        sumSq0 += v * v;
        n0++;
      }
      if (w >= lo && w <= hi) {
        sum1 += w;
        sumSq1 += w * w;
        n1++;
      }
    }
    if (even < count) {
      const v = packed[even];
      if (v >= lo && v <= hi) {
        sum0 += v;
        sumSq0 += v * v;
        n0++;
      }
    }
    const n = n0 + n1;
    if (n === 0) break;
    kept = n;
    level = (sum0 + sum1) / n;
    noise = Math.sqrt(Math.max(0, (sumSq0 + sumSq1) / n - level * level));
    lo = level - spec.clipSigma * noise;
    hi = level + spec.clipSigma * noise;
  }
  // The value quantum only matters where it floors the noise: where the smallest positive step
  // between good values exceeds 2 x noise (integer counts at well under a photon per pixel).
  const floor = quantumFloor(packed, count, kept, level, noise);
  noise = Math.max(noise, floor / 2);
  // A constant tile: any positive scale gives the same all-zero input.
  if (!(noise > 0)) noise = 1;
  return { level, noise };
}

const PAIR_BINS = 16;
const pairBins = new Float64Array(PAIR_BINS);

/**
 * The value quantum of `packed[0..count)` where it exceeds 2 x `noise`, else 0 (it sets no floor):
 * the smallest positive step between the values of an even sample, sorted. The sort is skipped when
 * two different sample values fall in one bin of width 2 x noise near the level: a step of at most
 * 2 x noise exists, so the floor cannot bind (continuous data, and counts with noise above half a
 * count, the common cases, find such a pair within a few samples).
 */
function quantumFloor(
  packed: Float32Array,
  count: number,
  kept: number,
  level: number,
  noise: number,
): number {
  const stride = Math.max(1, Math.floor(kept / QUANTUM_SAMPLE));
  if (noise > 0) {
    const width = 2 * noise;
    const first = level - (PAIR_BINS / 2) * width;
    pairBins.fill(Number.NaN);
    for (let k = 0; k < count; k += stride) {
      const v = packed[k];
      const bin = Math.floor((v - first) / width);
      if (!(bin >= 0 && bin < PAIR_BINS)) continue;
      const seen = pairBins[bin];
      if (Number.isNaN(seen)) pairBins[bin] = v;
      else if (seen !== v) return 0;
    }
  }
  const samples = Math.ceil(count / stride);
  if (sorted.length < samples) sorted = new Float32Array(samples);
  for (let k = 0, j = 0; k < count; k += stride) sorted[j++] = packed[k];
  const sample = sorted.subarray(0, samples).sort();
  let quantum = Number.POSITIVE_INFINITY;
  for (let i = 1; i < sample.length; i++) {
    const step = sample[i] - sample[i - 1];
    if (step > 0 && step < quantum) quantum = step;
  }
  return Number.isFinite(quantum) ? quantum : 0;
}

/** asinh on [0, ASINH_TABLE_MAX) from a table of values and slopes every 1/64 (cubic Hermite). */
const ASINH_TABLE_MAX = 8;
const ASINH_STEPS_PER_UNIT = 64;
const ASINH_VALUE = new Float64Array(ASINH_TABLE_MAX * ASINH_STEPS_PER_UNIT + 2);
/** The slope times the step, as the Hermite basis takes it. */
const ASINH_SLOPE = new Float64Array(ASINH_VALUE.length);
for (let j = 0; j < ASINH_VALUE.length; j++) {
  const m = j / ASINH_STEPS_PER_UNIT;
  ASINH_VALUE[j] = Math.asinh(m);
  ASINH_SLOPE[j] = 1 / ASINH_STEPS_PER_UNIT / Math.sqrt(1 + m * m);
}

/**
 * asinh(a) for the model's input, within one float32 rounding step of Math.asinh and 3-4 times
 * faster in V8 (the logarithm is the cost, and a tile is 65,536 of them): below 8 (the background,
 * nearly every pixel) cubic Hermite interpolation of a table (error < 1e-9), above it ln(a + sqrt(a^2
 * + 1)); odd.
 */
export function fastAsinh(a: number): number {
  const m = a < 0 ? -a : a;
  let r: number;
  if (m < ASINH_TABLE_MAX) {
    const u = m * ASINH_STEPS_PER_UNIT;
    const j = u | 0;
    const t = u - j;
    const t2 = t * t;
    const t3 = t2 * t;
    r =
      (2 * t3 - 3 * t2 + 1) * ASINH_VALUE[j] +
      (t3 - 2 * t2 + t) * ASINH_SLOPE[j] +
      (3 * t2 - 2 * t3) * ASINH_VALUE[j + 1] +
      (t3 - t2) * ASINH_SLOPE[j + 1];
  } else r = Math.log(m + Math.sqrt(m * m + 1));
  return a < 0 ? -r : r;
}

/**
 * In place: `values[i]` becomes the model input of pixel i (0 where `valid` is 0), over the first
 * `length` entries; returns the statistics used.
 */
export function preprocessTile(
  values: Float32Array,
  valid: Uint8Array,
  length: number,
  spec: Preprocessing,
): TileStatistics {
  const stats = tileStatistics(values, valid, length, spec);
  const inv = 1 / stats.noise;
  const { level } = stats;
  for (let i = 0; i < length; i++) values[i] = valid[i] ? fastAsinh((values[i] - level) * inv) : 0;
  return stats;
}
