/**
 * `braggflow label`: a CrystFEL stream's agreed peaks turned into a labelled dataset. For each indexed
 * frame whose match passes the selection (stream-match.ts), the frame is read from its image file,
 * every matched found peak gets a pseudo-Voigt fit and its half-maximum pixels (label-frame.ts), and
 * the frame, its label mask and its fitted peaks go into HDF5 shards laid out as the simulator writes
 * (so `braggflow train` reads both):
 *
 *   DIR/shard-00000.h5
 *     /entry_1/data_1/data                    float32 [N, ss, fs]  the frames (gzip, a chunk per frame)
 *     /entry_1/truth_1/mask                   uint8 [N, ss, fs]    label pixels (1 = peak)
 *     /entry_1/truth_1/{peakXPosRaw,...,nPeaks}                    the fitted spots (CXI peak table)
 *     /entry_1/truth_1/{sourceFile,sourceEvent,streamChunk,found,predicted,matched,badFits}  per frame
 *     /entry_1/truth_1/fitReducedChiSquare    float32 [N, maxPeaks] each spot's fit quality
 *     /entry_1/truth_1/sourceFiles            strings: the image files, by sourceFile index
 *     /entry_1/instrument_1/...               per-frame photon energy and camera length (the stream's)
 *   DIR/manifest.json                         shards, counts, options, provenance; what is done
 *
 * The coordinator reads the stream once, selects frames and cuts them into shard jobs (label-job.ts):
 * each job carries its frames' image files, events and peaks, so it runs on this thread, on worker
 * threads (`workers`), or on BullMQ worker processes on any machine that sees the files (`queue`).
 * Jobs are numbered in stream order and are the same for the same stream and choices, so the manifest,
 * rewritten (atomically) as each shard completes, is all a restarted run needs: it skips the shards
 * listed and runs the others. Different choices into the same folder is an error.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { computePixelMaps, geometryAduPerPhoton } from '../detector/pixel-maps.js';
import { type Geometry, parseGeometry } from '../io/geom.js';
import { readStream } from '../io/stream/reader.js';
import type { StreamChunk } from '../io/stream/types.js';
import type { PeakList } from '../peaks/peak-list.js';
import { UserError } from '../util/errors.js';
import { BRAGGFLOW_VERSION } from '../util/version.js';
import { createWorkerPool, workerScriptUrl } from '../util/worker-pool.js';
import { type LabelJob, type LabelJobFrame, runLabelJob, type ShardRecord } from './label-job.js';
import type { FitOptions, FitWeighting } from './pseudo-voigt.js';
import {
  type ChunkMatch,
  DEFAULT_MATCH_RADIUS_PX,
  eventFrameIndex,
  isIndexed,
  matchChunk,
  PanelIndex,
} from './stream-match.js';

export type { ShardRecord } from './label-job.js';

export const MANIFEST_NAME = 'manifest.json';
const MANIFEST_FORMAT = 'braggflow-labels';
const MANIFEST_VERSION = 1;

/** The choices that shape the labels; a resumed run must make the same ones. */
export interface LabelChoices {
  /** Match radius, pixels. */
  radiusPx: number;
  /** Side of the fit window, pixels (odd). */
  windowPx: number;
  /** A frame is labelled when at least this many found peaks match a prediction... */
  minMatched: number;
  /** ...and matched / found is at least this... */
  minPrecision: number;
  /** ...and matched / predicted is at least this. */
  minRecall: number;
  /** Also fit the found peaks no prediction matched (default false: only agreed peaks are labels). */
  unmatched: boolean;
  /** Fit weights (pseudo-voigt.ts): `border` needs no detector constant. */
  weighting: FitWeighting;
  /** Detector units per photon for the fit's shot noise: the geometry's adu_per_photon, else 1. */
  gain: number;
  /** Fits with a larger reduced chi-square are bad (Infinity: not checked). */
  maxReducedChiSquare: number;
  /** A spot whose sum over its label pixels is below this many standard deviations is not labelled. */
  minSnr: number;
  /**
   * Smallest half width at half maximum, pixels. A spot narrower is unresolved (sampled at pixel
   * centres its width and height trade off): it is fitted at this width and labels its central pixel.
   */
  minHwhmPx: number;
  /** Sample points per pixel side of the fitted model (1: pixel centres; 3: averaged over the pixel). */
  supersample: number;
  /** Frames per shard. */
  shardFrames: number;
  /** gzip level of the frames and masks (0: none). */
  compression: number;
}

