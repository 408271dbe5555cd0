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
 * Speed: one pass reads the frame (in 64 x 64 tiles, bin by bin within a tile, so each bin's run is
 * summed in registers). Each bin's pixels inside its "core band" (half the previous frame's clipping
 * cut) are only summed; the few outside it (the tail) are kept, and the five clipping iterations run
 * on core sums + tail, which is exact whenever a cut contains the band. A bin whose band a cut does not
 * contain (the first frame, a frame far off the last one) is clipped from its own pixels, as before.
 * The same pass lists the pixels above adcThreshold, the only possible seeds (every bin threshold is
 * at least adcThreshold), so the seed scan visits those only. All scratch is reused across frames, and
 * nothing is allocated per pixel.
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
  /** Where each bin's pixels go when a bin is clipped from its own pixels (length nBins + 1). */
  binStart: Int32Array;
  /**
   * Slab indices of the binned pixels in scan order: 64 x 64 tiles of the slab in turn, and within a
   * tile, bin by bin. A tile's pixels stay in L1 and each bin's run of pixels is summed in registers,
   * where a slab-order pass would add every pixel into a per-bin array (a chain through memory).
   */
  scanOrder: Int32Array;
  /** The runs of one bin in scanOrder: bin and end (exclusive). */
  runBin: Int32Array;
  runEnd: Int32Array;
}

/** Side of the square slab tiles of the statistics pass, pixels. */
const tileSide = 64;

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
  /** Per-bin clipped sigma of the last frame (NaN: none); the next frame's core bands come from it. */
  readonly binSigma: Float64Array;
  /** Whether binOffset / binSigma hold a previous frame's statistics. */
  haveStatistics: boolean;
  // Scratch, reused across frames.
  /** Per-bin core band [lo, hi] of this frame and the sums (x, x^2, n) of the pixels inside it. */
  readonly bandLo: Float64Array;
  readonly bandHi: Float64Array;
  readonly coreSums: Float64Array;
  /** Pixels outside their bin's core band: value and bin. */
  tailValue: Float32Array;
  tailBin: Int32Array;
  /** The tail sorted by bin, bin b from tailStart[b] (length nBins + 2). */
  tailSorted: Float32Array;
  readonly tailStart: Int32Array;
  /** Slab indices above adcThreshold, in slab order (the only possible seeds). */
  candidates: Int32Array;
  readonly stats: BinIterationState;
  readonly values: Float32Array;
  readonly floatImage: Float32Array;
  readonly claimed: Uint8Array;
  /** Pixels claimed by the last frame's flood fills (cleared at the start of the next frame). */
  claimedList: Int32Array;
  claimedCount: number;
  readonly queueIndex: Int32Array;
  readonly queueFs: Int32Array;
  readonly queueSs: Int32Array;
  nonFinite: Int32Array;
  ringCache: Map<number, Int32Array>;
}

