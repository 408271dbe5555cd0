/**
 * A DIALS-style dispersion spot finder (the "index of dispersion" threshold of XDS and DIALS, Kabsch
 * 1988 / Parkhurst et al.), for comparing with DIALS' spot lists and for counting spots on simulated
 * frames "at DIALS' settings".
 *
 * For every good pixel, over the good pixels of its (2kx+1) x (2ky+1) window on the same panel
 * (n pixels, sum x, sum of squares y, in ADU; gain g in ADU per photon):
 *   - enough pixels: n >= minLocal (2), and a positive local mean;
 *   - background is not Poisson (dispersion test): var/mean > g (1 + nSigmaB sqrt(2 / (n - 1))),
 *     i.e. n y - x^2 - g x (n - 1) > g x nSigmaB sqrt(2 (n - 1));
 *   - the pixel is strong: I - mean > nSigmaS sqrt(g mean), i.e. n I - x > nSigmaS sqrt(g x n);
 *   - and I > globalThreshold.
 * Strong pixels are grouped into connected components (4-connected by default, as DIALS labels them);
 * components of minSpotSize..maxSpotSize pixels become spots at their intensity-weighted centroid.
 *
 * Only pixels above globalThreshold are tested. When a panel has few of them (the threshold above the
 * background, as in DIALS settings), their windows are summed directly; otherwise per-panel
 * summed-area tables give every window at O(1), so the cost stays O(pixels) whatever the window.
 * Positions follow CXI: slab pixels, 0.0 = centre of the first pixel.
 */
import { panelSlabRect } from '../detector/mask.js';
import type { PixelMaps } from '../detector/pixel-maps.js';
import { createPeakList, type PeakList } from './peak-list.js';
import type { Pf8Context } from './peakfinder8.js';

export interface DispersionParams {
  /** ADU per photon. */
  gain: number;
  /** Sigma multiples of the dispersion (background) and strong-pixel tests. */
  nSigmaB: number;
  nSigmaS: number;
  /** Half-sizes of the local window [fs, ss]: [3, 3] is 7 x 7. */
  kernelSize: [number, number];
  /** Pixels must exceed this, ADU. */
  globalThreshold: number;
  /** Fewest good pixels in a window for the tests to apply. */
  minLocal: number;
  /** Spot size limits, pixels. */
  minSpotSize: number;
  maxSpotSize: number;
  /** 4 (DIALS) or 8-connected components. */
  connectivity: 4 | 8;
  /** Stop after this many spots. */
  maxNumPeaks: number;
}

/** DIALS' defaults (dispersion threshold, gain 1). */
export const defaultDispersionParams: Readonly<DispersionParams> = Object.freeze({
  gain: 1,
  nSigmaB: 6,
  nSigmaS: 3,
  kernelSize: [3, 3] as [number, number],
  globalThreshold: 0,
  minLocal: 2,
  minSpotSize: 2,
  maxSpotSize: 1000,
  connectivity: 4 as const,
  maxNumPeaks: 2048,
});

/** What the finder needs per geometry and mask; reused across frames (one frame at a time). */
export interface DispersionContext {
  readonly ssSize: number;
  readonly fsSize: number;
  /** 1 = good. */
  readonly mask: Uint8Array;
  /** Panel rectangles, 4 ints each: ss0, ss1, fs0, fs1 (inclusive). */
  readonly panelRects: Int32Array;
  readonly strong: Uint8Array;
  readonly sumTable: Float64Array;
  readonly sumSqTable: Float64Array;
  readonly countTable: Int32Array;
  readonly stack: Int32Array;
}

/** Builds a context from pixel maps and a mask (1 = good), or reuses a peakfinder8 context's. */
export function createDispersionContext(
  source: PixelMaps | Pf8Context,
  mask?: Uint8Array,
): DispersionContext {
  let panelRects: Int32Array;
  let good: Uint8Array;
  let ssSize: number;
  let fsSize: number;
  if ('panelRects' in source) {
    panelRects = source.panelRects;
    good = mask ?? source.mask;
    ssSize = source.ssSize;
    fsSize = source.fsSize;
  } else {
    ssSize = source.ssSize;
    fsSize = source.fsSize;
    const rects: number[] = [];
    for (let p = 0; p < source.geometry.panels.length; p++) {
      const rect = panelSlabRect(source, p);
      rects.push(rect.ss0, rect.ss1, rect.fs0, rect.fs1);
    }
    panelRects = Int32Array.from(rects);
    good = new Uint8Array(ssSize * fsSize);
    for (let i = 0; i < good.length; i++)
      good[i] = source.panelIndex[i] >= 0 && (mask === undefined || mask[i] !== 0) ? 1 : 0;
  }
  if (good.length !== ssSize * fsSize)
    throw new Error(`mask has ${good.length} pixels, the slab has ${ssSize * fsSize}`);
  let largestTable = 1;
  let largestPanel = 1;
  for (let r = 0; r < panelRects.length; r += 4) {
    const h = panelRects[r + 1] - panelRects[r] + 1;
    const w = panelRects[r + 3] - panelRects[r + 2] + 1;
    largestTable = Math.max(largestTable, (h + 1) * (w + 1));
    largestPanel = Math.max(largestPanel, h * w);
  }
  return {
    ssSize,
    fsSize,
    mask: good,
    panelRects,
    strong: new Uint8Array(ssSize * fsSize),
    sumTable: new Float64Array(largestTable),
    sumSqTable: new Float64Array(largestTable),
    countTable: new Int32Array(largestTable),
    stack: new Int32Array(largestPanel),
  };
}

