/**
 * Per-panel tiling: the model never sees across a panel seam. Each panel of the geometry (an ASIC, a
 * module) is cut out of the slab; along each axis, a panel no longer than the model's tile is padded
 * into one tile, a longer one is covered by tiles that overlap by at least `overlapPx`, evenly spaced.
 * Every panel pixel is *owned* by exactly one tile (overlaps are split at their middle), and only the
 * owner's decision for that pixel is kept, so a pixel is decided once and away from a tile's edge
 * where it can be.
 *
 * A file trained on tiles of several shapes says so (`maxPx`) and is served on panel-fitted tiles:
 * each panel axis in one tile of its length rounded up to the network's stride of 32 (under 32 px of
 * padding), up to `maxPx`, and an axis longer than that in overlapping tiles of `maxPx`. A CSPAD
 * ASIC (185 x 194) is then a 192 x 224 tile instead of 256 x 256, a Jungfrau module (512 x 1024) one
 * tile instead of 15 overlapping ones: a third and a half less model work, and no tile edge inside
 * a module. A model trained on one tile size only must not be served this way: it learns that size's
 * borders and, on a tile four times larger, flags most of the background.
 */
import type { PixelMaps } from '../detector/pixel-maps.js';
import type { TileSpec } from './model-file.js';

export interface Tile {
  panel: number;
  /** Slab origin of the tile's first pixel. */
  ss0: number;
  fs0: number;
  /** The tile's shape (the model's input for it): the file's tile, or longer where `maxPx` allows. */
  heightPx: number;
  widthPx: number;
  /** Rows and columns of the tile that hold panel pixels (the rest is padding). */
  rows: number;
  cols: number;
  /** Slab ranges this tile owns, [own0, own1). */
  ownSs0: number;
  ownSs1: number;
  ownFs0: number;
  ownFs1: number;
}

/** The network's total stride: a tile's sides are multiples of it. */
export const TILE_STRIDE_PX = 32;

/**
 * The tile length along a panel axis of `length` pixels: the file's tile (fixed tiles, no `maxPx`),
 * or the axis rounded up to the stride, at most `maxPx` (panel-fitted).
 */
export function axisTileLength(length: number, tilePx: number, maxPx?: number): number {
  if (maxPx === undefined) return tilePx;
  const fitted = Math.max(1, Math.ceil(length / TILE_STRIDE_PX)) * TILE_STRIDE_PX;
  return Math.min(fitted, maxPx);
}

/** Tile starts along one axis of `length` pixels, and the owned range of each. */
export function axisTiles(
  length: number,
  tilePx: number,
  overlapPx: number,
): { start: number; own0: number; own1: number }[] {
  if (length <= tilePx) return [{ start: 0, own0: 0, own1: length }];
  const step = tilePx - overlapPx;
  if (step <= 0) throw new Error(`tile overlap ${overlapPx} px must be smaller than the tile (${tilePx} px)`);
  const n = Math.ceil((length - overlapPx) / step);
  const starts = Array.from({ length: n }, (_, i) => Math.round((i * (length - tilePx)) / (n - 1)));
  return starts.map((start, i) => ({
    start,
    own0: i === 0 ? 0 : Math.floor((start + starts[i - 1] + tilePx) / 2),
    own1: i === n - 1 ? length : Math.floor((starts[i + 1] + start + tilePx) / 2),
  }));
}

/** The tiles of every panel of `maps`, in panel order. */
export function planTiles(maps: PixelMaps, tile: TileSpec): Tile[] {
  const tiles: Tile[] = [];
  maps.geometry.panels.forEach((panel, p) => {
    const ssBase = panel.minSs + maps.layout.panelSsOffset[p];
    const fsBase = panel.minFs;
    const rows = panel.maxSs - panel.minSs + 1;
    const cols = panel.maxFs - panel.minFs + 1;
    const heightPx = axisTileLength(rows, tile.heightPx, tile.maxPx);
    const widthPx = axisTileLength(cols, tile.widthPx, tile.maxPx);
    for (const s of axisTiles(rows, heightPx, tile.overlapPx)) {
      for (const f of axisTiles(cols, widthPx, tile.overlapPx)) {
        tiles.push({
          panel: p,
          ss0: ssBase + s.start,
          fs0: fsBase + f.start,
          heightPx,
          widthPx,
          rows: Math.min(heightPx, rows - s.start),
          cols: Math.min(widthPx, cols - f.start),
          ownSs0: ssBase + s.own0,
          ownSs1: ssBase + s.own1,
          ownFs0: fsBase + f.own0,
          ownFs1: fsBase + f.own1,
        });
      }
    }
  });
  return tiles;
}

/**
 * Copies a tile's pixels out of the slab into `values` ([tile.heightPx * tile.widthPx], row-major), with
 * `valid` = 1 where the pixel is on the tile's panel, good in `goodPixels` and finite; padding and
 * other pixels are 0 / invalid.
 */
export function cutTile(
  image: ArrayLike<number>,
  maps: PixelMaps,
  goodPixels: Uint8Array | undefined,
  tile: Tile,
  values: Float32Array,
  valid: Uint8Array,
): void {
  values.fill(0);
  valid.fill(0);
  const { fsSize, panelIndex } = maps;
  for (let r = 0; r < tile.rows; r++) {
    const slabRow = (tile.ss0 + r) * fsSize + tile.fs0;
    const tileRow = r * tile.widthPx;
    for (let c = 0; c < tile.cols; c++) {
      const i = slabRow + c;
      const v = image[i];
      if (panelIndex[i] !== tile.panel || (goodPixels !== undefined && !goodPixels[i]) || !Number.isFinite(v))
        continue;
      values[tileRow + c] = v;
      valid[tileRow + c] = 1;
    }
  }
}
