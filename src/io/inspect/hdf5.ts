/**
 * `braggflow inspect FILE.cxi|.h5`: the datasets (shape, type), the frame stack at
 * /entry_1/data_1/data (count, slab shape, sum of the first frame) and any CXI peak tables.
 */
import type { Group } from 'h5wasm/node';
import h5wasm from 'h5wasm/node';
import { cxiPeakDatasets, nPeaksDataset } from '../cxi-peaks.js';
import { defaultDataPath, openFrameReader } from '../cxi-reader.js';
import { describeDtype, findDataset, hdf5UserError, openHdf5, readSlice } from '../hdf5.js';

/** Datasets listed in full; beyond that only counted (a NeXus file can hold thousands). */
const maxListed = 200;

interface DatasetInfo {
  shape: number[];
  dtype: string;
}

function walk(
  group: Group,
  prefix: string,
  out: Map<string, DatasetInfo>,
  groups: string[],
  depth: number,
): void {
  if (depth > 32) return;
  for (const name of group.keys()) {
    const path = `${prefix}/${name}`;
    let entity: unknown;
    try {
      entity = group.get(name);
    } catch {
      continue; // broken or external link: listed as nothing rather than failing the summary
    }
    if (entity instanceof h5wasm.Dataset) {
      out.set(path, { shape: entity.shape ?? [], dtype: describeDtype(entity) });
    } else if (entity instanceof h5wasm.Group) {
      groups.push(path);
      walk(entity, path, out, groups, depth + 1);
    }
  }
}

export async function inspectHdf5(path: string): Promise<Record<string, unknown>> {
  const handle = await openHdf5(path);
  const datasets = new Map<string, DatasetInfo>();
  const groups: string[] = [];
  const summary: Record<string, unknown> = { format: 'hdf5' };
  try {
    try {
      walk(handle.file, '', datasets, groups, 0);
    } catch (error) {
      throw hdf5UserError(error, path);
    }
    summary.datasetCount = datasets.size;

    const frames = datasets.get(defaultDataPath);
    if (frames !== undefined && (frames.shape.length === 2 || frames.shape.length === 3)) {
      const reader = await openFrameReader(path, { dataPath: defaultDataPath });
      try {
        summary.dataPath = defaultDataPath;
        summary.frames = reader.frameCount;
        summary.shape = reader.slabShape;
        summary.dtype = reader.dtype;
        if (reader.frameCount > 0) {
          const first = reader.readFrame(0);
          let sum = 0;
          let min = Number.POSITIVE_INFINITY;
          let max = Number.NEGATIVE_INFINITY;
          for (let i = 0; i < first.length; i++) {
            const v = first[i];
            sum += v;
            if (v < min) min = v;
            if (v > max) max = v;
          }
          summary.sum = sum;
          summary.min = min;
          summary.max = max;
        }
      } finally {
        reader.close();
      }
    }

    const peakTables: Record<string, unknown>[] = [];
    for (const group of groups) {
      if (!datasets.has(`${group}/${nPeaksDataset}`) || !datasets.has(`${group}/${cxiPeakDatasets.fs}`))
        continue;
      const counts = findDataset(handle.file, `${group}/${nPeaksDataset}`);
      if (counts === undefined) continue;
      const n = counts.shape?.[0] ?? 0;
      const values = n > 0 ? readSlice(counts, path, []) : new Int32Array(0);
      let total = 0;
      for (let i = 0; i < values.length; i++) total += Number(values[i]);
      peakTables.push({
        group,
        frames: n,
        totalPeaks: total,
        maxPeaks: datasets.get(`${group}/${cxiPeakDatasets.fs}`)?.shape[1],
      });
    }
    if (peakTables.length > 0) summary.peakTables = peakTables;

    const listed: Record<string, DatasetInfo> = {};
    let count = 0;
    for (const [name, info] of datasets) {
      if (count++ >= maxListed) break;
      listed[name] = info;
    }
    summary.datasets = listed;
    return summary;
  } finally {
    handle.release();
  }
}