/**
 * Marks the strong pixels of one panel in ctx.strong. Only pixels above globalThreshold can be strong:
 * when they are few (the usual case: the threshold sits above the background), their windows are
 * summed directly; otherwise summed-area tables give every window at O(1).
 */
function thresholdPanel(
  image: ArrayLike<number>,
  ctx: DispersionContext,
  ss0: number,
  ss1: number,
  fs0: number,
  fs1: number,
  params: DispersionParams,
): void {
  const { fsSize, mask, strong, stack } = ctx;
  const { globalThreshold } = params;
  const [kf, ks] = params.kernelSize;
  // The candidates (stack is free until the spots are grouped) and whether listing them is worth it.
  const windowPixels = (2 * kf + 1) * (2 * ks + 1);
  const panelPixels = (ss1 - ss0 + 1) * (fs1 - fs0 + 1);
  const limit = Math.floor((4 * panelPixels) / windowPixels);
  let nCandidates = 0;
  for (let ss = ss0; ss <= ss1 && nCandidates <= limit; ss++) {
    const row = ss * fsSize;
    for (let i = row + fs0; i <= row + fs1; i++) {
      const v = image[i];
      if (v > globalThreshold && v !== Number.POSITIVE_INFINITY && mask[i] !== 0) {
        if (nCandidates === limit) {
          nCandidates++;
          break;
        }
        stack[nCandidates++] = i;
      }
    }
  }
  if (nCandidates > limit) {
    thresholdPanelWithTables(image, ctx, ss0, ss1, fs0, fs1, params);
    return;
  }
  for (let c = 0; c < nCandidates; c++) {
    const i = stack[c];
    const ss = (i / fsSize) | 0;
    const fs = i - ss * fsSize;
    const sTop = Math.max(ss - ks, ss0);
    const sBottom = Math.min(ss + ks, ss1);
    const fLeft = Math.max(fs - kf, fs0);
    const fRight = Math.min(fs + kf, fs1);
    let n = 0;
    let x = 0;
    let y = 0;
    for (let s = sTop; s <= sBottom; s++) {
      const row = s * fsSize;
      for (let j = row + fLeft; j <= row + fRight; j++) {
        const w = image[j];
        // Bad and non-finite pixels are left out of every window.
        if (mask[j] !== 0 && w - w === 0) {
          n++;
          x += w;
          y += w * w;
        }
      }
    }
    if (isStrong(image[i], n, x, y, params)) strong[i] = 1;
  }
}

/** The dispersion and strong-pixel tests for a pixel of value v whose window has n good pixels, sum x, sum of squares y. */
function isStrong(v: number, n: number, x: number, y: number, params: DispersionParams): boolean {
  if (n < params.minLocal || !(x > 0)) return false;
  const { gain, nSigmaB, nSigmaS } = params;
  const dispersion = n * y - x * x - gain * x * (n - 1);
  const dispersionBound = gain * x * nSigmaB * Math.sqrt(2 * (n - 1));
  const excess = n * v - x;
  const strongBound = nSigmaS * Math.sqrt(gain * x * n);
  return dispersion > dispersionBound && excess > strongBound;
}

/** thresholdPanel through summed-area tables (many pixels above globalThreshold). */
function thresholdPanelWithTables(
  image: ArrayLike<number>,
  ctx: DispersionContext,
  ss0: number,
  ss1: number,
  fs0: number,
  fs1: number,
  params: DispersionParams,
): void {
  const { fsSize, mask, strong, sumTable, sumSqTable, countTable } = ctx;
  const h = ss1 - ss0 + 1;
  const w = fs1 - fs0 + 1;
  const stride = w + 1;
  // Summed-area tables with a zero first row and column: T[s+1][f+1] = sum over [0..s] x [0..f].
  for (let f = 0; f <= w; f++) {
    sumTable[f] = 0;
    sumSqTable[f] = 0;
    countTable[f] = 0;
  }
  for (let s = 0; s < h; s++) {
    let rowSum = 0;
    let rowSumSq = 0;
    let rowCount = 0;
    const src = (ss0 + s) * fsSize + fs0;
    const above = s * stride;
    const here = above + stride;
    sumTable[here] = 0;
    sumSqTable[here] = 0;
    countTable[here] = 0;
    for (let f = 0; f < w; f++) {
      const i = src + f;
      const v = image[i];
      // Bad and non-finite pixels are left out of every window.
      if (mask[i] !== 0 && v - v === 0) {
        rowSum += v;
        rowSumSq += v * v;
        rowCount++;
      }
      sumTable[here + f + 1] = sumTable[above + f + 1] + rowSum;
      sumSqTable[here + f + 1] = sumSqTable[above + f + 1] + rowSumSq;
      countTable[here + f + 1] = countTable[above + f + 1] + rowCount;
    }
  }
  const [kf, ks] = params.kernelSize;
  const { globalThreshold, minLocal } = params;
  for (let s = 0; s < h; s++) {
    const top = Math.max(0, s - ks) * stride;
    const bottom = (Math.min(h - 1, s + ks) + 1) * stride;
    const row = (ss0 + s) * fsSize + fs0;
    for (let f = 0; f < w; f++) {
      const i = row + f;
      strong[i] = 0;
      const v = image[i];
      if (mask[i] === 0 || !(v > globalThreshold) || v === Number.POSITIVE_INFINITY) continue;
      const left = Math.max(0, f - kf);
      const right = Math.min(w - 1, f + kf) + 1;
      const n =
        countTable[bottom + right] -
        countTable[top + right] -
        countTable[bottom + left] +
        countTable[top + left];
      if (n < minLocal) continue;
      const x =
        sumTable[bottom + right] - sumTable[top + right] - sumTable[bottom + left] + sumTable[top + left];
      if (!(x > 0)) continue;
      const y =
        sumSqTable[bottom + right] -
        sumSqTable[top + right] -
        sumSqTable[bottom + left] +
        sumSqTable[top + left];
      if (isStrong(v, n, x, y, params)) strong[i] = 1;
    }
  }
}

