/**
 * peakfinder8: the radial-statistics peak finder of Cheetah, OnDA Monitor and CrystFEL, with the same
 * semantics (options named as indexamajig's, same defaults):
 *
 * 1. Every good pixel falls in the radial bin of its rounded distance from the beam axis (pixels).
 *    Five iterations of per-bin mean and sigma over the pixels inside (mean - minSnr*sigma,
 *    threshold) give each bin a background offset and a threshold max(mean + minSnr*sigma, adcThreshold).
 * 2. Seeds are scanned panel by panel (skipping each panel's 1-pixel border); an 8-connected flood fill
 *    over pixels above their bin's threshold, within the panel, grows the peak. A peak with fewer than
 *    minPixCount or more than maxPixCount pixels is dropped (its pixels stay claimed, as in the C code).
 * 3. A local background ring around the rounded first-pass centroid (offsets in [-2R, 2R) with length
 *    <= 2R, R = localBgRadius, on the same panel, good, not claimed by a peak, under threshold) gives an
 *    offset, sigma and maximum. The peak is re-integrated above that offset: total, maximum, centroid
 *    weighted by the raw pixel values, SNR = total / sigma. A peak is dropped on SNR < minSnr, on a
 *    maximum below (ring maximum - offset), or on a centroid off its panel.
 * 4. Scanning stops at maxNumPeaks peaks (the first ones found, like the C code, not the strongest).
 *
 * Bad pixels (mask 0), pixels outside (minResPx, maxResPx) and NaN/Inf pixels take no part in anything.
 *
 * Speed: a context precomputes, per geometry and mask, each pixel's bin and the good pixels ordered by
 * bin, so the five statistics passes run per bin over a short contiguous buffer; all scratch is
 * reused across frames, and nothing is allocated per pixel.
 *
 * Positions follow CXI: slab pixels, 0.0 = centre of the first pixel (the C code's integer pixel index,
 * to which CrystFEL adds 0.5 for its own convention).
 */
import { panelSlabRect } from '../detector/mask.js';
import type { PixelMaps } from '../detector/pixel-maps.js';
import { createPeakList, type PeakList } from './peak-list.js';

export interface Pf8Params {
  /** Minimum threshold of every radial bin, ADU (indexamajig `--threshold`). */
  adcThreshold: number;
  /** Sigma multiple of the radial threshold, and minimum peak SNR (`--min-snr`). */
  minSnr: number;
  /** Peak size limits in pixels (`--min-pix-count`, `--max-pix-count`). */
  minPixCount: number;
  maxPixCount: number;
  /** Local background: ring of radius 2 x this, pixels (`--local-bg-radius`). */
  localBgRadius: number;
  /** Only pixels with minResPx < radius < maxResPx from the beam axis, pixels (`--min-res`, `--max-res`). */
  minResPx: number;
  maxResPx: number;
  /** Stop after this many peaks (`--max-peaks`). */
  maxNumPeaks: number;
}

export const defaultPf8Params: Readonly<Pf8Params> = Object.freeze({
  adcThreshold: 800,
  minSnr: 5,
  minPixCount: 2,
  maxPixCount: 200,
  localBgRadius: 3,
  minResPx: 0,
  maxResPx: Number.POSITIVE_INFINITY,
  maxNumPeaks: 2048,
});

/** The C code's bounds: initial thresholds, and what an empty bin gets (FLT_MAX, FLT_MIN). */
const initialUpper = 1e9;
const initialLower = -1e9;
const FLT_MAX = 3.4028234663852886e38;
const FLT_MIN = 1.1754943508222875e-38;
const statsIterations = 5;

/** Bin indices of the binned pixels and everything derived from the resolution limits. */
interface BinLayout {
  minResPx: number;
  maxResPx: number;
  /** Bin of each slab pixel; `maskedBin` for pixels that take no part. */
  binOf: Uint16Array | Uint32Array;
  /** Where each binned pixel goes in the bin-ordered buffer (bins in turn, ascending index within a bin); -1 if none. */
  position: Int32Array;
  /** Start of each bin in that buffer (length nBins + 1). */
  binStart: Int32Array;
}

