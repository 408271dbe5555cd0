/**
 * Streams a run to a CXI file frame by frame: every per-frame dataset is chunked with an unlimited
 * first dimension and grows as frames are appended, and the file is flushed every few frames, so
 * a live run is on disk as it goes and a crash loses at most the last few frames. Datasets grow a
 * flush's worth of rows at a time (each growth makes h5wasm re-read the dataset's metadata: per row
 * that was about half the cost of writing the peak tables) and are cut to the frames written before
 * each flush, so a flushed file holds exactly its frames.
 *
 * Layout (what CrystFEL reads with `peak_list = /entry_1/result_1` and `peak_list_type = cxi`):
 *
 *   PEAK_GROUP/nPeaks              int32   [N]            peaks kept for frame i
 *   PEAK_GROUP/peakXPosRaw         float32 [N, maxPeaks]  fs, slab pixels, 0.0 = centre of first pixel
 *   PEAK_GROUP/peakYPosRaw         float32 [N, maxPeaks]  ss
 *   PEAK_GROUP/peakTotalIntensity  float32 [N, maxPeaks]  ADU above background
 *   PEAK_GROUP/peakSNR, peakNPixels, peakMaximumValue     float32 [N, maxPeaks]
 *   PEAK_GROUP attributes: maxPeaks, peaksDropped (total over the run), framesTruncated
 *   /entry_1/data_1/data           [N, ss, fs] frames (optional; dtype and gzip level chosen by caller)
 *   /entry_1/instrument_1/source_1/energy            float64 [N]  photon energy in joules (CXI spec)
 *   /entry_1/instrument_1/source_1/photon_energy_eV  float64 [N]  the same in eV, for geometry files:
 *                                    `photon_energy = /entry_1/instrument_1/source_1/photon_energy_eV`
 *   /entry_1/instrument_1/detector_1/distance        float64 [N]  camera length in metres (CXI spec):
 *                                    `clen = /entry_1/instrument_1/detector_1/distance`
 *
 * Frames without a scalar get NaN. A frame with more than maxPeaks peaks keeps the strongest maxPeaks
 * (by total intensity); the drop is returned by appendFrame and counted in the attributes.
 *
 * `appendExtra` adds generic per-frame datasets (a mask [N, ss, fs] uint8, per-peak hkl [N, maxPeaks,
 * 3]...) so the simulator can write truth under `/entry_1/truth_1` with the same peak layout plus extras.
 */
import type { Dataset, File } from 'h5wasm/node';
import { type PeakList, peakColumns, strongestPeaks } from '../peaks/peak-list.js';
import { UserError } from '../util/errors.js';
import { cxiPeakDatasets, defaultPeakGroup, joinH5, nPeaksDataset } from './cxi-peaks.js';
import { defaultDataPath } from './cxi-reader.js';
import {
  createHdf5,
  dtypeOfArray,
  findGroup,
  h5TypeOf,
  hdf5UserError,
  type NumericArray,
  type NumericDtype,
  typedArrayOf,
} from './hdf5.js';

export const photonEnergyJoulePath = '/entry_1/instrument_1/source_1/energy';
export const photonEnergyEvPath = '/entry_1/instrument_1/source_1/photon_energy_eV';
export const cameraLengthPath = '/entry_1/instrument_1/detector_1/distance';

/** CODATA 2018 exact: joules per electronvolt. */
const joulePerEv = 1.602176634e-19;

export interface CxiFramesOptions {
  /** [ss, fs] of one frame. */
  slabShape: [number, number];
  dtype: NumericDtype;
  /** gzip level 1..9, or 0/undefined for none. */
  compression?: number;
  /** Default `/entry_1/data_1/data`. */
  dataPath?: string;
}

export interface CxiWriterOptions {
  /** Width of the peak tables; default 2048 (Cheetah's and OnDA's default). */
  maxPeaks?: number;
  /** Group holding the peak table; default `/entry_1/result_1`. */
  peakGroup?: string;
  /** Write frames too. */
  frames?: CxiFramesOptions;
  /** Create photon energy and camera length datasets from the start (otherwise at first value). */
  perFrameScalars?: boolean;
  /** Flush to disk every this many frames (default 8); close always flushes. */
  flushEvery?: number;
  /**
   * For a writer that may be killed mid-run (a pipeline sink): peak tables in one-row chunks without
   * compression, so rows written after the last flush never share a chunk, or a compressed block,
   * with rows before it; a killed file then reads back (unflushed rows may read as zeros). Costs
   * ~3x the peak tables' size on disk.
   */
  crashSafe?: boolean;
}

