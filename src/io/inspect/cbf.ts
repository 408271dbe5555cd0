/**
 * `braggflow inspect FILE.cbf`: the stacked slab (shape, sum, min, max) and each binary section
 * (array id, dimensions, compression, element type).
 */
import { cbfToSlab, readCbf } from '../cbf.js';

export function inspectCbf(path: string): Record<string, unknown> {
  const cbf = readCbf(path);
  const slab = cbfToSlab(cbf);
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  const data = slab.data;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return {
    format: 'cbf',
    shape: slab.shape,
    dtype: 'int32',
    sum,
    min,
    max,
    panels: slab.panels.length,
    arrays: cbf.arrays.map((a) => ({
      id: a.arrayId ?? null,
      binaryId: a.binaryId ?? null,
      shape: [...a.dims].reverse(),
      compression: a.compression,
      elementType: a.elementType,
      compressedBytes: a.compressedBytes,
    })),
  };
}
