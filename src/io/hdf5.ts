/**
 * Thin layer over h5wasm (HDF5 compiled to WebAssembly, host files through NODERAWFS): loads the
 * module once, shares one read handle per path, and turns HDF5's errors into UserErrors that name the
 * file and, where there is one, the dataset.
 *
 * HDF5 errors: by default libhdf5 prints a diagnostic stack to stderr and h5wasm returns an invalid id;
 * we switch h5wasm's throwing error handler on so failures become exceptions we can word for a person.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import h5wasm, { type Dataset, type File, type Group } from 'h5wasm/node';
import { UserError } from '../util/errors.js';
import type { NumericView } from '../util/worker-pool.js';

export type H5Module = typeof h5wasm;

let ready: Promise<H5Module> | undefined;
/** The compiled library itself (its heap, its C calls), once loaded: for readSliceInto. */
let wasm: Awaited<typeof h5wasm.ready> | undefined;

/** The h5wasm module, initialised once per process with errors thrown rather than printed. */
export function loadH5wasm(): Promise<H5Module> {
  ready ??= h5wasm.ready.then((module) => {
    module.activate_throwing_error_handler();
    wasm = module;
    return h5wasm;
  });
  return ready;
}

/**
 * The one line worth showing from an h5wasm error: the innermost HDF5 diagnostic (`file signature not
 * found`, `truncated file: eof = ...`) rather than the whole stack.
 */
