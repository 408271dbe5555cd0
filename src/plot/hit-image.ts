/**
 * A frame as a person looks at it: the detector assembled by its geometry (lab frame, beam where it
 * is), log stretch, and each peak circled (as OnDA's and CrystFEL's hdfsee viewers draw them).
 * `maxSidePx` shrinks large detectors by whole factors, averaging each block (a block's maximum
 * would lift the noise with it); the circles still mark every peak.
 */
import { type AssemblyMap, assemble } from '../detector/assemble.js';
import type { PixelMaps } from '../detector/pixel-maps.js';
import type { PeakList } from '../peaks/peak-list.js';
import { finiteQuantile, grayscaleRgb, type PngStretch, rgbPng } from './png.js';

export interface HitImageOptions {
  /** Longest side of the image (default: the assembled size). */
  maxSidePx?: number;
  /** Circle radius in image pixels (default 6). */
  radiusPx?: number;
  stretch?: PngStretch;
}

const RING: [number, number, number] = [255, 140, 0];

/** Image position (column, row) of each peak, in assembled pixels. */
export function peakImagePositions(maps: PixelMaps, map: AssemblyMap, peaks: PeakList): [number, number][] {
  const out: [number, number][] = [];
  for (let k = 0; k < peaks.count; k++) {
    const fs = Math.min(maps.fsSize - 1, Math.max(0, Math.round(peaks.fs[k])));
    const ss = Math.min(maps.ssSize - 1, Math.max(0, Math.round(peaks.ss[k])));
    const i = ss * maps.fsSize + fs;
    const x = maps.xM[i] * map.resPxPerM;
    const y = maps.yM[i] * map.resPxPerM;
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    out.push([x - map.originXPx - 0.5, map.originYPx - y - 0.5]);
  }
  return out;
}

export function hitImagePng(
  maps: PixelMaps,
  map: AssemblyMap,
  pixels: ArrayLike<number>,
  peaks: PeakList,
  options: HitImageOptions = {},
): { png: Uint8Array; widthPx: number; heightPx: number } {
  const image = assemble(map, pixels);
  const factor = Math.max(
    1,
    Math.ceil(Math.max(image.widthPx, image.heightPx) / (options.maxSidePx ?? Number.POSITIVE_INFINITY)),
  );
  const width = Math.ceil(image.widthPx / factor);
  const height = Math.ceil(image.heightPx / factor);
  let values: Float32Array = image.values;
  if (factor > 1) {
    const sums = new Float64Array(width * height);
    const counts = new Uint32Array(width * height);
    for (let row = 0; row < image.heightPx; row++) {
      for (let col = 0; col < image.widthPx; col++) {
        const v = image.values[row * image.widthPx + col];
        if (!Number.isFinite(v)) continue;
        const o = Math.floor(row / factor) * width + Math.floor(col / factor);
        sums[o] += v;
        counts[o]++;
      }
    }
    values = new Float32Array(width * height);
    for (let o = 0; o < values.length; o++) values[o] = counts[o] > 0 ? sums[o] / counts[o] : Number.NaN;
  }
  // Background at black (the median), the brightest spots white: spots stand out of the noise.
  const rgb = grayscaleRgb(values, width, height, {
    log: true,
    min: finiteQuantile(values, 0.5),
    max: finiteQuantile(values, 0.999),
    ...options.stretch,
  });
  const radius = options.radiusPx ?? 6;
  for (const [x, y] of peakImagePositions(maps, map, peaks)) {
    const cx = x / factor;
    const cy = y / factor;
    // A one-pixel ring: every pixel whose centre lies within half a pixel of the circle.
    for (let row = Math.floor(cy - radius - 1); row <= Math.ceil(cy + radius + 1); row++) {
      if (row < 0 || row >= height) continue;
      for (let col = Math.floor(cx - radius - 1); col <= Math.ceil(cx + radius + 1); col++) {
        if (col < 0 || col >= width) continue;
        if (Math.abs(Math.hypot(col - cx, row - cy) - radius) > 0.5) continue;
        rgb.set(RING, (row * width + col) * 3);
      }
    }
  }
  return { png: rgbPng(rgb, width, height), widthPx: width, heightPx: height };
}