export interface Pf8Context {
  readonly maps: PixelMaps;
  readonly ssSize: number;
  readonly fsSize: number;
  /** The mask the context was made with (1 = good), slab layout. */
  readonly mask: Uint8Array;
  /** Radial bins 0..nBins-1; bin `nBins` is the masked sentinel (threshold +Infinity). */
  readonly nBins: number;
  /** Panel rectangles, 4 ints each: ss0, ss1, fs0, fs1 (inclusive); panels without good pixels are left out. */
  readonly panelRects: Int32Array;
  layout: BinLayout | undefined;
  /** Per-bin statistics of the last frame (length nBins + 1). */
  readonly binOffset: Float64Array;
  readonly binThreshold: Float64Array;
  // Scratch, reused across frames.
  readonly values: Float32Array;
  readonly floatImage: Float32Array;
  readonly claimed: Uint8Array;
  readonly queueIndex: Int32Array;
  readonly queueFs: Int32Array;
  readonly queueSs: Int32Array;
  nonFinite: Int32Array;
  ringCache: Map<number, Int32Array>;
}

/**
 * Precomputes what peakfinder8 needs for one geometry and mask (1 = good, e.g. `geometryMask` or
 * `buildMask`); pass the same context for every frame of the run.
 */
export function createPf8Context(maps: PixelMaps, mask?: Uint8Array): Pf8Context {
  const size = maps.ssSize * maps.fsSize;
  if (mask !== undefined && mask.length !== size)
    throw new Error(`mask has ${mask.length} pixels, the slab has ${size}`);
  const good = new Uint8Array(size);
  let maxRadius = 0;
  for (let i = 0; i < size; i++) {
    const r = maps.radiusPx[i];
    if (maps.panelIndex[i] < 0 || !Number.isFinite(r) || (mask !== undefined && mask[i] === 0)) continue;
    good[i] = 1;
    if (r > maxRadius) maxRadius = r;
  }
  const nBins = Math.round(maxRadius) + 1;
  const rects: number[] = [];
  let largestPanel = 1;
  for (let p = 0; p < maps.geometry.panels.length; p++) {
    const rect = panelSlabRect(maps, p);
    let any = false;
    for (let ss = rect.ss0; ss <= rect.ss1 && !any; ss++) {
      const row = ss * maps.fsSize;
      for (let fs = rect.fs0; fs <= rect.fs1; fs++) {
        if (good[row + fs]) {
          any = true;
          break;
        }
      }
    }
    if (!any) continue;
    rects.push(rect.ss0, rect.ss1, rect.fs0, rect.fs1);
    largestPanel = Math.max(largestPanel, (rect.ss1 - rect.ss0 + 1) * (rect.fs1 - rect.fs0 + 1));
  }
  return {
    maps,
    ssSize: maps.ssSize,
    fsSize: maps.fsSize,
    mask: good,
    nBins,
    panelRects: Int32Array.from(rects),
    layout: undefined,
    binOffset: new Float64Array(nBins + 1),
    binThreshold: new Float64Array(nBins + 1),
    values: new Float32Array(size),
    floatImage: new Float32Array(size),
    claimed: new Uint8Array(size),
    queueIndex: new Int32Array(largestPanel),
    queueFs: new Int32Array(largestPanel),
    queueSs: new Int32Array(largestPanel),
    nonFinite: new Int32Array(64),
    ringCache: new Map(),
  };
}

/** Bins and bin order for the resolution limits (rebuilt only when they change). */
function binLayoutFor(ctx: Pf8Context, minResPx: number, maxResPx: number): BinLayout {
  const cached = ctx.layout;
  if (cached !== undefined && cached.minResPx === minResPx && cached.maxResPx === maxResPx) return cached;
  const { nBins, mask } = ctx;
  const radius = ctx.maps.radiusPx;
  const size = mask.length;
  const binOf = nBins < 65535 ? new Uint16Array(size) : new Uint32Array(size);
  const counts = new Int32Array(nBins + 1);
  for (let i = 0; i < size; i++) {
    const r = radius[i];
    // As the C code: a pixel takes part when min_res < r < max_res.
    if (mask[i] === 0 || !(r > minResPx && r < maxResPx)) {
      binOf[i] = nBins;
      continue;
    }
    const bin = Math.round(r);
    binOf[i] = bin;
    counts[bin]++;
  }
  const binStart = new Int32Array(nBins + 1);
  for (let b = 0; b < nBins; b++) binStart[b + 1] = binStart[b] + counts[b];
  const position = new Int32Array(size).fill(-1);
  const fill = binStart.slice(0, nBins);
  for (let i = 0; i < size; i++) {
    const b = binOf[i];
    if (b !== nBins) position[i] = fill[b]++;
  }
  const layout = { minResPx, maxResPx, binOf, position, binStart };
  ctx.layout = layout;
  return layout;
}