export function hdf5ErrorMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const reasons = [...text.matchAll(/#\d+: .* in [\w.]+\(\): (.+)/g)].map((m) => m[1].trim());
  if (reasons.length > 0) return reasons[reasons.length - 1];
  return text.split('\n')[0].replace(/^Error: /, '');
}

/** A UserError for a failed HDF5 call on `file` (and `where`, e.g. `dataset /entry_1/data_1/data`). */
export function hdf5UserError(error: unknown, file: string, where?: string): UserError {
  if (error instanceof UserError) return error;
  const reason = hdf5ErrorMessage(error);
  const message = /signature not found/i.test(reason) ? 'not an HDF5 file' : `HDF5 error: ${reason}`;
  return new UserError(message, file, where);
}

/** A read handle shared by every reader of one path; the file closes when the last one releases it. */
export interface Hdf5Handle {
  readonly path: string;
  readonly file: File;
  release(): void;
}

interface OpenFile {
  file: File;
  users: number;
}

const openFiles = new Map<string, OpenFile>();

/**
 * Opens `path` read-only, or shares the handle already open for it: HDF5 refuses to open one file
 * twice with different modes, and reopening per frame would cost a superblock read each time.
 */
export async function openHdf5(path: string): Promise<Hdf5Handle> {
  const module = await loadH5wasm();
  const key = resolve(path);
  let entry = openFiles.get(key);
  if (entry === undefined) {
    if (!existsSync(path) || !statSync(path).isFile()) throw new UserError('no such file', path);
    let file: File;
    try {
      file = new module.File(key, 'r');
    } catch (error) {
      throw hdf5UserError(error, path);
    }
    if (file.file_id < 0n) throw new UserError('cannot open as HDF5', path);
    entry = { file, users: 0 };
    openFiles.set(key, entry);
  }
  entry.users++;
  const shared = entry;
  let released = false;
  return {
    path,
    file: shared.file,
    release() {
      if (released) return;
      released = true;
      shared.users--;
      if (shared.users === 0) {
        openFiles.delete(key);
        shared.file.close();
      }
    },
  };
}

/** Creates (truncates) `path` for writing; a shared read handle on it must not be open. */
export async function createHdf5(path: string): Promise<File> {
  const module = await loadH5wasm();
  const key = resolve(path);
  if (openFiles.has(key))
    throw new UserError('file is open for reading; close its readers before writing', path);
  try {
    return new module.File(key, 'w');
  } catch (error) {
    throw hdf5UserError(error, path);
  }
}

/** `/a/b` with or without the leading slash, as h5wasm wants it (relative to the root group). */
function relativePath(objectPath: string): string {
  return objectPath.replace(/^\/+/, '');
}

/** The dataset at `datasetPath`, or a UserError naming the file and the dataset. */
export function getDataset(file: File, filePath: string, datasetPath: string): Dataset {
  let entity: unknown;
  try {
    entity = relativePath(datasetPath) === '' ? file : file.get(relativePath(datasetPath));
  } catch (error) {
    throw hdf5UserError(error, filePath, `dataset ${datasetPath}`);
  }
  if (entity === null || entity === undefined)
    throw new UserError('no such dataset', filePath, `dataset ${datasetPath}`);
  if (!(entity instanceof h5wasm.Dataset)) {
    throw new UserError('is not a dataset (a group or link)', filePath, `dataset ${datasetPath}`);
  }
  return entity;
}

/** The dataset at `datasetPath`, or undefined when nothing is there. */
export function findDataset(file: File, datasetPath: string): Dataset | undefined {
  try {
    const entity = file.get(relativePath(datasetPath));
    return entity instanceof h5wasm.Dataset ? entity : undefined;
  } catch {
    return undefined;
  }
}

/** The group at `groupPath` or undefined. */
export function findGroup(file: File, groupPath: string): Group | undefined {
  if (relativePath(groupPath) === '') return file;
  try {
    const entity = file.get(relativePath(groupPath));
    return entity instanceof h5wasm.Group ? entity : undefined;
  } catch {
    return undefined;
  }
}

/** Numeric element types we read and write; HDF5 little-endian type strings beside them. */
export type NumericDtype = 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';

export const h5TypeOf: Record<NumericDtype, string> = {
  int8: '<b',
  uint8: '<B',
  int16: '<h',
  uint16: '<H',
  int32: '<i',
  uint32: '<I',
  float32: '<f',
  float64: '<d',
};

/** The NumericDtype of a dataset, or undefined for types we do not read (int64, strings, compounds). */
export function numericDtypeOf(dataset: Dataset): NumericDtype | undefined {
  const meta = dataset.metadata;
  if (meta.vlen) return undefined;
  if (meta.type === 1) return meta.size === 4 ? 'float32' : meta.size === 8 ? 'float64' : undefined;
  if (meta.type !== 0) return undefined;
  switch (meta.size) {
    case 1:
      return meta.signed ? 'int8' : 'uint8';
    case 2:
      return meta.signed ? 'int16' : 'uint16';
    case 4:
      return meta.signed ? 'int32' : 'uint32';
    default:
      return undefined;
  }
}

/** A readable name for a dataset's element type (for messages and `inspect`). */
export function describeDtype(dataset: Dataset): string {
  const numeric = numericDtypeOf(dataset);
  if (numeric !== undefined) return numeric;
  const meta = dataset.metadata;
  if (meta.type === 0) return `${meta.signed ? 'int' : 'uint'}${meta.size * 8}`;
  if (meta.type === 3) return 'string';
  return `hdf5 type ${meta.type} (${meta.size} bytes)`;
}

/** Typed-array constructors by dtype, for callers allocating rows. */
export const typedArrayOf = {
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  float32: Float32Array,
  float64: Float64Array,
} as const;

export type NumericArray = NumericView;

/** The NumericDtype matching a typed array. */
export function dtypeOfArray(array: NumericArray): NumericDtype {
  if (array instanceof Int8Array) return 'int8';
  if (array instanceof Uint8Array) return 'uint8';
  if (array instanceof Int16Array) return 'int16';
  if (array instanceof Uint16Array) return 'uint16';
  if (array instanceof Int32Array) return 'int32';
  if (array instanceof Uint32Array) return 'uint32';
  if (array instanceof Float32Array) return 'float32';
  return 'float64';
}

/** Reads `dataset[ranges]` (h5wasm slice ranges), mapping HDF5 failures (truncation...) to UserErrors. */
export function readSlice(
  dataset: Dataset,
  filePath: string,
  ranges: ([number, number] | [])[],
): NumericArray {
  let value: unknown;
  try {
    value = dataset.slice(ranges);
  } catch (error) {
    throw hdf5UserError(error, filePath, `dataset ${dataset.path}`);
  }
  if (!ArrayBuffer.isView(value) || value instanceof BigInt64Array || value instanceof BigUint64Array) {
    throw new UserError(
      `unsupported element type ${describeDtype(dataset)}`,
      filePath,
      `dataset ${dataset.path}`,
    );
  }
  return value as NumericArray;
}

/**
 * Reads `dataset[ranges]` (per dimension `[start, stop]`, or `[]` for all of it) straight into `out`,
 * converted to out's element type as TypedArray.set converts. One copy out of the WebAssembly heap
 * into a buffer of the caller's choice (a reused one, or a SharedArrayBuffer that threads share
 * without copying), where `slice` copies into a new buffer first and a conversion copies again.
 */
export function readSliceInto(
  dataset: Dataset,
  filePath: string,
  ranges: ([number, number] | [])[],
  out: NumericArray,
): void {
  const where = `dataset ${dataset.path}`;
  const dtype = numericDtypeOf(dataset);
  const shape = dataset.metadata.shape;
  if (wasm === undefined) throw new Error('readSliceInto: h5wasm is not loaded (open the file first)');
  if (dtype === undefined || shape === null)
    throw new UserError(`unsupported element type ${describeDtype(dataset)}`, filePath, where);
  const offset = shape.map((_, i) => BigInt(ranges[i]?.[0] ?? 0));
  const count = shape.map((n, i) => BigInt((ranges[i]?.[1] ?? n) - (ranges[i]?.[0] ?? 0)));
  const length = count.reduce((a, b) => a * b, 1n);
  if (length !== BigInt(out.length))
    throw new Error(`readSliceInto: the selection has ${length} values, the output ${out.length}`);
  const Element = typedArrayOf[dtype];
  const module = wasm;
  const pointer = module._malloc(out.length * Element.BYTES_PER_ELEMENT);
  if (pointer === 0) throw new Error(`readSliceInto: cannot allocate ${out.length} ${dtype} values`);
  try {
    module.get_dataset_data(
      dataset.file_id,
      dataset.path,
      count,
      offset,
      count.map(() => 1n),
      BigInt(pointer),
    );
    // The heap's buffer as it is after the call (it may have grown during it).
    out.set(new Element(module.HEAPU8.buffer as ArrayBuffer, pointer, out.length));
  } catch (error) {
    throw hdf5UserError(error, filePath, where);
  } finally {
    module._free(pointer);
  }
}