export const defaultLabelChoices: Omit<LabelChoices, 'gain'> = {
  radiusPx: DEFAULT_MATCH_RADIUS_PX,
  windowPx: 9,
  minMatched: 10,
  minPrecision: 0.5,
  minRecall: 0,
  unmatched: false,
  weighting: 'border',
  maxReducedChiSquare: Number.POSITIVE_INFINITY,
  minSnr: 5,
  minHwhmPx: 0.3,
  supersample: 3,
  shardFrames: 64,
  compression: 1,
};

export interface LabelManifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  /** The stream, as given and absolute. */
  stream: string;
  streamBytes: number;
  geometry: string;
  /** A hash of the other inputs that decide the labels (geometry text, found peaks, masks, paths). */
  inputs: string;
  choices: LabelChoices;
  /** Completed shards, by index. */
  shards: ShardRecord[];
  /** Every shard of the stream is complete. */
  complete: boolean;
  /** Shards whose job failed for good (queue: after its retries): rerun to retry them. */
  failed?: { index: number; reason: string }[];
  totals: {
    chunks: number;
    indexedFrames: number;
    selectedFrames: number;
    labelledFrames: number;
    peaks: number;
    badFits: number;
    badReasons: Record<string, number>;
    labelledPixels: number;
  };
  provenance: { braggflowVersion: string; startedAt: string; updatedAt: string; wallSeconds: number };
}

export interface LabelStreamOptions {
  streamPath: string;
  /** Geometry file; default: the stream's own geometry block. */
  geometryPath?: string;
  /** Folder to resolve image files against first (then the stream's folder, then the working folder). */
  dataRoot?: string;
  outDir: string;
  choices?: Partial<LabelChoices>;
  /** Found peaks per frame of the image file, replacing the stream's tables (as `match --peaks`). */
  foundPeaks?: PeakList[];
  foundSource?: string;
  /** Extra mask files, as `peaks --mask`. */
  maskFiles?: string[];
  /** Frame dataset in the image files (default: the geometry's `data`). */
  dataPath?: string;
  onWarning?: (message: string) => void;
  /** After each block of the stream and each shard completed: bytes read, frames labelled so far. */
  onProgress?: (bytesRead: number, labelledFrames: number) => void;
  /** Runs the shard jobs (default: this thread). See createLabelExecutor. */
  executor?: LabelExecutor;
}

/** Runs shard jobs: on this thread, worker threads or a job queue. */
export interface LabelExecutor {
  /** Jobs in flight at once. */
  readonly concurrency: number;
  /** True: a failed job is recorded and the run goes on (a queue, after its retries); false: it stops the run. */
  readonly recordsFailures: boolean;
  run(job: LabelJob): Promise<ShardRecord>;
  close(): Promise<void>;
}

/** This thread, one job at a time. */
export const inlineExecutor: LabelExecutor = {
  concurrency: 1,
  recordsFailures: false,
  run: runLabelJob,
  close: async () => {},
};

/** `workers` worker threads, a job each. */
export function workerExecutor(workers: number): LabelExecutor {
  if (workers <= 1) return inlineExecutor;
  const pool = createWorkerPool<LabelJob, ShardRecord>(
    workerScriptUrl(import.meta.url, 'label-worker'),
    workers,
    undefined,
  );
  return {
    concurrency: workers,
    recordsFailures: false,
    run: (job) => pool.run(job),
    close: async () => pool.close(),
  };
}

/** Where an image named by a stream is: absolute as is, else the first existing of the candidates. */
export function resolveImagePath(
  imageFilename: string,
  streamPath: string,
  dataRoot?: string,
): { path?: string; tried: string[] } {
  if (isAbsolute(imageFilename))
    return { path: existsSync(imageFilename) ? imageFilename : undefined, tried: [imageFilename] };
  const tried = [
    ...(dataRoot === undefined ? [] : [resolve(dataRoot, imageFilename)]),
    resolve(dirname(streamPath), imageFilename),
    resolve(imageFilename),
  ];
  const unique = [...new Set(tried)];
  return { path: unique.find((candidate) => existsSync(candidate)), tried: unique };
}

function atomicWriteJson(path: string, value: unknown): void {
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(temporary, path);
}