/** Ring offsets (dfs, dss pairs) for a background radius: [-2R, 2R) in each axis, length <= 2R. */
function ringOffsets(ctx: Pf8Context, localBgRadius: number): Int32Array {
  let ring = ctx.ringCache.get(localBgRadius);
  if (ring === undefined) {
    const width = 2 * localBgRadius;
    const pairs: number[] = [];
    for (let dss = -width; dss < width; dss++) {
      for (let dfs = -width; dfs < width; dfs++) {
        if (Math.sqrt(dfs * dfs + dss * dss) <= width) pairs.push(dfs, dss);
      }
    }
    ring = Int32Array.from(pairs);
    ctx.ringCache.set(localBgRadius, ring);
  }
  return ring;
}

/**
 * Per-bin offset and threshold of one frame from the values gathered by bin: 5 sigma-clipping
 * iterations, as the C code (the upper cut of each iteration is already raised to adcThreshold, and an
 * emptied bin gets FLT_MAX / FLT_MIN). Stops early once an iteration keeps the same pixels as the one
 * before, which changes nothing: the later iterations would repeat it.
 */
function radialStatistics(ctx: Pf8Context, layout: BinLayout, minSnr: number, adcThreshold: number): void {
  const { binStart } = layout;
  const { values, binOffset, binThreshold, nBins } = ctx;
  for (let b = 0; b < nBins; b++) {
    const start = binStart[b];
    const end = binStart[b + 1];
    let upper = initialUpper;
    let lower = initialLower;
    let offset = 0;
    let lastSum = Number.NaN;
    let lastSumSq = Number.NaN;
    let lastCount = -1;
    for (let iteration = 0; iteration < statsIterations; iteration++) {
      // Branch-free (pixels fall on both sides of a cut at random), two accumulators for throughput.
      let sumA = 0;
      let sumB = 0;
      let sumSqA = 0;
      let sumSqB = 0;
      let countA = 0;
      let countB = 0;
      let k = start;
      for (; k + 1 < end; k += 2) {
        const a = values[k];
        const inA = (a < upper ? 1 : 0) & (a > lower ? 1 : 0);
        const wa = inA * a;
        sumA += wa;
        sumSqA += wa * a;
        countA += inA;
        const b = values[k + 1];
        const inB = (b < upper ? 1 : 0) & (b > lower ? 1 : 0);
        const wb = inB * b;
        sumB += wb;
        sumSqB += wb * b;
        countB += inB;
      }
      if (k < end) {
        const a = values[k];
        const inA = (a < upper ? 1 : 0) & (a > lower ? 1 : 0);
        sumA += inA * a;
        sumSqA += inA * a * a;
        countA += inA;
      }
      const sum = sumA + sumB;
      const sumSq = sumSqA + sumSqB;
      const count = countA + countB;
      // The same pixels as last time give the same cuts: the remaining iterations would change nothing.
      if (count === lastCount && sum === lastSum && sumSq === lastSumSq) break;
      lastCount = count;
      lastSum = sum;
      lastSumSq = sumSq;
      if (count === 0) {
        offset = 0;
        upper = FLT_MAX;
        lower = FLT_MIN;
      } else {
        offset = sum / count;
        const variance = sumSq / count - offset * offset;
        const sigma = variance > 0 ? Math.sqrt(variance) : 0;
        upper = offset + minSnr * sigma;
        lower = offset - minSnr * sigma;
        if (upper < adcThreshold) upper = adcThreshold;
      }
    }
    binOffset[b] = offset;
    binThreshold[b] = upper;
  }
  binOffset[nBins] = 0;
  binThreshold[nBins] = Number.POSITIVE_INFINITY;
}

/**
 * Copies the binned pixels into `ctx.values` in bin order (a scatter: the image is read in order) and
 * lists the NaN/Inf ones in `ctx.nonFinite`; returns how many there are.
 */
function gatherByBin(ctx: Pf8Context, image: Float32Array, layout: BinLayout): number {
  const { position } = layout;
  const { values } = ctx;
  let nonFinite = 0;
  for (let i = 0; i < image.length; i++) {
    const p = position[i];
    if (p < 0) continue;
    const v = image[i];
    values[p] = v;
    if (v - v !== 0) {
      // Never inside a cut (every upper cut is <= FLT_MAX and strict), and 0 * FLT_MAX = 0.
      values[p] = FLT_MAX;
      if (nonFinite === ctx.nonFinite.length) {
        const grown = new Int32Array(nonFinite * 2);
        grown.set(ctx.nonFinite);
        ctx.nonFinite = grown;
      }
      ctx.nonFinite[nonFinite++] = i;
    }
  }
  return nonFinite;
}

