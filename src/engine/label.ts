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
 *     /entry_1/truth_1/{peakXPosRaw,...,nPeaks}                    the fitted peaks (CXI peak table)
 *     /entry_1/truth_1/{sourceFile,sourceEvent,streamChunk,found,predicted,matched,badFits}  per frame
 *     /entry_1/truth_1/sourceFiles            strings: the image files, by sourceFile index
 *     /entry_1/instrument_1/...               per-frame photon energy and camera length (the stream's)
 *   DIR/manifest.json                         shards, counts, options, provenance; what is done
 *
 * Resumable: the manifest is rewritten (atomically) after each shard is closed; a restarted run with
 * the same stream and options skips the chunks the manifest says are done and rewrites the shard that
 * was being written when it stopped. Different options into the same folder is an error.
 */
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
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { panelSlabRect, type SlabRect } from '../detector/mask.js';
import { buildMask } from '../detector/mask-file.js';
import { computePixelMaps } from '../detector/pixel-maps.js';
import { cbfToSlab, readCbf } from '../io/cbf.js';
import { type FrameReader, openFrameReader } from '../io/cxi-reader.js';
import { type CxiWriter, createCxiWriter } from '../io/cxi-writer.js';
import { type Geometry, parseGeometry } from '../io/geom.js';
import { readStream } from '../io/stream/reader.js';
import type { StreamChunk } from '../io/stream/types.js';
import type { PeakList } from '../peaks/peak-list.js';
import { UserError } from '../util/errors.js';
import { BRAGGFLOW_VERSION } from '../util/version.js';
import { labelFrame } from './label-frame.js';
import type { FitWeighting } from './pseudo-voigt.js';
import {
  type ChunkMatch,
  DEFAULT_MATCH_RADIUS_PX,
  eventFrameIndex,
  isIndexed,
  matchChunk,
  PanelIndex,
} from './stream-match.js';

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

export interface ShardRecord {
  /** File name inside the output folder. */
  file: string;
  frames: number;
  /** Stream chunks (0-based) of its first and last frame. */
  firstChunk: number;
  lastChunk: number;
  peaks: number;
  labelledPixels: number;
  badFits: number;
}

export interface LabelManifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  /** The stream, as given and absolute. */
  stream: string;
  streamBytes: number;
  geometry: string;
  choices: LabelChoices;
  shards: ShardRecord[];
  /** Chunks of the stream fully accounted for by the shards (resume from here). */
  chunksDone: number;
  complete: boolean;
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
  /** After each block of the stream: bytes read, frames labelled so far. */
  onProgress?: (bytesRead: number, labelledFrames: number) => void;
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

interface OpenShard {
  record: ShardRecord;
  writer: CxiWriter;
  files: Map<string, number>;
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
  const { geometry, geometryName } = loadGeometry(options, stream.geometryText);
  const maps = computePixelMaps(geometry);
  const slabShape: [number, number] = [maps.ssSize, maps.fsSize];
  const rects: SlabRect[] = geometry.panels.map((_, p) => panelSlabRect(maps, p));
  const panelIndex = new PanelIndex(geometry, maps.layout.panelSsOffset);

  const geometryGain = geometry.panels[0]?.aduPerPhoton;
  const choices: LabelChoices = {
    ...defaultLabelChoices,
    gain: geometryGain !== undefined && geometryGain > 0 ? geometryGain : 1,
    ...options.choices,
  };
  if (!Number.isInteger(choices.shardFrames) || choices.shardFrames < 1)
    throw new UserError(`frames per shard must be a positive integer, got ${choices.shardFrames}`);

  mkdirSync(options.outDir, { recursive: true });
  const manifestPath = join(options.outDir, MANIFEST_NAME);
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
    const differs = sameChoices(previous.choices, choices);
    if (differs !== undefined) {
      throw new UserError(
        `was made with ${differs} = ${previous.choices[differs]}, this run asks for ${choices[differs]}: choose another --out or the same options`,
        manifestPath,
        `field choices.${differs}`,
      );
    }
    manifest = previous;
  } else {
    manifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      stream: streamPath,
      streamBytes,
      geometry: geometryName,
      choices,
      shards: [],
      chunksDone: 0,
      complete: false,
      totals: {
        chunks: 0,
        indexedFrames: 0,
        selectedFrames: 0,
        labelledFrames: 0,
        peaks: 0,
        badFits: 0,
        badReasons: {},
        labelledPixels: 0,
      },
      provenance: {
        braggflowVersion: BRAGGFLOW_VERSION,
        startedAt: nowIso(),
        updatedAt: nowIso(),
        wallSeconds: 0,
      },
    };
  }
  // Shard files the manifest does not list were being written when a run stopped: start them again.
  const listed = new Set(manifest.shards.map((shard) => shard.file));
  for (const name of readdirSync(options.outDir)) {
    if (/^shard-\d+\.h5$/.test(name) && !listed.has(name)) rmSync(join(options.outDir, name));
  }
  if (manifest.complete) return manifest;
  const wallBefore = manifest.provenance.wallSeconds;
  const resumeFrom = manifest.chunksDone;
  // Totals at the last closed shard; this run's counts are added to a copy and kept at each close.
  const totals = structuredClone(manifest.totals);

  labelledFrames = manifest.totals.labelledFrames;

  const readers = new Map<string, FrameReader>();
  let mask: Uint8Array | undefined;
  let shard: OpenShard | undefined;

  const imageOf = async (
    chunk: StreamChunk,
  ): Promise<{ image: Float32Array; file: string; event: number }> => {
    const where = `line ${chunk.sourceLine}`;
    const { path, tried } = resolveImagePath(chunk.imageFilename, streamPath, options.dataRoot);
    if (path === undefined) {
      throw new UserError(
        `image '${chunk.imageFilename}' not found (tried ${tried.join(', ')}); --data-root names the folder it is in`,
        options.streamPath,
        where,
      );
    }
    const event = eventFrameIndex(chunk.event);
    if (event === undefined)
      throw new UserError(`event '${chunk.event}' is not of the form //N`, options.streamPath, where);
    mask ??= await buildMask(maps, {
      dataFile: path.toLowerCase().endsWith('.cbf') ? undefined : path,
      extraFiles: options.maskFiles,
    });
    if (path.toLowerCase().endsWith('.cbf')) {
      const slab = cbfToSlab(readCbf(path));
      if (slab.shape[0] !== slabShape[0] || slab.shape[1] !== slabShape[1])
        throw new UserError(
          `image [ss, fs] = [${slab.shape.join(', ')}] does not match the geometry's slab [${slabShape.join(', ')}]`,
          path,
        );
      return { image: Float32Array.from(slab.data), file: path, event: 0 };
    }
    let reader = readers.get(path);
    if (reader === undefined) {
      // A few files open at once: streams go through their files in order.
      if (readers.size >= 4) {
        const [oldest, open] = readers.entries().next().value as [string, FrameReader];
        open.close();
        readers.delete(oldest);
      }
      reader = await openFrameReader(path, {
        expectedSlabShape: slabShape,
        dataPath: options.dataPath ?? dataPathOf(geometry),
      });
      readers.set(path, reader);
    }
    return { image: new Float32Array(reader.readFrame(event)), file: path, event };
  };

  const openShard = async (firstChunk: number): Promise<OpenShard> => {
    const file = `shard-${String(manifest.shards.length).padStart(5, '0')}.h5`;
    const writer = await createCxiWriter(join(options.outDir, file), {
      peakGroup: '/entry_1/truth_1',
      frames: { slabShape, dtype: 'float32', compression: choices.compression },
      perFrameScalars: true,
    });
    return {
      record: { file, frames: 0, firstChunk, lastChunk: firstChunk, peaks: 0, labelledPixels: 0, badFits: 0 },
      writer,
      files: new Map(),
    };
  };

  const closeShard = (chunksDone: number): void => {
    if (shard !== undefined) {
      const names = [...shard.files.keys()].map((path) => relative(options.outDir, path));
      shard.writer.writeStrings('sourceFiles', names);
      shard.writer.close();
      manifest.shards.push(shard.record);
      shard = undefined;
    }
    manifest.chunksDone = chunksDone;
    manifest.totals = structuredClone(totals);
    manifest.provenance.updatedAt = nowIso();
    manifest.provenance.wallSeconds = wallBefore + (performance.now() - started) / 1000;
    atomicWriteJson(manifestPath, manifest);
  };

  const fitOptions = {
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

  let chunkIndex = -1;
  try {
    for await (const chunk of stream.chunks) {
      chunkIndex++;
      if (chunkIndex < resumeFrom) continue;
      totals.chunks++;
      if (!isIndexed(chunk)) continue;
      totals.indexedFrames++;
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
      totals.selectedFrames++;
      const { image, file, event } = await imageOf(chunk);
      const toFit = peaksToFit(match, choices.unmatched);
      const result = labelFrame({
        image,
        fsSize: maps.fsSize,
        ssSize: maps.ssSize,
        mask: mask!,
        panels: rects,
        peaks: toFit,
        fit: fitOptions,
        minSnr: choices.minSnr,
      });
      shard ??= await openShard(chunkIndex);
      const writer = shard.writer;
      writer.appendFrame({
        peaks: result.peaks,
        image,
        photonEnergyEv: chunk.photonEnergyEv,
        clenM: chunk.averageCameraLengthM,
      });
      writer.appendExtra('mask', result.labels, slabShape);
      let fileIndex = shard.files.get(file);
      if (fileIndex === undefined) {
        fileIndex = shard.files.size;
        shard.files.set(file, fileIndex);
      }
      const badFits = result.bad.reduce((n, b) => n + b, 0);
      writer.appendExtra('sourceFile', Int32Array.of(fileIndex), []);
      writer.appendExtra('sourceEvent', Int32Array.of(event), []);
      writer.appendExtra('streamChunk', Int32Array.of(chunkIndex), []);
      writer.appendExtra('found', Int32Array.of(match.found), []);
      writer.appendExtra('predicted', Int32Array.of(match.predicted), []);
      writer.appendExtra('matched', Int32Array.of(match.matched), []);
      writer.appendExtra('badFits', Int32Array.of(badFits), []);
      const record = shard.record;
      record.frames++;
      record.lastChunk = chunkIndex;
      record.peaks += result.peaks.count;
      record.labelledPixels += result.labelledPixels;
      record.badFits += badFits;
      totals.labelledFrames++;
      totals.peaks += result.peaks.count;
      totals.badFits += badFits;
      totals.labelledPixels += result.labelledPixels;
      for (const [reason, count] of Object.entries(result.badReasons))
        totals.badReasons[reason] = (totals.badReasons[reason] ?? 0) + count;
      labelledFrames = totals.labelledFrames;
      options.onProgress?.(bytesRead, labelledFrames);
      if (record.frames >= choices.shardFrames) closeShard(chunkIndex + 1);
    }
    manifest.complete = true;
    closeShard(chunkIndex + 1);
  } finally {
    // A failure leaves the open shard unlisted: the next run writes it again.
    if (shard !== undefined) {
      try {
        shard.writer.close();
      } catch {
        // The run is failing already; its error is the one to report.
      }
    }
    for (const reader of readers.values()) reader.close();
  }
  return manifest;
}

/** Matched found peaks (and the unmatched ones when asked), as slab positions with panels. */
function peaksToFit(match: ChunkMatch, unmatched: boolean) {
  const points = match.foundPoints;
  const keep: number[] = [];
  for (let i = 0; i < points.count; i++) if (unmatched || match.foundToPredicted[i] >= 0) keep.push(i);
  return {
    count: keep.length,
    fs: Float64Array.from(keep, (i) => points.fs[i]),
    ss: Float64Array.from(keep, (i) => points.ss[i]),
    panel: Int32Array.from(keep, (i) => points.panel[i]),
  };
}

function dataPathOf(geometry: Geometry): string | undefined {
  return geometry.panels[0]?.dataPath;
}

function loadGeometry(
  options: LabelStreamOptions,
  streamGeometry?: string,
): { geometry: Geometry; geometryName: string } {
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
    };
  }
  if (streamGeometry === undefined || streamGeometry.trim() === '')
    throw new UserError('the stream has no geometry block: give --geom', options.streamPath);
  return {
    geometry: parseGeometry(streamGeometry, `${options.streamPath} (its geometry block)`),
    geometryName: "(the stream's geometry block)",
  };
}
