/**
 * The peak list shared by peak finders, sinks and writers: one frame's peaks as parallel typed arrays
 * (structure of arrays, like CrystFEL's `image_feature_list` flattened), so a list crosses workers and
 * files without per-peak objects.
 *
 * Positions are slab coordinates in pixels following CXI: `fs`/`ss`, 0.0 = centre of the first pixel.
 * Intensities are in detector units (ADU) above the local background; `snr` is dimensionless.
 */
export interface PeakList {
  count: number;
  fs: Float32Array;
  ss: Float32Array;
  totalIntensity: Float32Array;
  snr: Float32Array;
  nPixels: Float32Array;
  maxValue: Float32Array;
}

/** The per-peak columns of a PeakList, in the order writers store them. */
export const peakColumns = ['fs', 'ss', 'totalIntensity', 'snr', 'nPixels', 'maxValue'] as const;
export type PeakColumn = (typeof peakColumns)[number];

/** An empty list with room for `capacity` peaks (count 0); finders fill it and set `count`. */
export function createPeakList(capacity = 0): PeakList {
  return {
    count: 0,
    fs: new Float32Array(capacity),
    ss: new Float32Array(capacity),
    totalIntensity: new Float32Array(capacity),
    snr: new Float32Array(capacity),
    nPixels: new Float32Array(capacity),
    maxValue: new Float32Array(capacity),
  };
}

/** Builds a list from plain columns (tests, small tools); missing columns are zero. */
export function peakListFrom(
  columns: Partial<Record<PeakColumn, ArrayLike<number>>> & { fs: ArrayLike<number> },
): PeakList {
  const count = columns.fs.length;
  const list = createPeakList(count);
  list.count = count;
  for (const name of peakColumns) {
    const source = columns[name];
    if (source === undefined) continue;
    if (source.length !== count)
      throw new Error(`peak column ${name} has ${source.length} values, fs has ${count}`);
    list[name].set(source);
  }
  return list;
}

/** A copy holding exactly `count` peaks (drops unused capacity). */
export function trimPeakList(list: PeakList): PeakList {
  const out = createPeakList(list.count);
  out.count = list.count;
  for (const name of peakColumns) out[name].set(list[name].subarray(0, list.count));
  return out;
}

/**
 * The `limit` strongest peaks by total intensity (stable for ties), as a new list; the list itself
 * when it already fits. Writers use it to honour a fixed peak-table width.
 */
export function strongestPeaks(list: PeakList, limit: number): PeakList {
  const order = strongestOrder(list, limit);
  return order === undefined ? list : selectPeaks(list, order);
}

/**
 * The rows strongestPeaks keeps, strongest first (total intensity, ties by row): undefined when the
 * list fits. For callers that carry other per-peak columns along in the same order.
 */
export function strongestOrder(list: PeakList, limit: number): Int32Array | undefined {
  if (list.count <= limit) return undefined;
  const order = Array.from({ length: list.count }, (_, i) => i);
  order.sort((a, b) => list.totalIntensity[b] - list.totalIntensity[a] || a - b);
  return Int32Array.from(order.slice(0, limit));
}

/** The rows `order` names, in that order. */
export function selectPeaks(list: PeakList, order: ArrayLike<number>): PeakList {
  const out = createPeakList(order.length);
  out.count = order.length;
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    for (const name of peakColumns) out[name][k] = list[name][i];
  }
  return out;
}

/**
 * The `limit` strongest peaks (strongestOrder) with the same rows of a per-peak column beside them
 * (the simulator's spot indices, the data engine's fit quality); the list and the column's first
 * `count` entries as they are when they fit.
 */
export function strongestWithColumn<C extends Int32Array | Float32Array>(
  list: PeakList,
  column: C,
  limit: number,
): { peaks: PeakList; column: C } {
  const order = strongestOrder(list, limit);
  if (order === undefined) return { peaks: list, column: column.subarray(0, list.count) as C };
  const picked = column.slice(0, order.length) as C;
  order.forEach((i, k) => {
    picked[k] = column[i];
  });
  return { peaks: selectPeaks(list, order), column: picked };
}

/** The buffers behind a list's columns, each once: what a worker moves back instead of copying. */
export function peakListBuffers(list: PeakList): ArrayBuffer[] {
  return [...new Set(peakColumns.map((column) => list[column].buffer as ArrayBuffer))];
}