function asFloat32(ctx: Pf8Context, image: ArrayLike<number>): Float32Array {
  if (image instanceof Float32Array) return image;
  const out = ctx.floatImage;
  for (let i = 0; i < out.length; i++) out[i] = image[i];
  return out;
}

/** Output columns while scanning; copied into an exact-size list at the end. */
interface Found {
  count: number;
  list: PeakList;
}

function pushPeak(
  found: Found,
  fs: number,
  ss: number,
  total: number,
  snr: number,
  nPixels: number,
  max: number,
): void {
  let list = found.list;
  if (found.count === list.fs.length) {
    const grown = createPeakList(Math.max(16, list.fs.length * 2));
    grown.fs.set(list.fs);
    grown.ss.set(list.ss);
    grown.totalIntensity.set(list.totalIntensity);
    grown.snr.set(list.snr);
    grown.nPixels.set(list.nPixels);
    grown.maxValue.set(list.maxValue);
    found.list = grown;
    list = grown;
  }
  const k = found.count++;
  list.fs[k] = fs;
  list.ss[k] = ss;
  list.totalIntensity[k] = total;
  list.snr[k] = snr;
  list.nPixels[k] = nPixels;
  list.maxValue[k] = max;
}

/**
 * Finds the peaks of one frame ([ss * fs], fs fastest; any numeric array, Float32Array fastest).
 * The context's scratch is reused: one context must not serve two frames at once.
 */
export function peakfinder8(image: ArrayLike<number>, ctx: Pf8Context, params: Pf8Params): PeakList {
  const size = ctx.ssSize * ctx.fsSize;
  if (image.length !== size) throw new Error(`image has ${image.length} pixels, the slab has ${size}`);
  const data = asFloat32(ctx, image);
  const layout = binLayoutFor(ctx, params.minResPx, params.maxResPx);
  const { binOf } = layout;
  const nonFinite = gatherByBin(ctx, data, layout);
  // Non-finite pixels: remember their bins, then treat them as masked for this frame.
  const savedBins = nonFinite > 0 ? new Uint32Array(nonFinite) : undefined;
  for (let k = 0; k < nonFinite; k++) {
    const i = ctx.nonFinite[k];
    savedBins![k] = binOf[i];
    binOf[i] = ctx.nBins;
  }
  try {
    radialStatistics(ctx, layout, params.minSnr, params.adcThreshold);
    return findPeaks(ctx, data, binOf, params);
  } finally {
    for (let k = 0; k < nonFinite; k++) binOf[ctx.nonFinite[k]] = savedBins![k];
  }
}