export interface CxiFrameRecord {
  peaks: PeakList;
  /** [ss * fs], fs fastest; converted to the frames dtype. */
  image?: NumericArray;
  photonEnergyEv?: number;
  clenM?: number;
}

export interface AppendResult {
  frameIndex: number;
  peaksWritten: number;
  /** Weakest peaks left out because the frame had more than maxPeaks. */
  peaksDropped: number;
}

export interface CxiWriter {
  readonly path: string;
  readonly maxPeaks: number;
  readonly frameCount: number;
  readonly peaksDropped: number;
  appendFrame(frame: CxiFrameRecord): AppendResult;
  /**
   * Writes `row` as the latest frame's row of the per-frame dataset `name` (under the peak group, or an
   * absolute path), created at first use as [N, ...rowShape] with the row's element type. `rowShape`
   * defaults to [row.length]; a shorter row is padded with zeros (per-peak columns of a frame with
   * fewer than maxPeaks peaks). Frames that get no row read as zeros.
   */
  appendExtra(name: string, row: NumericArray, rowShape?: number[]): void;
  /** Writes what was appended so far to disk (the file then reads back up to here after a crash). */
  flush(): void;
  /**
   * Makes `name` (an absolute path) an HDF5 external link to `target` in `file` (a path relative to
   * this file's folder, which HDF5 resolves from the linking file's location, as CrystFEL does).
   */
  linkExternal(name: string, file: string, target: string): void;
  /** Writes a 1-D string dataset (under the peak group, or an absolute path) once, e.g. a file table. */
  writeStrings(name: string, values: readonly string[]): void;
  close(): void;
}

/** Frame rows per chunk of the peak tables: 8 x 2048 float32 = 64 KiB, gzip level 1. */
const peakChunkFrames = 8;

interface GrowingDataset {
  dataset: Dataset;
  rowShape: number[];
  rowLength: number;
  dtype: NumericDtype;
  /** Its rows (the extent), kept here: asking h5wasm for the shape re-reads the metadata. */
  rows: number;
  /** Rows it grows by when a row lands beyond its end. */
  growBy: number;
}

