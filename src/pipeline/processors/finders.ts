/**
 * The processing layer: a peak finder behind the Processor protocol, with the hit decision. pf8 and
 * dispersion run in this thread or on worker threads (`workers`); peaknet serves a model file in this
 * thread (onnxruntime's own threads) or on workers with a session each. Frames are converted to
 * float32 here, whatever their type on the wire.
 */
import type { PixelMaps } from '../../detector/pixel-maps.js';
import { readModelFile } from '../../infer/model-file.js';
import { createPeakNetFinder } from '../../infer/peaknet-finder.js';
import { createPooledPeakNetFinder } from '../../infer/peaknet-pool.js';
import type { ExecutionProvider } from '../../nn/runtime.js';
import { createPeakFinder, type PeakFinderSpec } from '../../peaks/finder.js';
import type { PeakList } from '../../peaks/peak-list.js';
import type { PeaksTask, PeaksWorkerData } from '../../peaks/peaks-worker.js';
import { pf8ParamsToJson } from '../../peaks/pf8-params.js';
import { createWorkerPool, isShared, transferList, workerScriptUrl } from '../../util/worker-pool.js';
import type { FrameMessage, PixelArray, Processor } from '../protocol.js';

export type ProcessorSpec =
  | { method: 'pf8' | 'dispersion'; finder: PeakFinderSpec; workers: number }
  | {
      method: 'peaknet';
      modelPath: string;
      provider?: ExecutionProvider;
      /** Tiles per model run. */
      batch?: number;
      workers: number;
      maxPeaks?: number;
    };

export interface ProcessorContext {
  /** The geometry's text and where it came from (worker threads parse it again). */
  geometryText: string;
  geometryName?: string;
  maps: PixelMaps;
  /** Good pixels (nonzero), slab-sized. */
  mask: Uint8Array;
  /** A frame with at least this many peaks is a hit (default 10). */
  minPeaks?: number;
}

/** Default hit decision: Cheetah's and OnDA's usual minimum peak count. */
export const DEFAULT_MIN_PEAKS = 10;

/**
 * The frame as float32 for a finder. `moved`: the finder transfers it to a worker thread, so a
 * float32 frame is copied (the sinks still need the pixels of hits), unless it is in a
 * SharedArrayBuffer (the file source's frames): the worker then reads it where it is.
 */
function toFloat32(pixels: PixelArray, moved: boolean): Float32Array {
  if (!(pixels instanceof Float32Array)) return Float32Array.from(pixels);
  return moved && !isShared(pixels) ? pixels.slice() : pixels;
}

export async function createProcessor(spec: ProcessorSpec, context: ProcessorContext): Promise<Processor> {
  const minPeaks = context.minPeaks ?? DEFAULT_MIN_PEAKS;
  const workers = Math.max(1, spec.workers);
  let find: (image: Float32Array) => Promise<PeakList>;
  let concurrency: number;
  let release: () => Promise<void>;
  let description: string;
  if (spec.method === 'peaknet') {
    const file = readModelFile(spec.modelPath);
    const options = { provider: spec.provider, batch: spec.batch, maxPeaks: spec.maxPeaks };
    description = `peaknet ${spec.modelPath} (${file.meta.config.name}, ${file.meta.precision ?? 'fp32'})`;
    if (workers === 1) {
      const finder = await createPeakNetFinder(file, context.maps, context.mask, options);
      find = (image) => finder.find(image);
      concurrency = 1;
      release = () => finder.release();
    } else {
      const pooled = createPooledPeakNetFinder(
        spec.modelPath,
        { text: context.geometryText, path: context.geometryName },
        context.mask,
        workers,
        options,
      );
      find = (image) => pooled.find(image);
      concurrency = pooled.concurrency ?? workers;
      release = () => pooled.release();
    }
  } else {
    const finder = spec.finder;
    description =
      finder.method === 'pf8'
        ? `pf8 ${Object.entries(pf8ParamsToJson(finder.params))
            .map(([k, v]) => `--${k}=${v}`)
            .join(' ')}`
        : `dispersion ${JSON.stringify(finder.params)}`;
    if (workers === 1) {
      const found = createPeakFinder(context.maps, context.mask, finder);
      find = async (image) => found(image);
      concurrency = 1;
      release = async () => {};
    } else {
      const data: PeaksWorkerData = {
        geometryText: context.geometryText,
        geometryPath: context.geometryName,
        mask: context.mask,
        spec: finder,
      };
      // Two frames a worker, both posted to it: it starts the second as soon as it is done with the
      // first, whatever this thread is doing.
      const pool = createWorkerPool<PeaksTask, PeakList>(
        workerScriptUrl(import.meta.url, '../../peaks/peaks-worker'),
        workers,
        data,
        { depth: 2 },
      );
      find = (image) => pool.run({ image }, transferList(image));
      concurrency = 2 * workers;
      release = () => pool.close();
    }
  }
  const moved = workers > 1;
  return {
    description,
    concurrency,
    async process(frame: FrameMessage) {
      const peaks = await find(toFloat32(frame.pixels, moved));
      return { peaks, hit: peaks.count >= minPeaks };
    },
    release,
  };
}
