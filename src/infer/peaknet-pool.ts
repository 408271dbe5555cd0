/**
 * A model file served on several worker threads, one frame per worker at a time, each with its own
 * onnxruntime session on one thread: the JavaScript parts of a frame (tile cutting, preprocessing,
 * components) then overlap with another frame's model run. On 2 cores it measured no faster than one
 * session of two threads (3.5 against 3.6 Mpixel/s over 8 CSPAD frames); it is for larger machines.
 * Results come back in input order (run-peaks awaits them in order).
 */
import type { PeakList } from '../peaks/peak-list.js';
import type { AsyncPeakFinder } from '../peaks/run-peaks.js';
import { createWorkerPool, transferList, workerScriptUrl } from '../util/worker-pool.js';
import type { PeakNetFinderOptions } from './peaknet-finder.js';
import type { PeakNetWorkerData } from './peaknet-worker.js';

export function createPooledPeakNetFinder(
  modelPath: string,
  geometry: { text: string; path?: string },
  mask: Uint8Array,
  workers: number,
  options: PeakNetFinderOptions,
): AsyncPeakFinder {
  const data: PeakNetWorkerData = {
    modelPath,
    geometryText: geometry.text,
    geometryPath: geometry.path,
    mask,
    options: { ...options, intraOpThreads: 1 },
  };
  const pool = createWorkerPool<{ image: Float32Array }, PeakList>(
    workerScriptUrl(import.meta.url, 'peaknet-worker'),
    workers,
    data,
  );
  return {
    concurrency: workers * 2,
    find: (image) => pool.run({ image }, transferList(image)),
    release: () => pool.close(),
  };
}