function readManifest(path: string): LabelManifest | undefined {
  if (!existsSync(path)) return undefined;
  let manifest: LabelManifest;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8')) as LabelManifest;
  } catch (error) {
    throw new UserError(`not a readable manifest (${(error as Error).message})`, path);
  }
  if (manifest.format !== MANIFEST_FORMAT)
    throw new UserError(
      `not a braggflow label manifest (format ${JSON.stringify(manifest.format)})`,
      path,
      'field format',
    );
  if (manifest.version > MANIFEST_VERSION)
    throw new UserError(
      `manifest version ${manifest.version} is newer than this braggflow reads (${MANIFEST_VERSION})`,
      path,
      'field version',
    );
  return manifest;
}

function sameChoices(a: LabelChoices, b: LabelChoices): keyof LabelChoices | undefined {
  for (const key of Object.keys(a) as (keyof LabelChoices)[]) {
    // As the manifest stores them (JSON: an unset limit, Infinity, reads back as null).
    if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) return key;
  }
  return undefined;
}

/** Runs the labelling (see the module comment) and returns the final manifest. */
export async function labelStream(options: LabelStreamOptions): Promise<LabelManifest> {
  const started = performance.now();
  const streamPath = resolve(options.streamPath);
  const streamBytes = statSync(streamPath, { throwIfNoEntry: false })?.size;
  if (streamBytes === undefined) throw new UserError('no such file', options.streamPath);
  let labelledFrames = 0;
  let bytesRead = 0;
  const progress = (bytes: number): void => {
    bytesRead = bytes;
    options.onProgress?.(bytesRead, labelledFrames);
  };
  const stream = await readStream(streamPath, { onWarning: options.onWarning, onBytesRead: progress });
  const { geometry, geometryName, geometryText } = loadGeometry(options, stream.geometryText);
  const maps = computePixelMaps(geometry);
  const panelIndex = new PanelIndex(geometry, maps.layout.panelSsOffset);

  const geometryGain = geometryAduPerPhoton(geometry);
  const choices: LabelChoices = {
    ...defaultLabelChoices,
    gain: geometryGain !== undefined && geometryGain > 0 ? geometryGain : 1,
    ...options.choices,
  };
  // What else decides which frames are labelled and how: a restart must see the same.
  const inputsHash = createHash('sha256');
  inputsHash.update(
    JSON.stringify([
      geometryText,
      options.maskFiles ?? [],
      options.dataPath ?? null,
      options.dataRoot === undefined ? null : resolve(options.dataRoot),
    ]),
  );
  for (const list of options.foundPeaks ?? []) {
    inputsHash.update(new Uint8Array(list.fs.buffer, list.fs.byteOffset, 4 * list.count));
    inputsHash.update(new Uint8Array(list.ss.buffer, list.ss.byteOffset, 4 * list.count));
    inputsHash.update('|');
  }
  const inputs = inputsHash.digest('hex').slice(0, 16);
  if (!Number.isInteger(choices.shardFrames) || choices.shardFrames < 1)
    throw new UserError(`frames per shard must be a positive integer, got ${choices.shardFrames}`);

  mkdirSync(options.outDir, { recursive: true });
  const outDir = resolve(options.outDir);
  const manifestPath = join(outDir, MANIFEST_NAME);
  const previous = readManifest(manifestPath);
  const nowIso = () => new Date().toISOString();
  let manifest: LabelManifest;
  if (previous !== undefined) {
    if (previous.stream !== streamPath || previous.streamBytes !== streamBytes) {
      throw new UserError(
        `holds labels of ${previous.stream} (${previous.streamBytes} bytes), not of ${streamPath} (${streamBytes} bytes): choose another --out`,
        manifestPath,
      );
    }
    if (previous.inputs !== inputs) {
      throw new UserError(
        'was made from other inputs (geometry, found peaks, mask files, data path or data root): choose another --out or the same inputs',
        manifestPath,
        'field inputs',
      );
    }
    const differs = sameChoices(previous.choices, choices);
    if (differs !== undefined) {
      throw new UserError(
        `was made with ${differs} = ${previous.choices[differs]}, this run asks for ${choices[differs]}: choose another --out or the same options`,
        manifestPath,
        `field choices.${differs}`,
      );
    }
    manifest = previous;
    delete manifest.failed;
  } else {
    manifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      stream: streamPath,
      streamBytes,
      geometry: geometryName,
      inputs,
      choices,
      shards: [],
      complete: false,
      totals: emptyTotals(),
      provenance: {
        braggflowVersion: BRAGGFLOW_VERSION,
        startedAt: nowIso(),
        updatedAt: nowIso(),
        wallSeconds: 0,
      },
    };
  }
  // Part files were being written when a run stopped. A whole shard the manifest does not list (a
  // queue worker finished it after its coordinator stopped) stays: its job runs again and rewrites it.
  for (const name of readdirSync(outDir)) if (isPartFile(name)) rmSync(join(outDir, name));
  const done = new Set(manifest.shards.map((shard) => shard.index));
  labelledFrames = manifest.shards.reduce((n, shard) => n + shard.frames, 0);
  if (manifest.complete) return manifest;
  const wallBefore = manifest.provenance.wallSeconds;
  const counts = { chunks: 0, indexedFrames: 0, selectedFrames: 0 };

  const writeManifest = (): void => {
    manifest.shards.sort((a, b) => a.index - b.index);
    manifest.totals = totalsOf(manifest.shards, counts);
    manifest.provenance.updatedAt = nowIso();
    manifest.provenance.wallSeconds = wallBefore + (performance.now() - started) / 1000;
    atomicWriteJson(manifestPath, manifest);
  };

  const fit: FitOptions = {
    windowPx: choices.windowPx,
    weighting: choices.weighting,
    gain: choices.gain,
    maxReducedChiSquare: choices.maxReducedChiSquare,
    // The spot's significance is judged on its label pixels' sum (labelFrame's minSnr), not on the
    // fitted height, whose error is meaningless for spots narrower than a pixel.
    minAmplitudeSnr: 0,
    minHwhmPx: choices.minHwhmPx,
    supersample: choices.supersample,
    allowUnresolved: true,
    maxIterations: 100,
  };
  const key = createHash('sha256')
    .update(JSON.stringify([outDir, streamPath, streamBytes, inputs, choices]))
    .digest('hex')
    .slice(0, 12);
  const makeJob = (index: number, frames: LabelJobFrame[]): LabelJob => ({
    key,
    index,
    outDir,
    geometryText,
    geometrySource: geometryName,
    dataPath: options.dataPath,
    maskFiles: options.maskFiles?.map((spec) => spec),
    fit,
    minSnr: choices.minSnr,
    compression: choices.compression,
    frames,
  });

  /** The stream's shard jobs in order (all of them: the caller skips the done ones). */
  async function* jobs(): AsyncGenerator<LabelJob> {
    let chunkIndex = -1;
    let frames: LabelJobFrame[] = [];
    let pending = 0;
    let index = 0;
    for await (const chunk of stream.chunks) {
      chunkIndex++;
      counts.chunks++;
      if (!isIndexed(chunk)) continue;
      counts.indexedFrames++;
      let found: PeakList | undefined;
      if (options.foundPeaks !== undefined) {
        const frame = eventFrameIndex(chunk.event);
        found = frame === undefined ? undefined : options.foundPeaks[frame];
        if (found === undefined) {
          throw new UserError(
            `${options.foundSource ?? 'the found peaks'} has no frame for event '${chunk.event}'`,
            options.streamPath,
            `line ${chunk.sourceLine}`,
          );
        }
      }
      const match = matchChunk(chunk, chunkIndex, panelIndex, { radiusPx: choices.radiusPx, found });
      if (
        match.matched < choices.minMatched ||
        match.precision < choices.minPrecision ||
        match.recall < choices.minRecall
      )
        continue;
      counts.selectedFrames++;
      pending++;
      // A complete shard's frames only need counting.
      if (!done.has(index)) frames.push(jobFrame(chunk, match, choices.unmatched));
      if (pending === choices.shardFrames) {
        if (!done.has(index)) yield makeJob(index, frames);
        index++;
        frames = [];
        pending = 0;
      }
    }
    if (pending > 0 && !done.has(index)) yield makeJob(index, frames);
  }

  /** The job's frame: its image resolved now, so a missing file names the stream line. */
  const jobFrame = (chunk: StreamChunk, match: ChunkMatch, unmatched: boolean): LabelJobFrame => {
    const where = `line ${chunk.sourceLine}`;
    const { path, tried } = resolveImagePath(chunk.imageFilename, streamPath, options.dataRoot);
    if (path === undefined) {
      throw new UserError(
        `image '${chunk.imageFilename}' not found (tried ${tried.join(', ')}); --data-root names the folder it is in`,
        options.streamPath,
        where,
      );
    }
    const event = path.toLowerCase().endsWith('.cbf') ? 0 : eventFrameIndex(chunk.event);
    if (event === undefined)
      throw new UserError(`event '${chunk.event}' is not of the form //N`, options.streamPath, where);
    const points = match.foundPoints;
    const keep: number[] = [];
    for (let i = 0; i < points.count; i++) if (unmatched || match.foundToPredicted[i] >= 0) keep.push(i);
    const frame: LabelJobFrame = {
      chunk: match.chunk,
      file: path,
      event,
      found: match.found,
      predicted: match.predicted,
      matched: match.matched,
      fs: keep.map((i) => points.fs[i]),
      ss: keep.map((i) => points.ss[i]),
      panel: keep.map((i) => points.panel[i]),
    };
    if (chunk.photonEnergyEv !== undefined) frame.photonEnergyEv = chunk.photonEnergyEv;
    if (chunk.averageCameraLengthM !== undefined) frame.clenM = chunk.averageCameraLengthM;
    return frame;
  };

  const executor = options.executor ?? inlineExecutor;
  const inflight = new Set<Promise<void>>();
  const failed: { index: number; reason: string }[] = [];
  let firstError: unknown;
  const settle = async () => {
    await Promise.allSettled([...inflight]);
    if (firstError !== undefined) throw firstError;
  };
  try {
    for await (const job of jobs()) {
      if (firstError !== undefined) break;
      const running: Promise<void> = executor
        .run(job)
        .then((record) => {
          manifest.shards.push(record);
          labelledFrames += record.frames;
          writeManifest();
          options.onProgress?.(bytesRead, labelledFrames);
        })
        .catch((error: unknown) => {
          if (executor.recordsFailures) failed.push({ index: job.index, reason: reasonText(error) });
          else firstError ??= error;
        })
        .finally(() => inflight.delete(running));
      inflight.add(running);
      while (inflight.size >= executor.concurrency) await Promise.race(inflight);
    }
  } catch (error) {
    firstError ??= error;
  }
  await settle();
  if (failed.length > 0) {
    manifest.failed = failed.sort((a, b) => a.index - b.index);
    writeManifest();
    throw new UserError(
      `${failed.length} shard${failed.length === 1 ? '' : 's'} failed for good (${failed
        .slice(0, 3)
        .map((f) => `shard ${f.index}: ${f.reason}`)
        .join('; ')}${failed.length > 3 ? '; ...' : ''}); the manifest lists them; run again to retry them`,
      manifestPath,
    );
  }
  manifest.complete = true;
  writeManifest();
  // Attempts that died (a killed worker) leave their part files; the shards they were for are whole.
  for (const name of readdirSync(outDir)) if (isPartFile(name)) rmSync(join(outDir, name), { force: true });
  return manifest;
}