/** Per-bin result of the sigma clipping (length nBins + 1 each). */
interface BinIterationState {
  upper: Float64Array;
  offset: Float64Array;
  sigma: Float64Array;
  /** Pixels inside the last cut. */
  count: Float64Array;
  /** 1: the bin's core band is not inside a cut, so it is clipped from its own pixels. */
  fallback: Uint8Array;
  /** End of each fallback bin's pixels in ctx.values. */
  fill: Int32Array;
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
  const perBin = () => new Float64Array(nBins + 1);
  return {
    maps,
    ssSize: maps.ssSize,
    fsSize: maps.fsSize,
    mask: good,
    nBins,
    panelRects: Int32Array.from(rects),
    layout: undefined,
    binOffset: perBin(),
    binThreshold: perBin(),
    binSigma: perBin(),
    haveStatistics: false,
    bandLo: perBin(),
    bandHi: perBin(),
    coreSums: new Float64Array(3 * (nBins + 1)),
    tailValue: new Float32Array(4096),
    tailBin: new Int32Array(4096),
    candidates: new Int32Array(Math.min(size, 4096)),
    tailSorted: new Float32Array(4096),
    tailStart: new Int32Array(nBins + 2),
    stats: {
      upper: perBin(),
      offset: perBin(),
      sigma: perBin(),
      count: perBin(),
      fallback: new Uint8Array(nBins + 1),
      fill: new Int32Array(nBins + 1),
    },
    values: new Float32Array(size),
    floatImage: new Float32Array(size),
    claimed: new Uint8Array(size),
    claimedList: new Int32Array(1024),
    claimedCount: 0,
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
  const { scanOrder, runBin, runEnd } = tileScanOrder(binOf, nBins, ctx.ssSize, ctx.fsSize, binStart[nBins]);
  const layout = { minResPx, maxResPx, binOf, binStart, scanOrder, runBin, runEnd };
  ctx.layout = layout;
  return layout;
}

/** The binned pixels tile by tile, bin by bin within a tile (a counting sort per tile). */
function tileScanOrder(
  binOf: Uint16Array | Uint32Array,
  nBins: number,
  ssSize: number,
  fsSize: number,
  binned: number,
): { scanOrder: Int32Array; runBin: Int32Array; runEnd: Int32Array } {
  const scanOrder = new Int32Array(binned);
  const runBins: number[] = [];
  const runEnds: number[] = [];
  const counts = new Int32Array(nBins + 1);
  let next = 0;
  for (let ss0 = 0; ss0 < ssSize; ss0 += tileSide) {
    const ss1 = Math.min(ssSize, ss0 + tileSide);
    for (let fs0 = 0; fs0 < fsSize; fs0 += tileSide) {
      const fs1 = Math.min(fsSize, fs0 + tileSide);
      let lowest = nBins;
      let highest = -1;
      for (let ss = ss0; ss < ss1; ss++) {
        for (let i = ss * fsSize + fs0; i < ss * fsSize + fs1; i++) {
          const b = binOf[i];
          if (b === nBins) continue;
          counts[b]++;
          if (b < lowest) lowest = b;
          if (b > highest) highest = b;
        }
      }
      // counts[b] becomes the start of bin b's run in scanOrder.
      for (let b = lowest; b <= highest; b++) {
        const c = counts[b];
        if (c === 0) continue;
        counts[b] = next;
        next += c;
        runBins.push(b);
        runEnds.push(next);
      }
      for (let ss = ss0; ss < ss1; ss++) {
        for (let i = ss * fsSize + fs0; i < ss * fsSize + fs1; i++) {
          const b = binOf[i];
          if (b !== nBins) scanOrder[counts[b]++] = i;
        }
      }
      for (let b = lowest; b <= highest; b++) counts[b] = 0;
    }
  }
  return { scanOrder, runBin: Int32Array.from(runBins), runEnd: Int32Array.from(runEnds) };
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

/** The first cut's bounds, just inside (-1e9, 1e9) for float32 values (spacing 64 there). */
const firstCutLo = initialLower + 1;
const firstCutHi = initialUpper - 1;

/**
 * Each bin's core band for this frame: half the previous frame's clipping cut (mean +- minSnr/2
 * sigma). Pixels inside it are only summed; the few outside are kept, and each clipping iteration
 * adds those inside its cut. That is exact whenever the cut contains the band; a bin whose band a cut
 * does not contain is clipped from its own pixels (`clipBinFromPixels`). Without a previous frame the
 * band is the first cut (so the first iteration is exact and later ones fall back).
 */
function setCoreBands(ctx: Pf8Context, minSnr: number): void {
  const { bandLo, bandHi, binOffset, binSigma, nBins } = ctx;
  for (let b = 0; b < nBins; b++) {
    let lo = firstCutLo;
    let hi = firstCutHi;
    if (ctx.haveStatistics) {
      const half = 0.5 * minSnr * binSigma[b];
      if (half > 0) {
        lo = Math.max(lo, binOffset[b] - half);
        hi = Math.min(hi, binOffset[b] + half);
      } else {
        // No spread (or none known): every pixel of the bin goes through the exact per-pixel path.
        lo = Number.POSITIVE_INFINITY;
        hi = Number.NEGATIVE_INFINITY;
      }
    }
    bandLo[b] = lo;
    bandHi[b] = hi;
  }
  // The masked sentinel has no pixels in the scan order; its band is never read.
  bandLo[nBins] = Number.NEGATIVE_INFINITY;
  bandHi[nBins] = Number.POSITIVE_INFINITY;
}

/**
 * One pass over the frame in tile order (see BinLayout.scanOrder): core sums per bin, the pixels
 * outside their bin's band (the tail), NaN/Inf pixels (listed in `ctx.nonFinite`) and the pixels
 * above adcThreshold (the only possible seeds, every bin threshold being at least adcThreshold;
 * sorted into slab order). Returns the counts; `candidates` is -1 when there are too many to list.
 */
function scanFrame(
  ctx: Pf8Context,
  data: Float32Array,
  layout: BinLayout,
  adcThreshold: number,
): { tail: number; nonFinite: number; candidates: number } {
  const { bandLo, bandHi, coreSums } = ctx;
  const { scanOrder, runBin, runEnd } = layout;
  coreSums.fill(0);
  let tailValue = ctx.tailValue;
  let tailBin = ctx.tailBin;
  let candidates = ctx.candidates;
  let nTail = 0;
  let nNonFinite = 0;
  let nCandidates = 0;
  // More candidates than this: sorting them would cost more than scanning every pixel for seeds.
  const candidateLimit = data.length >> 6;
  const nRuns = runBin.length;
  let k = 0;
  for (let r = 0; r < nRuns; r++) {
    const b = runBin[r];
    const end = runEnd[r];
    const lo = bandLo[b];
    const hi = bandHi[b];
    let sum = 0;
    let sumSq = 0;
    let count = 0;
    for (; k < end; k++) {
      const i = scanOrder[k];
      const v = data[i];
      if (v >= lo && v <= hi) {
        sum += v;
        sumSq += v * v;
        count++;
      } else if (v - v === 0) {
        if (nTail === tailValue.length) {
          tailValue = grow(tailValue, new Float32Array(2 * nTail));
          tailBin = grow(tailBin, new Int32Array(2 * nTail));
        }
        tailValue[nTail] = v;
        tailBin[nTail++] = b;
      } else {
        if (nNonFinite === ctx.nonFinite.length)
          ctx.nonFinite = grow(ctx.nonFinite, new Int32Array(2 * nNonFinite));
        ctx.nonFinite[nNonFinite++] = i;
      }
      if (v > adcThreshold && nCandidates <= candidateLimit) {
        if (nCandidates === candidates.length) candidates = grow(candidates, new Int32Array(2 * nCandidates));
        candidates[nCandidates++] = i;
      }
    }
    const c = 3 * b;
    coreSums[c] += sum;
    coreSums[c + 1] += sumSq;
    coreSums[c + 2] += count;
  }
  ctx.tailValue = tailValue;
  ctx.tailBin = tailBin;
  ctx.candidates = candidates;
  if (nCandidates > candidateLimit) nCandidates = -1;
  else candidates.subarray(0, nCandidates).sort();
  return { tail: nTail, nonFinite: nNonFinite, candidates: nCandidates };
}

function grow<T extends Float32Array | Int32Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

/** Sorts the tail by bin (a counting sort): bin b's values end up in tailSorted[tailStart[b]..tailStart[b + 1]). */
function bucketTail(ctx: Pf8Context, nTail: number): void {
  const { tailValue, tailBin, tailStart, nBins } = ctx;
  if (ctx.tailSorted.length < nTail) ctx.tailSorted = new Float32Array(tailValue.length);
  const sorted = ctx.tailSorted;
  tailStart.fill(0);
  for (let t = 0; t < nTail; t++) tailStart[tailBin[t] + 1]++;
  for (let b = 0; b < nBins; b++) tailStart[b + 1] += tailStart[b];
  // tailStart[b] is used as bin b's fill pointer, then restored from its end.
  for (let t = 0; t < nTail; t++) sorted[tailStart[tailBin[t]]++] = tailValue[t];
  for (let b = nBins; b > 0; b--) tailStart[b] = tailStart[b - 1];
  tailStart[0] = 0;
}

/**
 * Per-bin offset and threshold of one frame: 5 sigma-clipping iterations, as the C code (the upper
 * cut of each iteration is already raised to adcThreshold, and an emptied bin gets FLT_MAX / FLT_MIN),
 * each from the bin's core sums plus its tail pixels inside the cut (see `setCoreBands`). Stops early
 * once an iteration keeps the same pixels as the one before, which changes nothing: the later
 * iterations would repeat it.
 */
function radialStatistics(
  ctx: Pf8Context,
  layout: BinLayout,
  data: Float32Array,
  nTail: number,
  minSnr: number,
  adcThreshold: number,
): void {
  const { binOffset, binThreshold, binSigma, nBins, coreSums, bandLo, bandHi, tailStart } = ctx;
  const { offset, upper, sigma, count, fallback } = ctx.stats;
  bucketTail(ctx, nTail);
  const tail = ctx.tailSorted;
  let anyFallback = false;
  for (let b = 0; b < nBins; b++) {
    const coreSum = coreSums[3 * b];
    const coreSumSq = coreSums[3 * b + 1];
    const coreCount = coreSums[3 * b + 2];
    const bandLow = bandLo[b];
    const bandHigh = bandHi[b];
    const tailEnd = tailStart[b + 1];
    let up = initialUpper;
    let low = initialLower;
    let mean = 0;
    let s = 0;
    let lastCount = -1;
    let lastSum = Number.NaN;
    let lastSumSq = Number.NaN;
    let exact = true;
    for (let iteration = 0; iteration < statsIterations; iteration++) {
      // The band's pixels are all inside the cut only if the cut contains the band.
      if (coreCount > 0 && !(low < bandLow && bandHigh < up)) {
        exact = false;
        break;
      }
      let sum = coreSum;
      let sumSq = coreSumSq;
      let n = coreCount;
      for (let t = tailStart[b]; t < tailEnd; t++) {
        const v = tail[t];
        if (v > low && v < up) {
          sum += v;
          sumSq += v * v;
          n++;
        }
      }
      if (n === lastCount && sum === lastSum && sumSq === lastSumSq) break;
      lastCount = n;
      lastSum = sum;
      lastSumSq = sumSq;
      if (n === 0) {
        mean = 0;
        s = 0;
        up = FLT_MAX;
        low = FLT_MIN;
      } else {
        mean = sum / n;
        const variance = sumSq / n - mean * mean;
        s = variance > 0 ? Math.sqrt(variance) : 0;
        up = Math.max(mean + minSnr * s, adcThreshold);
        low = mean - minSnr * s;
      }
    }
    fallback[b] = exact ? 0 : 1;
    if (!exact) {
      anyFallback = true;
      continue;
    }
    offset[b] = mean;
    upper[b] = up;
    sigma[b] = s;
    count[b] = lastCount;
  }
  if (anyFallback) {
    gatherFallbackBins(ctx, layout, data);
    for (let b = 0; b < nBins; b++)
      if (fallback[b] !== 0) clipBinFromPixels(ctx, layout, b, minSnr, adcThreshold);
  }
  for (let b = 0; b < nBins; b++) {
    binOffset[b] = offset[b];
    binThreshold[b] = upper[b];
    binSigma[b] = count[b] > 0 ? sigma[b] : 0;
  }
  binOffset[nBins] = 0;
  binThreshold[nBins] = Number.POSITIVE_INFINITY;
  ctx.haveStatistics = true;
}

/** Copies the finite pixels of the fallback bins into ctx.values, each bin from its binStart. */
function gatherFallbackBins(ctx: Pf8Context, layout: BinLayout, data: Float32Array): void {
  const { fallback, fill } = ctx.stats;
  const { values } = ctx;
  const { scanOrder, runBin, runEnd, binStart } = layout;
  fill.set(binStart);
  let k = 0;
  for (let r = 0; r < runBin.length; r++) {
    const b = runBin[r];
    const end = runEnd[r];
    if (fallback[b] === 0) {
      k = end;
      continue;
    }
    let at = fill[b];
    for (; k < end; k++) {
      const v = data[scanOrder[k]];
      if (v - v === 0) values[at++] = v;
    }
    fill[b] = at;
  }
}

/**
 * The C code's clipping for one bin from its own pixels (gathered into ctx.values); leaves the result
 * in ctx.stats. Stops early once an iteration keeps the same pixels as the one before.
 */
function clipBinFromPixels(
  ctx: Pf8Context,
  layout: BinLayout,
  b: number,
  minSnr: number,
  adcThreshold: number,
): void {
  const { values } = ctx;
  const start = layout.binStart[b];
  const end = ctx.stats.fill[b];
  let upper = initialUpper;
  let lower = initialLower;
  let offset = 0;
  let sigma = 0;
  let count = 0;
  let lastSum = Number.NaN;
  let lastSumSq = Number.NaN;
  for (let iteration = 0; iteration < statsIterations; iteration++) {
    let sum = 0;
    let sumSq = 0;
    let n = 0;
    for (let k = start; k < end; k++) {
      const v = values[k];
      if (v > lower && v < upper) {
        sum += v;
        sumSq += v * v;
        n++;
      }
    }
    if (n === count && sum === lastSum && sumSq === lastSumSq) break;
    count = n;
    lastSum = sum;
    lastSumSq = sumSq;
    if (n === 0) {
      offset = 0;
      sigma = 0;
      upper = FLT_MAX;
      lower = FLT_MIN;
    } else {
      offset = sum / n;
      const variance = sumSq / n - offset * offset;
      sigma = variance > 0 ? Math.sqrt(variance) : 0;
      upper = offset + minSnr * sigma;
      lower = offset - minSnr * sigma;
      if (upper < adcThreshold) upper = adcThreshold;
    }
  }
  const { stats } = ctx;
  stats.offset[b] = offset;
  stats.upper[b] = upper;
  stats.sigma[b] = sigma;
  stats.count[b] = count;
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
  setCoreBands(ctx, params.minSnr);
  const scan = scanFrame(ctx, data, layout, params.adcThreshold);
  radialStatistics(ctx, layout, data, scan.tail, params.minSnr, params.adcThreshold);
  // Non-finite pixels: remember their bins, then treat them as masked for this frame.
  const nonFinite = scan.nonFinite;
  const savedBins = nonFinite > 0 ? new Uint32Array(nonFinite) : undefined;
  for (let k = 0; k < nonFinite; k++) {
    const i = ctx.nonFinite[k];
    savedBins![k] = binOf[i];
    binOf[i] = ctx.nBins;
  }
  try {
    return findPeaks(ctx, data, binOf, params, scan.candidates);
  } finally {
    for (let k = 0; k < nonFinite; k++) binOf[ctx.nonFinite[k]] = savedBins![k];
  }
}

/** What the seed scan and the peak growth share within one frame. */
interface ScanEnv {
  ctx: Pf8Context;
  data: Float32Array;
  binOf: Uint16Array | Uint32Array;
  params: Pf8Params;
  ring: Int32Array;
  found: Found;
}

function findPeaks(
  ctx: Pf8Context,
  data: Float32Array,
  binOf: Uint16Array | Uint32Array,
  params: Pf8Params,
  /** How many of ctx.candidates to scan; -1: scan every pixel. */
  candidateCount: number,
): PeakList {
  const { fsSize, claimed, binThreshold, panelRects, nBins, candidates } = ctx;
  const maxNumPeaks = Math.max(0, Math.floor(params.maxNumPeaks));
  const ring = ringOffsets(ctx, Math.max(0, Math.round(params.localBgRadius)));
  // Unclaim the last frame's peaks (cheaper than clearing the whole frame).
  const { claimedList } = ctx;
  for (let k = 0; k < ctx.claimedCount; k++) claimed[claimedList[k]] = 0;
  ctx.claimedCount = 0;
  const found: Found = { count: 0, list: createPeakList(Math.min(maxNumPeaks, 256)) };
  const env: ScanEnv = { ctx, data, binOf, params, ring, found };

  if (candidateCount >= 0) {
    // Seeds only among the pixels above adcThreshold, in the same order as the full scan.
    for (let r = 0; r < panelRects.length && found.count < maxNumPeaks; r += 4) {
      const ss0 = panelRects[r];
      const ss1 = panelRects[r + 1];
      const fs0 = panelRects[r + 2];
      const fs1 = panelRects[r + 3];
      const first = (ss0 + 1) * fsSize + fs0 + 1;
      const last = (ss1 - 1) * fsSize + fs1 - 1;
      // First candidate >= first (binary search: candidates are in slab order).
      let lo = 0;
      let hi = candidateCount;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (candidates[mid] < first) lo = mid + 1;
        else hi = mid;
      }
      for (let k = lo; k < candidateCount; k++) {
        const seed = candidates[k];
        if (seed > last) break;
        const pss = (seed / fsSize) | 0;
        const pfs = seed - pss * fsSize;
        if (pfs <= fs0 || pfs >= fs1) continue;
        if (!(data[seed] > binThreshold[binOf[seed]]) || claimed[seed] !== 0) continue;
        growPeak(env, seed, pfs, pss, ss0, ss1, fs0, fs1);
        if (found.count >= maxNumPeaks) break;
      }
    }
  } else {
    // Every threshold is at least this: most pixels fail this one compare without a bin lookup.
    let lowestThreshold = Number.POSITIVE_INFINITY;
    for (let b = 0; b < nBins; b++) if (binThreshold[b] < lowestThreshold) lowestThreshold = binThreshold[b];
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
          growPeak(env, seed, pfs, pss, ss0, ss1, fs0, fs1);
          if (found.count >= maxNumPeaks) break;
        }
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

/**
 * Grows the peak of one seed (above its threshold, unclaimed) on the panel [ss0..ss1] x [fs0..fs1],
 * measures it against its local background and keeps it in `env.found` if it passes.
 */
function growPeak(
  env: ScanEnv,
  seed: number,
  pfs: number,
  pss: number,
  ss0: number,
  ss1: number,
  fs0: number,
  fs1: number,
): void {
  const { ctx, data, binOf, ring, found } = env;
  const { fsSize, claimed, queueIndex, queueFs, queueSs, binOffset, binThreshold, nBins } = ctx;
  const { minPixCount, maxPixCount, minSnr } = env.params;
  const ringLength = ring.length;
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
  // Claimed pixels stay claimed for the rest of the frame (also when the peak is dropped, as in C).
  if (ctx.claimedCount + nPix > ctx.claimedList.length) {
    const grown = new Int32Array(Math.max(2 * ctx.claimedList.length, ctx.claimedCount + nPix));
    grown.set(ctx.claimedList.subarray(0, ctx.claimedCount));
    ctx.claimedList = grown;
  }
  ctx.claimedList.set(queueIndex.subarray(0, nPix), ctx.claimedCount);
  ctx.claimedCount += nPix;
  if (nPix < minPixCount || nPix > maxPixCount) return;
  if (Math.abs(sumI) < 1e-10) return;

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
  if (Math.abs(rawTotal) < 1e-10) return;
  const peakFs = rawFs / Math.abs(rawTotal);
  const peakSs = rawSs / Math.abs(rawTotal);
  const snr = Math.abs(localSigma) > 1e-10 ? total / localSigma : 0;
  if (snr < minSnr) return;
  if (max < bgMax - localOffset) return;
  if (peakFs < fs0 || peakFs > fs1 || peakSs < ss0 || peakSs > ss1) return;

  pushPeak(found, peakFs, peakSs, total, snr, nPix, max);
}