function ensureGroup(file: File, path: string): void {
  const parts = path.split('/').filter((p) => p !== '');
  let current = '';
  for (const part of parts) {
    current = `${current}/${part}`;
    if (findGroup(file, current) === undefined) file.create_group(current.slice(1));
  }
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

function createGrowing(
  file: File,
  path: string,
  dtype: NumericDtype,
  rowShape: number[],
  chunkFrames: number,
  compression: number,
  growBy: number,
): GrowingDataset {
  ensureGroup(file, parentOf(path));
  const rowLength = rowShape.reduce((a, b) => a * b, 1);
  const dataset = file.create_dataset({
    name: path.replace(/^\/+/, ''),
    data: new typedArrayOf[dtype](0),
    shape: [0, ...rowShape],
    maxshape: [null, ...rowShape],
    chunks: [chunkFrames, ...rowShape.map((n) => Math.max(1, n))],
    dtype: h5TypeOf[dtype],
    ...(compression > 0 ? { compression } : {}),
  });
  return { dataset, rowShape, rowLength, dtype, rows: 0, growBy };
}

/** Gives the dataset exactly `rows` rows. */
function setRows(target: GrowingDataset, rows: number): void {
  if (target.rows === rows) return;
  target.dataset.resize([rows, ...target.rowShape]);
  target.rows = rows;
}

/** Writes `values` to row `index` (its first `values.length` entries along the last axis). */
function writeRow(target: GrowingDataset, index: number, values: NumericArray, partialLength?: number): void {
  if (index >= target.rows) setRows(target, Math.ceil((index + 1) / target.growBy) * target.growBy);
  if (partialLength !== undefined) {
    if (partialLength === 0) return;
    target.dataset.write_slice(
      [
        [index, index + 1],
        [0, partialLength],
      ],
      values,
    );
    return;
  }
  target.dataset.write_slice([[index, index + 1], ...target.rowShape.map((): [] => [])], values);
}

/** Converts to the dataset's element type when needed (typed-array conversion: truncation, wrapping). */
function asDtype(values: NumericArray, dtype: NumericDtype): NumericArray {
  return dtypeOfArray(values) === dtype ? values : new typedArrayOf[dtype](values);
}

export async function createCxiWriter(path: string, options: CxiWriterOptions = {}): Promise<CxiWriter> {
  const maxPeaks = options.maxPeaks ?? 2048;
  if (!Number.isInteger(maxPeaks) || maxPeaks < 1)
    throw new UserError(`maxPeaks must be a positive integer, got ${maxPeaks}`, path);
  const peakGroup = options.peakGroup ?? defaultPeakGroup;
  const flushEvery = Math.max(1, options.flushEvery ?? 8);
  // Rows a dataset grows by: a flush's worth (cut back to the frames written at each flush), at most 64.
  const growBy = Math.min(flushEvery, 64);
  const file = await createHdf5(path);

  let frameCount = 0;
  let peaksDropped = 0;
  let framesTruncated = 0;
  let closed = false;
  const scalars = new Map<string, GrowingDataset>();
  const extras = new Map<string, GrowingDataset>();
  const growing: GrowingDataset[] = [];

  const guard = <T>(where: string | undefined, action: () => T): T => {
    try {
      return action();
    } catch (error) {
      throw hdf5UserError(error, path, where);
    }
  };

  const tables = guard(`group ${peakGroup}`, () => {
    file.create_dataset({ name: 'cxi_version', data: new Int32Array([150]), shape: [], dtype: '<i' });
    const counts = createGrowing(file, joinH5(peakGroup, nPeaksDataset), 'int32', [], 1024, 0, growBy);
    const columns = peakColumns.map((column) => ({
      column,
      target: createGrowing(
        file,
        joinH5(peakGroup, cxiPeakDatasets[column]),
        'float32',
        [maxPeaks],
        options.crashSafe ? 1 : peakChunkFrames,
        options.crashSafe ? 0 : 1,
        growBy,
      ),
    }));
    growing.push(counts, ...columns.map((c) => c.target));
    return { counts, columns };
  });

  let frames: GrowingDataset | undefined;
  if (options.frames !== undefined) {
    const { slabShape, dtype, compression = 0 } = options.frames;
    const dataPath = options.frames.dataPath ?? defaultDataPath;
    frames = guard(`dataset ${dataPath}`, () =>
      createGrowing(file, dataPath, dtype, [...slabShape], 1, compression, growBy),
    );
    growing.push(frames);
  }

  const scalarDataset = (scalarPath: string, units: string): GrowingDataset => {
    let target = scalars.get(scalarPath);
    if (target === undefined) {
      const created = createGrowing(file, scalarPath, 'float64', [], 1024, 0, growBy);
      created.dataset.create_attribute('units', units);
      // Frames written before the first value have none: NaN, not a plausible 0.
      for (let i = 0; i < frameCount; i++) writeRow(created, i, new Float64Array([Number.NaN]));
      scalars.set(scalarPath, created);
      growing.push(created);
      target = created;
    }
    return target;
  };
  if (options.perFrameScalars) {
    guard(undefined, () => {
      scalarDataset(photonEnergyJoulePath, 'J');
      scalarDataset(photonEnergyEvPath, 'eV');
      scalarDataset(cameraLengthPath, 'm');
    });
  }

  const writeScalar = (scalarPath: string, units: string, index: number, value: number | undefined) => {
    if (value === undefined && !scalars.has(scalarPath)) return;
    writeRow(scalarDataset(scalarPath, units), index, new Float64Array([value ?? Number.NaN]));
  };

  /** Every dataset cut (or grown) to the frames written: before each flush, and at the end. */
  const exactRows = () => {
    for (const target of growing) setRows(target, frameCount);
  };
  const flushFile = () => {
    exactRows();
    file.flush();
  };

  const finish = () => {
    exactRows();
    const group = findGroup(file, peakGroup);
    if (group !== undefined) {
      group.create_attribute('maxPeaks', maxPeaks, null, '<i');
      group.create_attribute('peaksDropped', peaksDropped, null, '<i');
      group.create_attribute('framesTruncated', framesTruncated, null, '<i');
    }
  };

  return {
    path,
    maxPeaks,
    get frameCount() {
      return frameCount;
    },
    get peaksDropped() {
      return peaksDropped;
    },
    appendFrame(record: CxiFrameRecord): AppendResult {
      if (closed) throw new Error(`CXI writer for ${path} is closed`);
      const index = frameCount;
      const kept = strongestPeaks(record.peaks, maxPeaks);
      const dropped = record.peaks.count - kept.count;
      if (record.image !== undefined && frames === undefined) {
        throw new Error('appendFrame got an image but the writer was created without `frames`');
      }
      if (frames !== undefined) {
        if (record.image === undefined)
          throw new Error(`frame ${index} has no image; this writer stores frames`);
        if (record.image.length !== frames.rowLength) {
          throw new Error(
            `frame ${index} image has ${record.image.length} pixels, expected ${frames.rowLength}`,
          );
        }
      }
      guard(undefined, () => {
        writeRow(tables.counts, index, new Int32Array([kept.count]));
        for (const { column, target } of tables.columns) {
          writeRow(target, index, kept[column].subarray(0, kept.count), kept.count);
        }
        if (frames !== undefined && record.image !== undefined)
          writeRow(frames, index, asDtype(record.image, frames.dtype));
        const energyJ = record.photonEnergyEv === undefined ? undefined : record.photonEnergyEv * joulePerEv;
        writeScalar(photonEnergyJoulePath, 'J', index, energyJ);
        writeScalar(photonEnergyEvPath, 'eV', index, record.photonEnergyEv);
        writeScalar(cameraLengthPath, 'm', index, record.clenM);
      });
      frameCount++;
      peaksDropped += dropped;
      if (dropped > 0) framesTruncated++;
      if (frameCount % flushEvery === 0) guard(undefined, flushFile);
      return { frameIndex: index, peaksWritten: kept.count, peaksDropped: dropped };
    },
    appendExtra(name: string, row: NumericArray, rowShape?: number[]): void {
      if (closed) throw new Error(`CXI writer for ${path} is closed`);
      if (frameCount === 0) throw new Error('appendExtra writes the latest frame: call appendFrame first');
      const extraPath = name.startsWith('/') ? name : joinH5(peakGroup, name);
      const shape = rowShape ?? [row.length];
      const length = shape.reduce((a, b) => a * b, 1);
      if (row.length > length)
        throw new Error(`extra ${extraPath}: row has ${row.length} values, shape holds ${length}`);
      guard(`dataset ${extraPath}`, () => {
        let target = extras.get(extraPath);
        if (target === undefined) {
          // Small rows (a count, a scalar) share a chunk across frames, as the peak tables do, so a
          // long run does not make one tiny chunk per frame; large rows (a mask) get a chunk each.
          const chunkFrames = Math.max(1, Math.min(1024, Math.floor(4096 / Math.max(1, length))));
          target = createGrowing(
            file,
            extraPath,
            dtypeOfArray(row),
            shape,
            chunkFrames,
            length >= 1024 ? 1 : 0,
            growBy,
          );
          extras.set(extraPath, target);
          growing.push(target);
        }
        if (target.rowShape.join() !== shape.join()) {
          throw new Error(
            `extra ${extraPath}: row shape [${shape}] differs from the dataset's [${target.rowShape}]`,
          );
        }
        let values = asDtype(row, target.dtype);
        if (values.length < length) {
          const padded = new typedArrayOf[target.dtype](length);
          padded.set(values);
          values = padded;
        }
        writeRow(target, frameCount - 1, values);
      });
    },
    flush(): void {
      if (closed) throw new Error(`CXI writer for ${path} is closed`);
      guard(undefined, flushFile);
    },
    linkExternal(name: string, linkedFile: string, target: string): void {
      if (closed) throw new Error(`CXI writer for ${path} is closed`);
      guard(`link ${name}`, () => {
        ensureGroup(file, parentOf(name));
        file.create_external_link(linkedFile, target, name.replace(/^\/+/, ''));
      });
    },
    writeStrings(name: string, values: readonly string[]): void {
      if (closed) throw new Error(`CXI writer for ${path} is closed`);
      const target = name.startsWith('/') ? name : joinH5(peakGroup, name);
      guard(`dataset ${target}`, () => {
        ensureGroup(file, parentOf(target));
        if (values.length === 0)
          throw new Error(`strings ${target}: no values (h5wasm types a string dataset from them)`);
        file.create_dataset({ name: target.replace(/^\/+/, ''), data: [...values] });
      });
    },
    close(): void {
      if (closed) return;
      closed = true;
      try {
        guard(undefined, finish);
      } finally {
        file.close();
      }
    },
  };
}

/**
 * Where each row came from, as `peaks --out`, the pipeline's CXI sink and the data engine's shards
 * record it: per row `sourceFile` (an index into `sourceFiles`, files in order of first appearance)
 * and `sourceEvent` (the frame in that file, or a stream's number); `finish` writes `sourceFiles`.
 */
export function createSourceRows(writer: Pick<CxiWriter, 'appendExtra' | 'writeStrings'>): {
  /** The latest appended frame's source (call after appendFrame). */
  append(file: string, event: number): void;
  /** Writes the file table, when any row was appended; call once, before the writer closes. */
  finish(): void;
} {
  const files = new Map<string, number>();
  return {
    append(file, event) {
      let index = files.get(file);
      if (index === undefined) {
        index = files.size;
        files.set(file, index);
      }
      writer.appendExtra('sourceFile', Int32Array.of(index), []);
      writer.appendExtra('sourceEvent', Int32Array.of(event), []);
    },
    finish() {
      if (files.size > 0) writer.writeStrings('sourceFiles', [...files.keys()]);
    },
  };
}
