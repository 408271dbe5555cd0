/**
 * CXI peak tables, the layout Cheetah and OnDA write and CrystFEL reads with `peak_list = GROUP` and
 * `peak_list_type = cxi`: under GROUP, `nPeaks` int32 [N] and per-peak float32 [N, maxPeaks] columns,
 * row i holding frame i's peaks in its first nPeaks[i] entries.
 *
 * Positions: `peakXPosRaw` is fs and `peakYPosRaw` is ss, slab pixels with 0.0 = centre of the first
 * pixel (CrystFEL adds the half-pixel itself when it reads them).
 */

import { createPeakList, type PeakColumn, type PeakList } from '../peaks/peak-list.js';
import { UserError } from '../util/errors.js';
import { findDataset, findGroup, getDataset, numericDtypeOf, openHdf5, readSlice } from './hdf5.js';

export const defaultPeakGroup = '/entry_1/result_1';

/** PeakList column -> CXI dataset name. The first three are what CrystFEL needs. */
export const cxiPeakDatasets: Record<PeakColumn, string> = {
  fs: 'peakXPosRaw',
  ss: 'peakYPosRaw',
  totalIntensity: 'peakTotalIntensity',
  snr: 'peakSNR',
  nPixels: 'peakNPixels',
  maxValue: 'peakMaximumValue',
};

export const nPeaksDataset = 'nPeaks';

/** Joins a group path and a member name. */
export function joinH5(group: string, name: string): string {
  return `${group.replace(/\/+$/, '')}/${name}`;
}

/** Frames read per hyperslab when reading a table: bounds memory for long runs. */
const framesPerBlock = 256;

/**
 * Every frame's peaks from the table under `group` (missing optional columns read as zero). Reads in
 * blocks of frames, and only the columns up to the block's largest nPeaks, so a wide, mostly empty
 * table of a long run costs what its peaks cost.
 */
export async function readPeakTable(path: string, group = defaultPeakGroup): Promise<PeakList[]> {
  const handle = await openHdf5(path);
  try {
    const file = handle.file;
    if (findGroup(file, group) === undefined) throw new UserError('no such group', path, `group ${group}`);
    const counts = getDataset(file, path, joinH5(group, nPeaksDataset));
    const countShape = counts.shape ?? [];
    if (countShape.length !== 1 || numericDtypeOf(counts) === undefined) {
      throw new UserError('expected a 1-D integer dataset', path, `dataset ${counts.path}`);
    }
    const frames = countShape[0];
    const nPeaks = frames === 0 ? new Int32Array(0) : readSlice(counts, path, []);
    const columns = new Map<PeakColumn, ReturnType<typeof getDataset>>();
    let width = Number.POSITIVE_INFINITY;
    for (const [column, name] of Object.entries(cxiPeakDatasets) as [PeakColumn, string][]) {
      const required = column === 'fs' || column === 'ss' || column === 'totalIntensity';
      const dataset = required
        ? getDataset(file, path, joinH5(group, name))
        : findDataset(file, joinH5(group, name));
      if (dataset === undefined) continue;
      const shape = dataset.shape ?? [];
      if (shape.length !== 2 || shape[0] < frames) {
        throw new UserError(
          `expected shape [${frames}, maxPeaks], found [${shape.join(', ')}]`,
          path,
          `dataset ${dataset.path}`,
        );
      }
      width = Math.min(width, shape[1]);
      columns.set(column, dataset);
    }
    const lists: PeakList[] = [];
    for (let start = 0; start < frames; start += framesPerBlock) {
      const end = Math.min(frames, start + framesPerBlock);
      let blockWidth = 0;
      for (let f = start; f < end; f++) {
        const n = Number(nPeaks[f]);
        if (!Number.isInteger(n) || n < 0 || n > width) {
          throw new UserError(
            `frame ${f} claims ${n} peaks; the table holds ${width} per frame`,
            path,
            `dataset ${counts.path}`,
          );
        }
        blockWidth = Math.max(blockWidth, n);
      }
      const blockLists: PeakList[] = [];
      for (let f = start; f < end; f++) {
        const list = createPeakList(Number(nPeaks[f]));
        list.count = Number(nPeaks[f]);
        blockLists.push(list);
      }
      if (blockWidth > 0) {
        for (const [column, dataset] of columns) {
          const values = readSlice(dataset, path, [
            [start, end],
            [0, blockWidth],
          ]);
          for (let f = start; f < end; f++) {
            const list = blockLists[f - start];
            const row = (f - start) * blockWidth;
            list[column].set(values.subarray(row, row + list.count));
          }
        }
      }
      lists.push(...blockLists);
    }
    return lists;
  } finally {
    handle.release();
  }
}
