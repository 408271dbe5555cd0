/**
 * Bad-pixel masks stored in HDF5 (`mask`/`mask_file`/`mask_good`/`mask_bad`, CrystFEL 1.0 `maskN_*`),
 * read with h5wasm and applied to a slab mask.
 *
 * The mask dataset must hold the slab's pixels: either exactly `ssSize * fsSize` values (2-D slab, or a
 * 3-D multi-panel block that reshapes to it), or a whole number of such frames with the event first
 * (as CXI files store a per-event mask); `eventIndex` picks the frame.
 *
 * A mask without `file` is read from the image data file, which the caller passes as `dataFile`.
 * Relative mask file names are tried against the working directory (CrystFEL's rule), then against the
 * geometry file's folder.
 */
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import h5wasm from 'h5wasm/node';
import { UserError } from '../util/errors.js';
import { applyMaskBits, geometryMask, panelSlabRect } from './mask.js';
import type { PixelMaps } from './pixel-maps.js';

export interface MaskFileOptions {
  /** Image file for masks without their own `mask_file`. */
  dataFile?: string;
  /** Frame to use when the mask dataset has an event axis (default 0). */
  eventIndex?: number;
  /**
   * Frames from no file (the simulator, a detector stream): masks the geometry reads from the image
   * file do not apply and are skipped (masks in their own `mask_file` still are).
   */
  noImageFile?: boolean;
  /** Extra mask files from the command line, `FILE[:DATASET]` (default /data/data; nonzero = good). */
  extraFiles?: readonly string[];
}

function resolveMaskFile(name: string, geometryPath: string | undefined): string {
  if (isAbsolute(name)) return name;
  const fromCwd = resolve(name);
  if (existsSync(fromCwd) || geometryPath === undefined) return fromCwd;
  const fromGeometry = resolve(dirname(geometryPath), name);
  return existsSync(fromGeometry) ? fromGeometry : fromCwd;
}

/** Reads one mask frame (slab layout) from an HDF5 file; integer words as a number array view. */
export async function readMaskDataset(
  file: string,
  dataPath: string,
  slabPixels: number,
  eventIndex = 0,
): Promise<ArrayLike<number>> {
  if (!existsSync(file)) throw new UserError('no such mask file', file);
  await h5wasm.ready;
  let h5: InstanceType<typeof h5wasm.File>;
  try {
    h5 = new h5wasm.File(file, 'r');
  } catch {
    throw new UserError('cannot open as HDF5', file);
  }
  try {
    const entity = h5.get(dataPath);
    if (!(entity instanceof h5wasm.Dataset))
      throw new UserError('no such mask dataset', file, `dataset ${dataPath}`);
    const shape = entity.shape ?? [];
    const total = shape.reduce((product, extent) => product * extent, 1);
    if (total === 0 || total % slabPixels !== 0) {
      throw new UserError(
        `mask shape [${shape.join(', ')}] does not hold the slab's ${slabPixels} pixels`,
        file,
        `dataset ${dataPath}`,
      );
    }
    const frames = total / slabPixels;
    if (!Number.isInteger(eventIndex) || eventIndex < 0 || eventIndex >= frames) {
      throw new UserError(`mask has ${frames} frame(s); no frame ${eventIndex}`, file, `dataset ${dataPath}`);
    }
    let values: unknown;
    if (frames === 1) values = entity.value;
    else values = entity.slice([[eventIndex, eventIndex + 1]]);
    return toWords(values, file, dataPath);
  } finally {
    h5.close();
  }
}

function toWords(values: unknown, file: string, dataPath: string): ArrayLike<number> {
  if (values instanceof BigInt64Array || values instanceof BigUint64Array) {
    // Mask bits fit in 32; keep the low word.
    const words = new Uint32Array(values.length);
    for (let i = 0; i < values.length; i++) words[i] = Number(BigInt.asUintN(32, values[i]));
    return words;
  }
  if (ArrayBuffer.isView(values) && !(values instanceof DataView))
    return values as unknown as ArrayLike<number>;
  throw new UserError('mask dataset is not numeric', file, `dataset ${dataPath}`);
}

/** Applies every panel's mask specs to `mask` in place; each distinct file/dataset is read once. */
export async function applyMaskFiles(
  mask: Uint8Array,
  maps: PixelMaps,
  options: MaskFileOptions = {},
): Promise<void> {
  const { geometry } = maps;
  const slabPixels = maps.ssSize * maps.fsSize;
  const cache = new Map<string, ArrayLike<number>>();
  for (let p = 0; p < geometry.panels.length; p++) {
    for (const spec of geometry.panels[p].masks) {
      if (spec.dataPath === undefined) continue;
      if (spec.dataPath.includes('%')) {
        throw new UserError(
          `mask location ${spec.dataPath} has a '%' placeholder, which is not supported`,
          geometry.sourcePath,
        );
      }
      let file: string;
      if (spec.file !== undefined) file = resolveMaskFile(spec.file, geometry.sourcePath);
      else if (options.noImageFile) continue;
      else if (options.dataFile !== undefined) file = options.dataFile;
      else {
        throw new UserError(
          `mask ${spec.index} (${spec.dataPath}) is read from the image file; pass the data file`,
          geometry.sourcePath,
        );
      }
      const key = `${file}\u0000${spec.dataPath}`;
      let words = cache.get(key);
      if (words === undefined) {
        words = await readMaskDataset(file, spec.dataPath, slabPixels, options.eventIndex ?? 0);
        cache.set(key, words);
      }
      applyMaskBits(mask, maps.fsSize, words, spec.goodBits, spec.badBits, panelSlabRect(maps, p));
    }
  }
}

/** Geometry mask plus mask files: the full bad-pixel mask (1 = good). */
export async function buildMask(maps: PixelMaps, options: MaskFileOptions = {}): Promise<Uint8Array> {
  const mask = geometryMask(maps);
  await applyMaskFiles(mask, maps, options);
  await applyExtraMaskFiles(mask, maps.ssSize * maps.fsSize, options.extraFiles ?? []);
  return mask;
}

/**
 * Extra mask files given on the command line (`FILE[:DATASET]`, default dataset /data/data; nonzero
 * = good), applied to `mask` in place.
 */
async function applyExtraMaskFiles(
  mask: Uint8Array,
  slabPixels: number,
  specs: readonly string[],
): Promise<void> {
  for (const spec of specs) {
    const colon = spec.lastIndexOf(':');
    const hasDataset = colon > 0 && spec.slice(colon + 1).startsWith('/');
    const file = hasDataset ? spec.slice(0, colon) : spec;
    const dataset = hasDataset ? spec.slice(colon + 1) : '/data/data';
    const words = await readMaskDataset(file, dataset, slabPixels);
    for (let i = 0; i < slabPixels; i++) if (words[i] === 0) mask[i] = 0;
  }
}
