/**
 * One entry point over the frame-at-a-time peak finders, for the CLI, its workers and benchmarks:
 * `createPeakFinder(maps, mask, spec)` precomputes the finder's context once and returns a function
 * from an image to its peak list.
 */
import type { PixelMaps } from '../detector/pixel-maps.js';
import { createDispersionContext, type DispersionParams, dispersionSpots } from './dispersion.js';
import type { PeakList } from './peak-list.js';
import { createPf8Context, type Pf8Params, peakfinder8 } from './peakfinder8.js';

export type PeakFinderSpec =
  | { method: 'pf8'; params: Pf8Params }
  | { method: 'dispersion'; params: DispersionParams };

export type PeakFinder = (image: ArrayLike<number>) => PeakList;

export function createPeakFinder(
  maps: PixelMaps,
  mask: Uint8Array | undefined,
  spec: PeakFinderSpec,
): PeakFinder {
  if (spec.method === 'pf8') {
    const ctx = createPf8Context(maps, mask);
    const params = spec.params;
    return (image) => peakfinder8(image, ctx, params);
  }
  const ctx = createDispersionContext(maps, mask);
  const params = spec.params;
  return (image) => dispersionSpots(image, ctx, params);
}

/** The widest peak table a run of this finder can fill (the CXI writer's width). */
export function maxPeaksOf(spec: PeakFinderSpec): number {
  return spec.params.maxNumPeaks;
}
