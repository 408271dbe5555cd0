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
  level: number;
  noise: number;
  quantum: number;
}

const QUANTUM_SAMPLE = 4096;

/** The good pixels of a tile, packed (reused between calls: tiles are prepared one at a time). */
let packed = new Float64Array(0);
let sorted = new Float64Array(0);

/** Sigma-clipped level and noise of `values` where `valid` is nonzero (the first `length` entries). */
export function tileStatistics(
  values: Float32Array,
  valid: Uint8Array,
  length: number,
  spec: Pick<Preprocessing, 'clipSigma' | 'clipIterations'>,
): TileStatistics {
  // Pack the good pixels once, in order: the clipping passes then skip padding and masked pixels
  // (half of a CSPAD ASIC's tile) and add the same values in the same order as a pass over the tile.
  if (packed.length < length) packed = new Float64Array(length);
  let count = 0;
  for (let i = 0; i < length; i++) if (valid[i]) packed[count++] = values[i];
  if (count === 0) return { level: 0, noise: 1, quantum: 0 };
  let lo = Number.NEGATIVE_INFINITY;
  let hi = Number.POSITIVE_INFINITY;
  let level = 0;
  let noise = 0;
  // Pixels inside the last clipping bounds: they set the quantum sample's stride.
  let kept = count;
  for (let iteration = 0; iteration <= spec.clipIterations; iteration++) {
    let sum = 0;
    let sumSq = 0;
    let n = 0;
    for (let k = 0; k < count; k++) {
      const v = packed[k];
      if (v < lo || v > hi) continue;
      sum += v;
      sumSq += v * v;
      n++;
    }
    if (n === 0) break;
    kept = n;
    level = sum / n;
    noise = Math.sqrt(Math.max(0, sumSq / n - level * level));
    lo = level - spec.clipSigma * noise;
    hi = level + spec.clipSigma * noise;
  }
  // The value quantum from an even sample of the good pixels: sorted, the smallest positive step.
  const stride = Math.max(1, Math.floor(kept / QUANTUM_SAMPLE));
  const samples = Math.ceil(count / stride);
  if (sorted.length < samples) sorted = new Float64Array(samples);
  for (let k = 0, j = 0; k < count; k += stride) sorted[j++] = packed[k];
  const sample = sorted.subarray(0, samples).sort();
  let quantum = Number.POSITIVE_INFINITY;
  for (let i = 1; i < sample.length; i++) {
    const step = sample[i] - sample[i - 1];
    if (step > 0 && step < quantum) quantum = step;
  }
  if (!Number.isFinite(quantum)) quantum = 0;
  noise = Math.max(noise, quantum / 2);
  // A constant tile: any positive scale gives the same all-zero input.
  if (!(noise > 0)) noise = 1;
  return { level, noise, quantum };
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
  for (let i = 0; i < length; i++) values[i] = valid[i] ? Math.asinh((values[i] - stats.level) * inv) : 0;
  return stats;
}