/** Strong-pixel mask of a frame (1 = strong), for inspection and tests; shares ctx.strong. */
export function dispersionMask(
  image: ArrayLike<number>,
  ctx: DispersionContext,
  params: DispersionParams = defaultDispersionParams,
): Uint8Array {
  const size = ctx.ssSize * ctx.fsSize;
  if (image.length !== size) throw new Error(`image has ${image.length} pixels, the slab has ${size}`);
  ctx.strong.fill(0);
  const rects = ctx.panelRects;
  for (let r = 0; r < rects.length; r += 4)
    thresholdPanel(image, ctx, rects[r], rects[r + 1], rects[r + 2], rects[r + 3], params);
  return ctx.strong;
}

/**
 * Spots of one frame ([ss * fs], fs fastest). `totalIntensity` is the sum of the spot's pixel values
 * (DIALS' raw spot intensity), `maxValue` its brightest pixel, `snr` 0 (not computed).
 */
export function dispersionSpots(
  image: ArrayLike<number>,
  ctx: DispersionContext,
  params: DispersionParams = defaultDispersionParams,
): PeakList {
  const strong = dispersionMask(image, ctx, params);
  const { fsSize, panelRects, stack } = ctx;
  const eight = params.connectivity === 8;
  const fsList: number[] = [];
  const ssList: number[] = [];
  const totals: number[] = [];
  const sizes: number[] = [];
  const maxima: number[] = [];
  for (let r = 0; r < panelRects.length && fsList.length < params.maxNumPeaks; r += 4) {
    const ss0 = panelRects[r];
    const ss1 = panelRects[r + 1];
    const fs0 = panelRects[r + 2];
    const fs1 = panelRects[r + 3];
    for (let ss = ss0; ss <= ss1 && fsList.length < params.maxNumPeaks; ss++) {
      for (let fs = fs0; fs <= fs1; fs++) {
        const seed = ss * fsSize + fs;
        if (strong[seed] !== 1) continue;
        // Flood fill within the panel; visited pixels become 2.
        strong[seed] = 2;
        let top = 0;
        stack[top++] = seed;
        let count = 0;
        let sum = 0;
        let sumFs = 0;
        let sumSs = 0;
        let max = Number.NEGATIVE_INFINITY;
        while (top > 0) {
          const p = stack[--top];
          const ps = (p / fsSize) | 0;
          const pf = p - ps * fsSize;
          const v = image[p];
          count++;
          sum += v;
          sumFs += v * pf;
          sumSs += v * ps;
          if (v > max) max = v;
          for (let ds = -1; ds <= 1; ds++) {
            const s = ps + ds;
            if (s < ss0 || s > ss1) continue;
            for (let df = -1; df <= 1; df++) {
              if (ds === 0 && df === 0) continue;
              if (!eight && ds !== 0 && df !== 0) continue;
              const f = pf + df;
              if (f < fs0 || f > fs1) continue;
              const q = s * fsSize + f;
              if (strong[q] === 1) {
                strong[q] = 2;
                stack[top++] = q;
              }
            }
          }
        }
        if (count < params.minSpotSize || count > params.maxSpotSize || !(sum > 0)) continue;
        fsList.push(sumFs / sum);
        ssList.push(sumSs / sum);
        totals.push(sum);
        sizes.push(count);
        maxima.push(max);
        if (fsList.length >= params.maxNumPeaks) break;
      }
    }
  }
  const out = createPeakList(fsList.length);
  out.count = fsList.length;
  out.fs.set(fsList);
  out.ss.set(ssList);
  out.totalIntensity.set(totals);
  out.nPixels.set(sizes);
  out.maxValue.set(maxima);
  return out;
}
