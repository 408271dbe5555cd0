/**
 * From a segmentation model's output to a peak list, as the reference system does it: per-pixel
 * argmax of the 2-class logits, 8-connected components of peak pixels, and each component's
 * intensity-weighted centre of mass on the original image (CXI slab convention).
 */
import { createPeakList, type PeakList } from './peak-list.js';

/**
 * `logits` is [2, ss, fs] (class 0 background, class 1 peak) for one frame; `image` is [ss, fs].
 * Components smaller than `minPixels` are dropped.
 */
export function segmentPeaks(
  logits: Float32Array,
  image: Float32Array,
  ssSize: number,
  fsSize: number,
  options: { minPixels?: number; maxPeaks?: number } = {},
): PeakList {
  const n = ssSize * fsSize;
  const minPixels = options.minPixels ?? 1;
  const maxPeaks = options.maxPeaks ?? 2048;
  const isPeak = new Uint8Array(n);
  for (let i = 0; i < n; i++) isPeak[i] = logits[n + i] > logits[i] ? 1 : 0;
  const stack = new Int32Array(n);
  const peaks = createPeakList(maxPeaks);
  for (let seed = 0; seed < n && peaks.count < maxPeaks; seed++) {
    if (!isPeak[seed]) continue;
    isPeak[seed] = 0;
    let top = 0;
    stack[top++] = seed;
    let pixels = 0;
    let sum = 0;
    let sumFs = 0;
    let sumSs = 0;
    let weightSum = 0;
    let max = Number.NEGATIVE_INFINITY;
    while (top > 0) {
      const p = stack[--top];
      const ss = Math.floor(p / fsSize);
      const fs = p - ss * fsSize;
      // Weights must be positive for a centre of mass; background-level pixels count a little.
      const value = image[p];
      const weight = Math.max(value, 1e-6);
      pixels++;
      sum += value;
      sumFs += weight * fs;
      sumSs += weight * ss;
      weightSum += weight;
      max = Math.max(max, value);
      for (let dss = -1; dss <= 1; dss++) {
        const s2 = ss + dss;
        if (s2 < 0 || s2 >= ssSize) continue;
        for (let dfs = -1; dfs <= 1; dfs++) {
          const f2 = fs + dfs;
          if (f2 < 0 || f2 >= fsSize) continue;
          const q = s2 * fsSize + f2;
          if (isPeak[q]) {
            isPeak[q] = 0;
            stack[top++] = q;
          }
        }
      }
    }
    if (pixels < minPixels) continue;
    const k = peaks.count++;
    peaks.fs[k] = sumFs / weightSum;
    peaks.ss[k] = sumSs / weightSum;
    peaks.totalIntensity[k] = sum;
    peaks.nPixels[k] = pixels;
    peaks.maxValue[k] = max;
  }
  return peaks;
}
