/**
 * Reference peak lists for evaluation and tuning ("labels"): a CXI peak table (what `braggflow peaks`
 * writes, Cheetah/OnDA tables, the simulator's truth group) or JSON lists of `[fs, ss, I]`, one list
 * per frame, or a flat list `[[fs, ss, I], ...]` for a single frame (DIALS spots exported by hand,
 * hand-made test cases). Positions are slab pixels, 0.0 = centre of the first pixel, as everywhere.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { defaultPeakGroup, readPeakTable } from '../io/cxi-peaks.js';
import { findGroup, openHdf5 } from '../io/hdf5.js';
import { type PeakList, peakListFrom } from '../peaks/peak-list.js';
import { UserError } from '../util/errors.js';

/** The simulator's ground-truth group in its CXI files. */
export const truthPeakGroup = '/entry_1/truth_1';

const hdf5Signature = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

function readHead(path: string, length: number): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw new UserError(`cannot open: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, path);
  }
  try {
    const head = new Uint8Array(length);
    const got = readSync(fd, head, 0, length, 0);
    return head.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/** True when the file starts with the HDF5 signature (CXI, .h5); otherwise we read it as JSON. */
export function isHdf5File(path: string): boolean {
  const head = readHead(path, hdf5Signature.length);
  return head.length === hdf5Signature.length && hdf5Signature.every((byte, i) => head[i] === byte);
}

function isPeakEntry(value: unknown): value is unknown[] {
  return Array.isArray(value) && (value.length === 0 || typeof value[0] === 'number');
}

/** One frame's `[[fs, ss, I?], ...]` as a PeakList; `frame` names it in messages (absent: flat list). */
function framePeaks(value: unknown, path: string, frame?: number): PeakList {
  const prefix = frame === undefined ? '' : `frame ${frame}, `;
  if (!Array.isArray(value))
    throw new UserError(
      'expected a list of [fs, ss, I] peaks',
      path,
      frame === undefined ? undefined : `frame ${frame}`,
    );
  const fs: number[] = [];
  const ss: number[] = [];
  const intensity: number[] = [];
  value.forEach((peak, k) => {
    const ok =
      Array.isArray(peak) &&
      (peak.length === 2 || peak.length === 3) &&
      peak.every((x) => typeof x === 'number' && Number.isFinite(x));
    if (!ok) {
      throw new UserError(
        `expected [fs, ss, I] (finite numbers), found ${JSON.stringify(peak)?.slice(0, 60)}`,
        path,
        `${prefix}peak ${k}`,
      );
    }
    fs.push(peak[0]);
    ss.push(peak[1]);
    intensity.push(peak[2] ?? 0);
  });
  return peakListFrom({ fs, ss, totalIntensity: intensity });
}

/**
 * Parses JSON peak lists: a list of frames (each a list of peaks) or one flat list of peaks (one
 * frame). `[]` is one frame without peaks.
 */
export function parseJsonPeakLists(text: string, path: string): PeakList[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UserError(`not valid JSON (${(error as Error).message})`, path);
  }
  if (!Array.isArray(value))
    throw new UserError('expected a list of frames, each a list of [fs, ss, I] peaks', path);
  const flat = value.length === 0 || isPeakEntry(value[0]);
  if (flat) return [framePeaks(value, path)];
  return value.map((frame, f) => framePeaks(frame, path, f));
}

/**
 * Every frame's peaks from `path`: a CXI/HDF5 peak table under `group` (default
 * `/entry_1/result_1`), or JSON lists (the group is ignored).
 */
export async function readPeakLists(path: string, group?: string): Promise<PeakList[]> {
  if (isHdf5File(path)) return readPeakTable(path, group ?? defaultPeakGroup);
  return parseJsonPeakLists(readFileSync(path, 'utf8'), path);
}

/**
 * Reference peaks for tuning: as readPeakLists, but without a group a CXI file's simulator truth
 * (`/entry_1/truth_1`) is preferred over its found-peak table (`/entry_1/result_1`).
 */
export async function readLabelLists(path: string, group?: string): Promise<PeakList[]> {
  if (group !== undefined || !isHdf5File(path)) return readPeakLists(path, group);
  const handle = await openHdf5(path);
  let hasTruth: boolean;
  try {
    hasTruth = findGroup(handle.file, truthPeakGroup) !== undefined;
  } finally {
    handle.release();
  }
  return readPeakTable(path, hasTruth ? truthPeakGroup : defaultPeakGroup);
}
