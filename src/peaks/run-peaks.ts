/**
 * `braggflow peaks`: runs a peak finder over every frame of the inputs (CXI/HDF5 stacks and CBF
 * files, in order) and writes one CXI peak-table row per frame, in input order, on one thread or
 * several worker threads.
 *
 * Each row names the file and event it came from (`sourceFile`, `sourceEvent`, `sourceFiles` under
 * the peak group, as `run` writes them) and carries the frame's photon energy and camera length, so
 * several inputs never run on into one anonymous numbering. CrystFEL reads a peak table only from the
 * file that holds the frames: a single HDF5 input read whole is linked (`/entry_1/data_1/data`, an
 * HDF5 external link to the source); otherwise `withFrames` copies the frames in. With frames there,
 * P.lst and P.geom are written beside P.cxi for `indexamajig --peaks=cxi`.
 */
import { writeFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { buildMask } from '../detector/mask-file.js';
import { computePixelMaps, type PixelMaps } from '../detector/pixel-maps.js';
import { createBeamReader } from '../io/beam.js';
import { isCbfPath, readCbfFrame } from '../io/cbf.js';
import { defaultPeakGroup } from '../io/cxi-peaks.js';
import { defaultDataPath, openFrameReader } from '../io/cxi-reader.js';
import { createCxiWriter, createSourceRows } from '../io/cxi-writer.js';
import { parseGeometry } from '../io/geom.js';
import { geometryForCxi } from '../io/geom-cxi.js';
import { readUserFile, UserError } from '../util/errors.js';
import { createWorkerPool, mapInOrder, workerScriptUrl } from '../util/worker-pool.js';
import { createPeakFinder, maxPeaksOf, type PeakFinderSpec } from './finder.js';
import type { PeakList } from './peak-list.js';
import { defaultPf8Params } from './peakfinder8.js';
import type { PeaksTask, PeaksWorkerData } from './peaks-worker.js';

export interface RunPeaksOptions {
  geometryPath: string;
  inputs: string[];
  outPath: string;
  /** The finder (pf8, dispersion); or `createFinder`. */
  spec?: PeakFinderSpec;
  /**
   * A finder of another layer (the model of `src/infer`), built once on the run's maps and mask; it
   * replaces `spec`'s and runs on this thread (it parallelises inside, e.g. onnxruntime's threads).
   */
  createFinder?: (maps: PixelMaps, mask: Uint8Array) => Promise<AsyncPeakFinder>;
  /** Peak-table width with `createFinder` (default 2048). */
  maxPeaks?: number;
  dataPath?: string;
  /** Extra mask files `FILE[:DATASET]` (default dataset /data/data; nonzero = good). */
  maskFiles?: string[];
  /** Global frame range [first, end) over all inputs in order. */
  frames?: [number, number | undefined];
  workers?: number;
  peakGroup?: string;
  /** Copy the frames into the output (default: link a single whole HDF5 input, else none). */
  withFrames?: boolean;
  /** Called after each frame is written. */
  onFrame?: (done: number, total: number, frame: FrameResult) => void;
}

export interface AsyncPeakFinder {
  /** `image` may be moved to another thread: the caller does not use it after the call. */
  find(image: Float32Array): Promise<PeakList>;
  /** Frames to keep in flight (default 1: one after the other). */
  concurrency?: number;
  release(): Promise<void>;
}

export interface FrameResult {
  /** Input file and frame index in it. */
  file: string;
  frame: number;
  peaks: PeakList;
}

export interface RunPeaksSummary {
  frames: number;
  peaks: number;
  /** Things a person should know (one line each), e.g. a threshold far above the frames' signal. */
  warnings: string[];
  peaksDropped: number;
  seconds: number;
  /** How the output holds the frames: linked to the source, copied in, or not at all (and why). */
  frameData: 'linked' | 'copied' | 'none';
  /** P.lst and P.geom, written when the output has the frames. */
  lstPath?: string;
  geomPath?: string;
}

interface FrameSource {
  file: string;
  frame: number;
  read(): Float32Array;
}

async function buildRunMask(maps: PixelMaps, options: RunPeaksOptions): Promise<Uint8Array> {
  const firstHdf5 = options.inputs.find((path) => !isCbfPath(path));
  return buildMask(maps, { dataFile: firstHdf5, extraFiles: options.maskFiles });
}

async function frameSources(
  maps: PixelMaps,
  options: RunPeaksOptions,
): Promise<{ sources: FrameSource[]; close: () => void }> {
  const sources: FrameSource[] = [];
  const closers: (() => void)[] = [];
  const slab: [number, number] = [maps.ssSize, maps.fsSize];
  for (const file of options.inputs) {
    if (isCbfPath(file)) {
      sources.push({
        file,
        frame: 0,
        read: () => readCbfFrame(file, slab),
      });
      continue;
    }
    const reader = await openFrameReader(file, { dataPath: options.dataPath, expectedSlabShape: slab });
    closers.push(() => reader.close());
    for (let frame = 0; frame < reader.frameCount; frame++) {
      sources.push({ file, frame, read: () => new Float32Array(reader.readFrame(frame)) });
    }
  }
  const [first, end] = options.frames ?? [0, undefined];
  if (first >= sources.length && sources.length > 0) {
    for (const close of closers) close();
    throw new UserError(
      `frame ${first} is out of range (the inputs hold ${sources.length})`,
      undefined,
      '--frames',
    );
  }
  return {
    sources: sources.slice(first, end ?? sources.length),
    close: () => {
      for (const close of closers) close();
    },
  };
}

export async function runPeaks(options: RunPeaksOptions): Promise<RunPeaksSummary> {
  const started = performance.now();
  const geometryText = readUserFile(options.geometryPath, 'utf8');
  const geometry = parseGeometry(geometryText, options.geometryPath);
  const maps = computePixelMaps(geometry);
  const mask = await buildRunMask(maps, options);
  const { sources, close } = await frameSources(maps, options);
  // A single HDF5 input read whole: link its frames; else copy them on request.
  const whole =
    options.inputs.length === 1 &&
    !isCbfPath(options.inputs[0]) &&
    (options.frames === undefined ||
      (options.frames[0] === 0 && (options.frames[1] ?? sources.length) >= sources.length));
  const frameData: RunPeaksSummary['frameData'] = options.withFrames ? 'copied' : whole ? 'linked' : 'none';
  const writer = await createCxiWriter(options.outPath, {
    maxPeaks: options.spec === undefined ? (options.maxPeaks ?? 2048) : maxPeaksOf(options.spec),
    peakGroup: options.peakGroup ?? defaultPeakGroup,
    frames: frameData === 'copied' ? { slabShape: [maps.ssSize, maps.fsSize], dtype: 'float32' } : undefined,
    perFrameScalars: true,
  });
  const beam = createBeamReader(geometry);
  const sourceRows = createSourceRows(writer);
  const workers = Math.max(1, options.workers ?? 1);
  let peaks = 0;
  try {
    const record = async (source: FrameSource, list: PeakList, done: number, image?: Float32Array) => {
      const values = await beam(isCbfPath(source.file) ? undefined : source.file, source.frame);
      writer.appendFrame({ peaks: list, image: frameData === 'copied' ? image : undefined, ...values });
      sourceRows.append(source.file, source.frame);
      peaks += list.count;
      options.onFrame?.(done, sources.length, { file: source.file, frame: source.frame, peaks: list });
    };
    const { spec, createFinder } = options;
    // Frames in flight (read, being found) at once, awaited and written in input order.
    const runAll = async (find: (image: Float32Array) => Promise<PeakList>, window: number) => {
      let done = 0;
      // Each frame is read once; with frames copied in, the finder gets a copy (it may move its image).
      const found = mapInOrder(sources, window, async (source) => {
        const image = source.read();
        return { list: await find(frameData === 'copied' ? image.slice() : image), image };
      });
      for await (const { list, image } of found) {
        await record(sources[done], list, done + 1, frameData === 'copied' ? image : undefined);
        done++;
      }
    };
    if (createFinder !== undefined) {
      const finder = await createFinder(maps, mask);
      try {
        await runAll((image) => finder.find(image), Math.max(1, finder.concurrency ?? 1));
      } finally {
        await finder.release();
      }
    } else if (spec === undefined) {
      throw new Error('runPeaks needs a spec or a createFinder');
    } else if (workers === 1) {
      const find = createPeakFinder(maps, mask, spec);
      await runAll(async (image) => find(image), 1);
    } else {
      const data: PeaksWorkerData = {
        geometryText,
        geometryPath: options.geometryPath,
        mask,
        spec,
      };
      const pool = createWorkerPool<PeaksTask, PeakList>(
        workerScriptUrl(import.meta.url, 'peaks-worker'),
        workers,
        data,
      );
      try {
        // A few frames per worker in flight keeps every worker busy.
        await runAll((image) => pool.run({ image }, [image.buffer as ArrayBuffer]), workers * 2);
      } finally {
        await pool.close();
      }
    }
    sourceRows.finish();
    if (frameData === 'linked') {
      const dataPath = options.dataPath ?? defaultDataPath;
      writer.linkExternal(
        defaultDataPath,
        relative(dirname(resolve(options.outPath)), resolve(options.inputs[0])),
        dataPath,
      );
    }
  } finally {
    close();
    writer.close();
  }
  let lstPath: string | undefined;
  let geomPath: string | undefined;
  if (frameData !== 'none') {
    const base = options.outPath.replace(/\.(cxi|h5|hdf5)$/i, '');
    lstPath = `${base}.lst`;
    geomPath = `${base}.geom`;
    writeFileSync(lstPath, sources.map((_, i) => `${options.outPath} //${i}\n`).join(''));
    writeFileSync(geomPath, geometryForCxi(geometryText, options.peakGroup ?? defaultPeakGroup));
  }
  const warnings: string[] = [];
  const spec = options.spec;
  if (peaks === 0 && spec?.method === 'pf8' && sources.length > 0) {
    // Nothing found: is the threshold above everything these frames hold? (indexamajig's default
    // of 800 ADU is, on a photon-counting detector.) One more read of the first frame, only here.
    const { backgroundBasis } = await import('./tune.js');
    const first = options.frames?.[0] ?? 0;
    try {
      const reopened = await frameSources(maps, { ...options, frames: [first, first + 1] });
      let basis: ReturnType<typeof backgroundBasis>;
      try {
        basis = backgroundBasis([reopened.sources[0].read()], maps, mask);
      } finally {
        reopened.close();
      }
      const threshold = spec.params.adcThreshold;
      if (threshold > 4 * basis.backgroundP99Adu) {
        warnings.push(
          `no peaks: the threshold (${threshold} ADU${threshold === defaultPf8Params.adcThreshold ? ", indexamajig's default" : ''}) is far above these frames' signal (background noise ${basis.noiseAdu.toPrecision(3)} ADU, 99th percentile ${basis.backgroundP99Adu.toPrecision(3)} ADU); \`braggflow tune\` finds parameters for this detector`,
        );
      }
    } catch {
      // Only a hint: a frame that cannot be read again leaves the warning out, not the run failed.
    }
  }
  return {
    frames: sources.length,
    peaks,
    warnings,
    peaksDropped: writer.peaksDropped,
    seconds: (performance.now() - started) / 1000,
    frameData,
    lstPath,
    geomPath,
  };
}
