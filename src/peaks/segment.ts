/**
 * From a segmentation model's output to a peak list, as the reference system does it: per-pixel
 * argmax of the 2-class logits, 8-connected components of peak pixels (`labelComponents`), and each
 * component's intensity-weighted centre of mass on the original image (CXI slab convention).
 * `src/infer/peaks.ts` is the product's version (per panel, background-subtracted centroids, SNR);
 * this one is the reference system's plain rule, kept for the demo's comparisons.
 */
import { labelComponents } from './components.js';
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
  const components = labelComponents(isPeak, ssSize, fsSize);
  const peaks = createPeakList(maxPeaks);
  for (let c = 0; c < components.count && peaks.count < maxPeaks; c++) {
    const from = components.start[c];
    const to = components.start[c + 1];
    if (to - from < minPixels) continue;
    let sum = 0;
    let sumFs = 0;
    let sumSs = 0;
    let weightSum = 0;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = from; j < to; j++) {
      const p = components.pixels[j];
      const ss = Math.floor(p / fsSize);
      const fs = p - ss * fsSize;
      // Weights must be positive for a centre of mass; background-level pixels count a little.
      const value = image[p];
      const weight = Math.max(value, 1e-6);
      sum += value;
      sumFs += weight * fs;
      sumSs += weight * ss;
      weightSum += weight;
      max = Math.max(max, value);
    }
    const k = peaks.count++;
    peaks.fs[k] = sumFs / weightSum;
    peaks.ss[k] = sumSs / weightSum;
    peaks.totalIntensity[k] = sum;
    peaks.nPixels[k] = to - from;
    peaks.maxValue[k] = max;
  }
  return peaks;
}
