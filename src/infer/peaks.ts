/**
 * Peak pixels to peaks: components from `labelComponents` (8-connected, per panel), then per
 * component a local background from a ring around it (the pixels within `ringPx` of its bounding box
 * that are on the same panel, good, and not peak pixels): median level and MAD noise. Intensity is
 * the sum above that level, the centroid is weighted by the value above it (CXI slab convention),
 * SNR = intensity / (noise * sqrt(pixels)): the PeakList every finder returns.
 */
import { labelComponents } from '../peaks/components.js';
import { createPeakList, type PeakList } from '../peaks/peak-list.js';
import { median } from '../util/stats.js';

export interface ComponentPeakOptions {
  minPixels: number;
  maxPeaks: number;
  /** Ring width around a component's bounding box for its background, pixels (default 3). */
  ringPx?: number;
}

/**
 * `peakPixels` (1 = peak pixel) over the slab; `image` the frame in ADU; `panelIndex` per slab
 * pixel; `goodPixels` (optional) 1 = good. `peakPixels` is left as it was.
 */
export function componentPeaks(
  peakPixels: Uint8Array,
  image: ArrayLike<number>,
  ssSize: number,
  fsSize: number,
  panelIndex: ArrayLike<number>,
  goodPixels: Uint8Array | undefined,
  options: ComponentPeakOptions,
): PeakList {
  const ringPx = options.ringPx ?? 3;
  const components = labelComponents(peakPixels.slice(), ssSize, fsSize, panelIndex);
  const peaks = createPeakList(Math.min(options.maxPeaks, components.count));
  const ring: number[] = [];
  for (let c = 0; c < components.count && peaks.count < options.maxPeaks; c++) {
    const from = components.start[c];
    const to = components.start[c + 1];
    const n = to - from;
    if (n < options.minPixels) continue;
    const first = components.pixels[from];
    const panel = panelIndex[first];
    let ssMin = ssSize;
    let ssMax = -1;
    let fsMin = fsSize;
    let fsMax = -1;
    for (let j = from; j < to; j++) {
      const p = components.pixels[j];
      const ss = Math.floor(p / fsSize);
      const fs = p - ss * fsSize;
      if (ss < ssMin) ssMin = ss;
      if (ss > ssMax) ssMax = ss;
      if (fs < fsMin) fsMin = fs;
      if (fs > fsMax) fsMax = fs;
    }
    ring.length = 0;
    for (let ss = Math.max(0, ssMin - ringPx); ss <= Math.min(ssSize - 1, ssMax + ringPx); ss++) {
      for (let fs = Math.max(0, fsMin - ringPx); fs <= Math.min(fsSize - 1, fsMax + ringPx); fs++) {
        const q = ss * fsSize + fs;
        if (peakPixels[q] || panelIndex[q] !== panel || (goodPixels !== undefined && !goodPixels[q]))
          continue;
        const v = image[q];
        if (Number.isFinite(v)) ring.push(v);
      }
    }
    let level = 0;
    let noise = 0;
    if (ring.length > 0) {
      level = median(ring);
      for (let i = 0; i < ring.length; i++) ring[i] = Math.abs(ring[i] - level);
      noise = 1.4826 * median(ring);
    }
    let sum = 0;
    let sumFs = 0;
    let sumSs = 0;
    let weightSum = 0;
    let plainFs = 0;
    let plainSs = 0;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = from; j < to; j++) {
      const p = components.pixels[j];
      const ss = Math.floor(p / fsSize);
      const fs = p - ss * fsSize;
      const above = image[p] - level;
      sum += above;
      plainFs += fs;
      plainSs += ss;
      if (above > 0) {
        sumFs += above * fs;
        sumSs += above * ss;
        weightSum += above;
      }
      if (image[p] > max) max = image[p];
    }
    const k = peaks.count++;
    // Nothing above the background (a model fooled by a flat patch): the plain centre of the pixels.
    peaks.fs[k] = weightSum > 0 ? sumFs / weightSum : plainFs / n;
    peaks.ss[k] = weightSum > 0 ? sumSs / weightSum : plainSs / n;
    peaks.totalIntensity[k] = sum;
    peaks.nPixels[k] = n;
    peaks.maxValue[k] = max;
    peaks.snr[k] = noise > 0 ? sum / (noise * Math.sqrt(n)) : 0;
  }
  return peaks;
}