function findPeaks(
  ctx: Pf8Context,
  data: Float32Array,
  binOf: Uint16Array | Uint32Array,
  params: Pf8Params,
): PeakList {
  const { fsSize, claimed, queueIndex, queueFs, queueSs, binOffset, binThreshold, panelRects, nBins } = ctx;
  const { minPixCount, maxPixCount, minSnr } = params;
  const maxNumPeaks = Math.max(0, Math.floor(params.maxNumPeaks));
  const ring = ringOffsets(ctx, Math.max(0, Math.round(params.localBgRadius)));
  const ringLength = ring.length;
  claimed.fill(0);
  // Every threshold is at least this: most pixels fail this one compare without a bin lookup.
  let lowestThreshold = Number.POSITIVE_INFINITY;
  for (let b = 0; b < nBins; b++) if (binThreshold[b] < lowestThreshold) lowestThreshold = binThreshold[b];
  const found: Found = { count: 0, list: createPeakList(Math.min(maxNumPeaks, 256)) };

  for (let r = 0; r < panelRects.length && found.count < maxNumPeaks; r += 4) {
    const ss0 = panelRects[r];
    const ss1 = panelRects[r + 1];
    const fs0 = panelRects[r + 2];
    const fs1 = panelRects[r + 3];
    for (let pss = ss0 + 1; pss < ss1 && found.count < maxNumPeaks; pss++) {
      const rowStart = pss * fsSize;
      for (let pfs = fs0 + 1; pfs < fs1; pfs++) {
        const seed = rowStart + pfs;
        const seedValue = data[seed];
        if (!(seedValue > lowestThreshold)) continue;
        if (!(seedValue > binThreshold[binOf[seed]]) || claimed[seed] !== 0) continue;

        // Flood fill (8-connected, within the panel) over unclaimed pixels above their threshold.
        claimed[seed] = 1;
        queueIndex[0] = seed;
        queueFs[0] = pfs;
        queueSs[0] = pss;
        let nPix = 1;
        let sumI = data[seed] - binOffset[binOf[seed]];
        let sumFs = sumI * pfs;
        let sumSs = sumI * pss;
        for (let q = 0; q < nPix; q++) {
          const cfs = queueFs[q];
          const css = queueSs[q];
          const sLo = css > ss0 ? css - 1 : css;
          const sHi = css < ss1 ? css + 1 : css;
          const fLo = cfs > fs0 ? cfs - 1 : cfs;
          const fHi = cfs < fs1 ? cfs + 1 : cfs;
          for (let s = sLo; s <= sHi; s++) {
            const row = s * fsSize;
            for (let f = fLo; f <= fHi; f++) {
              const i = row + f;
              if (claimed[i] !== 0) continue;
              const bin = binOf[i];
              const v = data[i];
              if (!(v > binThreshold[bin])) continue;
              claimed[i] = 1;
              queueIndex[nPix] = i;
              queueFs[nPix] = f;
              queueSs[nPix] = s;
              nPix++;
              const above = v - binOffset[bin];
              sumI += above;
              sumFs += above * f;
              sumSs += above * s;
            }
          }
        }
        if (nPix < minPixCount || nPix > maxPixCount) continue;
        if (Math.abs(sumI) < 1e-10) continue;

        // Local background around the rounded first-pass centroid, on this panel.
        const comFs = Math.round(sumFs / Math.abs(sumI));
        const comSs = Math.round(sumSs / Math.abs(sumI));
        let bgCount = 0;
        let bgSum = 0;
        let bgSumSq = 0;
        let bgMax = 0;
        for (let k = 0; k < ringLength; k += 2) {
          const f = comFs + ring[k];
          const s = comSs + ring[k + 1];
          if (f < fs0 || f > fs1 || s < ss0 || s > ss1) continue;
          const i = s * fsSize + f;
          const bin = binOf[i];
          if (bin === nBins || claimed[i] !== 0) continue;
          const v = data[i];
          if (!(v < binThreshold[bin])) continue;
          bgCount++;
          bgSum += v;
          bgSumSq += v * v;
          if (v > bgMax) bgMax = v;
        }
        let localOffset: number;
        let localSigma: number;
        if (bgCount > 0) {
          localOffset = bgSum / bgCount;
          const variance = bgSumSq / bgCount - localOffset * localOffset;
          localSigma = variance >= 0 ? Math.sqrt(variance) : 0.01;
        } else {
          localOffset = binOffset[binOf[comSs * fsSize + comFs]];
          localSigma = 0.01;
        }

        // Re-integrate above the local offset; centroid weighted by the raw values.
        let total = 0;
        let rawTotal = 0;
        let max = 0;
        let rawFs = 0;
        let rawSs = 0;
        for (let q = 0; q < nPix; q++) {
          const raw = data[queueIndex[q]];
          const above = raw - localOffset;
          total += above;
          rawTotal += raw;
          rawFs += raw * queueFs[q];
          rawSs += raw * queueSs[q];
          if (above > max) max = above;
        }
        if (Math.abs(rawTotal) < 1e-10) continue;
        const peakFs = rawFs / Math.abs(rawTotal);
        const peakSs = rawSs / Math.abs(rawTotal);
        const snr = Math.abs(localSigma) > 1e-10 ? total / localSigma : 0;
        if (snr < minSnr) continue;
        if (max < bgMax - localOffset) continue;
        if (peakFs < fs0 || peakFs > fs1 || peakSs < ss0 || peakSs > ss1) continue;

        pushPeak(found, peakFs, peakSs, total, snr, nPix, max);
        if (found.count >= maxNumPeaks) break;
      }
    }
  }

  const out = createPeakList(found.count);
  out.count = found.count;
  out.fs.set(found.list.fs.subarray(0, found.count));
  out.ss.set(found.list.ss.subarray(0, found.count));
  out.totalIntensity.set(found.list.totalIntensity.subarray(0, found.count));
  out.snr.set(found.list.snr.subarray(0, found.count));
  out.nPixels.set(found.list.nPixels.subarray(0, found.count));
  out.maxValue.set(found.list.maxValue.subarray(0, found.count));
  return out;
}
