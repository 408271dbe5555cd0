/**
 * Frame-at-a-time reading of CXI/HDF5 image stacks. A run can hold tens of thousands of frames of a
 * multi-megapixel detector, so we never load the dataset: each `readFrame(i)` asks libhdf5 for the
 * hyperslab [i, :, :] (chunked and deflate-compressed datasets included) and converts it to float32,
 * the type every downstream stage works in, copying it once out of h5wasm's heap into the output
 * (a new array, or the caller's: a reused buffer, a SharedArrayBuffer for frames that cross threads).
 *
 * Layouts: [N, ss, fs] (CrystFEL `dim0 = %`, `dim1 = ss`, `dim2 = fs`) or a single frame [ss, fs].
 * The arguments are plain (path, dataset path, slab shape) so this module does not depend on the
 * geometry parser; the geometry supplies them.
 */
import type { Dataset } from 'h5wasm/node';
import { UserError } from '../util/errors.js';
import {
  describeDtype,
  getDataset,
  type Hdf5Handle,
  type NumericDtype,
  numericDtypeOf,
  openHdf5,
  readSlice,
  readSliceInto,
} from './hdf5.js';

export const defaultDataPath = '/entry_1/data_1/data';

export interface FrameReaderOptions {
  /** Dataset holding the frames; default `/entry_1/data_1/data`. */
  dataPath?: string;
  /** The slab shape the geometry expects, [ss, fs]; a mismatch is a UserError naming both shapes. */
  expectedSlabShape?: [number, number];
}

export interface FrameReader {
  readonly path: string;
  readonly dataPath: string;
  readonly frameCount: number;
  /** [ss, fs] of one frame. */
  readonly slabShape: [number, number];
  /** Element type on disk. */
  readonly dtype: NumericDtype;
  /** Frame `i` as float32 [ss * fs], fs fastest; pass `out` to read into a buffer of your own. */
  readFrame(i: number, out?: Float32Array): Float32Array;
  close(): void;
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Opens the frame dataset, checks its shape and type; reads nothing else yet. */
export async function openFrameReader(path: string, options: FrameReaderOptions = {}): Promise<FrameReader> {
  const dataPath = options.dataPath ?? defaultDataPath;
  const where = `dataset ${dataPath}`;
  const handle = await openHdf5(path);
  try {
    const dataset = getDataset(handle.file, path, dataPath);
    const shape = dataset.shape;
    if (shape === null || (shape.length !== 2 && shape.length !== 3)) {
      throw new UserError(
        `expected frames [N, ss, fs] or one frame [ss, fs], found shape ${shape === null ? 'null' : shapeText(shape)}`,
        path,
        where,
      );
    }
    const dtype = numericDtypeOf(dataset);
    if (dtype === undefined)
      throw new UserError(`unsupported element type ${describeDtype(dataset)}`, path, where);
    const stacked = shape.length === 3;
    const slabShape: [number, number] = stacked ? [shape[1], shape[2]] : [shape[0], shape[1]];
    const expected = options.expectedSlabShape;
    if (expected !== undefined && (expected[0] !== slabShape[0] || expected[1] !== slabShape[1])) {
      throw new UserError(
        `frame shape [ss, fs] = ${shapeText(slabShape)} does not match the geometry's slab ${shapeText(expected)}`,
        path,
        where,
      );
    }
    return makeReader(handle, dataset, dataPath, stacked ? shape[0] : 1, slabShape, dtype, stacked);
  } catch (error) {
    handle.release();
    throw error;
  }
}

function makeReader(
  handle: Hdf5Handle,
  dataset: Dataset,
  dataPath: string,
  frameCount: number,
  slabShape: [number, number],
  dtype: NumericDtype,
  stacked: boolean,
): FrameReader {
  const path = handle.path;
  const pixels = slabShape[0] * slabShape[1];
  let closed = false;
  return {
    path,
    dataPath,
    frameCount,
    slabShape,
    dtype,
    readFrame(i: number, out?: Float32Array): Float32Array {
      if (closed) throw new Error(`frame reader for ${path} is closed`);
      if (!Number.isInteger(i) || i < 0 || i >= frameCount) {
        throw new UserError(
          `frame ${i} is out of range (the file has ${frameCount})`,
          path,
          `dataset ${dataPath}`,
        );
      }
      if (out !== undefined && out.length !== pixels)
        throw new Error(`output buffer has ${out.length} values, need ${pixels}`);
      const frame = out ?? new Float32Array(pixels);
      readSliceInto(dataset, path, stacked ? [[i, i + 1], [], []] : [], frame);
      return frame;
    },
    close() {
      if (closed) return;
      closed = true;
      handle.release();
    },
  };
}

/**
 * One frame's value of a per-frame scalar (photon energy, camera length): datasets of shape [N],
 * [N, 1], a scalar or [1] (the same value for every frame).
 */
export async function readPerFrameScalar(
  path: string,
  datasetPath: string,
  frameIndex: number,
): Promise<number> {
  const handle = await openHdf5(path);
  try {
    const dataset = getDataset(handle.file, path, datasetPath);
    const where = `dataset ${datasetPath}`;
    const shape = dataset.shape ?? [];
    const total = shape.reduce((a, b) => a * b, 1);
    if (numericDtypeOf(dataset) === undefined) {
      throw new UserError(`expected a number, found ${describeDtype(dataset)}`, path, where);
    }
    if (total === 1) return Number(readSlice(dataset, path, [])[0]);
    if (shape.length > 2 || (shape.length === 2 && shape[1] !== 1)) {
      throw new UserError(`expected one value per frame, found shape ${shapeText(shape)}`, path, where);
    }
    if (!Number.isInteger(frameIndex) || frameIndex < 0 || frameIndex >= shape[0]) {
      throw new UserError(
        `frame ${frameIndex} is out of range (the dataset has ${shape[0]} values)`,
        path,
        where,
      );
    }
    const ranges: [number, number][] =
      shape.length === 2
        ? [
            [frameIndex, frameIndex + 1],
            [0, 1],
          ]
        : [[frameIndex, frameIndex + 1]];
    return Number(readSlice(dataset, path, ranges)[0]);
  } finally {
    handle.release();
  }
}
