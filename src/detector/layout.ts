/**
 * Where each panel's pixels live in the 2-D "slab" that every per-pixel map and image uses.
 *
 * CXI style: all panels of one data block share one 2-D array `[ss, fs]`, panel P covering rows
 * minSs..maxSs and columns minFs..maxFs (inclusive). The slab is `max(maxSs)+1` by `max(maxFs)+1`.
 *
 * Panels whose `dimN` fix an index (multi-panel 3-D blocks such as `dim0 = %, dim1 = 3, dim2 = ss,
 * dim3 = fs`) are stacked along ss: the fixed indices of a data path are flattened row-major into a block
 * number b, and the panel's rows move down by `b * blockSs` (blockSs = that path's max(maxSs)+1). When the
 * fixed axes come before ss (the usual case) this is exactly the event's array reshaped to 2-D, so a
 * reader can fill the slab without copying. Panels reading different data paths are stacked the same way,
 * in order of first use. Readers should use `blocks` to find where each data block goes.
 */
import type { Geometry, Panel } from '../io/geom.js';
import { UserError } from '../util/errors.js';

/** A data block (one data path, one set of fixed indices) and the slab rows it fills. */
export interface SlabBlock {
  dataPath: string;
  /** Values of the fixed-index dims, in dim order (empty for an ordinary 2-D/3-D block). */
  fixedIndices: number[];
  /** First slab row of this block. */
  ssOffset: number;
  /** Rows the block spans (its path's max(maxSs)+1). */
  ssSize: number;
}

export interface SlabLayout {
  /** Slab shape: rows (ss) and columns (fs). */
  ssSize: number;
  fsSize: number;
  /** Per panel (same order as geometry.panels): rows added to the panel's min_ss/max_ss in the slab. */
  panelSsOffset: number[];
  /** Per panel: index into `blocks`. */
  panelBlock: number[];
  blocks: SlabBlock[];
}

/** Above this many slab pixels (8x a 16M detector) we refuse: each Float32 map would take 512 MB. */
export const MAX_SLAB_PIXELS = 2 ** 27;

function fixedDimPositions(panel: Panel): number[] {
  const positions: number[] = [];
  panel.dims.forEach((dim, index) => {
    if (typeof dim === 'number') positions.push(index);
  });
  return positions;
}

export function slabLayout(geometry: Geometry): SlabLayout {
  const where = geometry.sourcePath;
  // Group panels by data path, keeping first-use order.
  const byPath = new Map<string, number[]>();
  geometry.panels.forEach((panel, index) => {
    const list = byPath.get(panel.dataPath);
    if (list === undefined) byPath.set(panel.dataPath, [index]);
    else list.push(index);
  });

  const panelSsOffset = new Array<number>(geometry.panels.length).fill(0);
  const panelBlock = new Array<number>(geometry.panels.length).fill(0);
  const blocks: SlabBlock[] = [];
  let ssOffset = 0;
  let fsSize = 0;
  for (const [dataPath, indices] of byPath) {
    const first = geometry.panels[indices[0]];
    const positions = fixedDimPositions(first);
    let blockSs = 0;
    const extents = positions.map(() => 1);
    for (const index of indices) {
      const panel = geometry.panels[index];
      const own = fixedDimPositions(panel);
      if (own.length !== positions.length || own.some((position, k) => position !== positions[k])) {
        throw new UserError(
          `panels '${first.name}' and '${panel.name}' read ${dataPath} with different dim layouts`,
          where,
          `line ${panel.line}`,
        );
      }
      blockSs = Math.max(blockSs, panel.maxSs + 1);
      fsSize = Math.max(fsSize, panel.maxFs + 1);
      positions.forEach((position, k) => {
        extents[k] = Math.max(extents[k], (panel.dims[position] as number) + 1);
      });
    }
    const blockCount = extents.reduce((product, extent) => product * extent, 1);
    if (!Number.isSafeInteger(blockCount * blockSs) || blockCount * blockSs > MAX_SLAB_PIXELS) {
      throw new UserError(`data block ${dataPath} is too large to lay out`, where);
    }
    // Blocks are created for every fixed-index combination in use, placed at their flattened index.
    const blockIds = new Map<number, number>();
    for (const index of indices) {
      const panel = geometry.panels[index];
      let flat = 0;
      positions.forEach((position, k) => {
        flat = flat * extents[k] + (panel.dims[position] as number);
      });
      let blockId = blockIds.get(flat);
      if (blockId === undefined) {
        blockId = blocks.length;
        blockIds.set(flat, blockId);
        blocks.push({
          dataPath,
          fixedIndices: positions.map((position) => panel.dims[position] as number),
          ssOffset: ssOffset + flat * blockSs,
          ssSize: blockSs,
        });
      }
      panelBlock[index] = blockId;
      panelSsOffset[index] = ssOffset + flat * blockSs;
    }
    ssOffset += blockCount * blockSs;
  }
  if (ssOffset * fsSize > MAX_SLAB_PIXELS) {
    throw new UserError(`slab of ${ssOffset} x ${fsSize} pixels is too large`, where);
  }
  return { ssSize: ssOffset, fsSize, panelSsOffset, panelBlock, blocks };
}