function isPartFile(name: string): boolean {
  return /^shard-\d+\.h5\..*\.part$/.test(name);
}

function reasonText(error: unknown): string {
  return error instanceof UserError ? error.toLine() : error instanceof Error ? error.message : String(error);
}

function emptyTotals(): LabelManifest['totals'] {
  return {
    chunks: 0,
    indexedFrames: 0,
    selectedFrames: 0,
    labelledFrames: 0,
    peaks: 0,
    badFits: 0,
    badReasons: {},
    labelledPixels: 0,
  };
}

function totalsOf(
  shards: readonly ShardRecord[],
  counts: { chunks: number; indexedFrames: number; selectedFrames: number },
): LabelManifest['totals'] {
  const totals = { ...emptyTotals(), ...counts };
  for (const shard of shards) {
    totals.labelledFrames += shard.frames;
    totals.peaks += shard.peaks;
    totals.badFits += shard.badFits;
    totals.labelledPixels += shard.labelledPixels;
    for (const [reason, n] of Object.entries(shard.badReasons))
      totals.badReasons[reason] = (totals.badReasons[reason] ?? 0) + n;
  }
  return totals;
}

function loadGeometry(
  options: LabelStreamOptions,
  streamGeometry?: string,
): { geometry: Geometry; geometryName: string; geometryText: string } {
  if (options.geometryPath !== undefined) {
    let text: string;
    try {
      text = readFileSync(options.geometryPath, 'utf8');
    } catch (error) {
      throw new UserError(
        `cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
        options.geometryPath,
      );
    }
    return {
      geometry: parseGeometry(text, options.geometryPath),
      geometryName: resolve(options.geometryPath),
      geometryText: text,
    };
  }
  if (streamGeometry === undefined || streamGeometry.trim() === '')
    throw new UserError('the stream has no geometry block: give --geom', options.streamPath);
  return {
    geometry: parseGeometry(streamGeometry, `${options.streamPath} (its geometry block)`),
    geometryName: "(the stream's geometry block)",
    geometryText: streamGeometry,
  };
}
