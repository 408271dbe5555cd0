/**
 * Bad-pixel mask over the slab (Uint8Array, 1 = good) from what the geometry says: pixels outside every
 * panel, `no_index` panels, `mask_edge_pixels`, and bad regions in both forms. Mask files are applied
 * on top by `applyMaskBits` (see mask-file.ts for reading them).
 */
import type { BadRegion, Panel } from '../io/geom.js';
import type { PixelMaps } from './pixel-maps.js';

/** Inclusive slab rectangle of a panel. */
export interface SlabRect {
  ss0: number;
  ss1: number;
  fs0: number;
  fs1: number;
}

export function panelSlabRect(maps: PixelMaps, p: number): SlabRect {
  const panel = maps.geometry.panels[p];
  const offset = maps.layout.panelSsOffset[p];
  return { ss0: panel.minSs + offset, ss1: panel.maxSs + offset, fs0: panel.minFs, fs1: panel.maxFs };
}

function clearRect(mask: Uint8Array, fsSize: number, rect: SlabRect): void {
  for (let ss = rect.ss0; ss <= rect.ss1; ss++)
    mask.fill(0, ss * fsSize + rect.fs0, ss * fsSize + rect.fs1 + 1);
}

function panelsOf(maps: PixelMaps, region: BadRegion): number[] {
  const panels = maps.geometry.panels;
  if (region.panel !== undefined) {
    const index = panels.findIndex((panel) => panel.name === region.panel);
    return index >= 0 ? [index] : [];
  }
  return panels.map((_, index) => index);
}

/** fs/ss region: data-block coordinates, clipped to each panel it applies to. */
function applyFsssRegion(
  mask: Uint8Array,
  maps: PixelMaps,
  region: Extract<BadRegion, { kind: 'fsss' }>,
): void {
  for (const p of panelsOf(maps, region)) {
    const panel = maps.geometry.panels[p];
    const offset = maps.layout.panelSsOffset[p];
    const rect: SlabRect = {
      fs0: Math.max(region.minFs, panel.minFs),
      fs1: Math.min(region.maxFs, panel.maxFs),
      ss0: Math.max(region.minSs, panel.minSs) + offset,
      ss1: Math.min(region.maxSs, panel.maxSs) + offset,
    };
    if (rect.fs0 <= rect.fs1 && rect.ss0 <= rect.ss1) clearRect(mask, maps.fsSize, rect);
  }
}

/**
 * x/y region: as CrystFEL, a pixel is bad when its first corner (f, s integer, in that panel's pixels)
 * lies strictly inside the region.
 */
function applyXyRegion(mask: Uint8Array, maps: PixelMaps, region: Extract<BadRegion, { kind: 'xy' }>): void {
  for (const p of panelsOf(maps, region)) {
    const panel: Panel = maps.geometry.panels[p];
    const { fs, ss } = panel;
    const cornerX = panel.cornerXPx + maps.shiftXM * panel.resPxPerM;
    const cornerY = panel.cornerYPx + maps.shiftYM * panel.resPxPerM;
    const rect = panelSlabRect(maps, p);
    for (let s = 0; s <= rect.ss1 - rect.ss0; s++) {
      const rowX = cornerX + s * ss.x;
      const rowY = cornerY + s * ss.y;
      let i = (rect.ss0 + s) * maps.fsSize + rect.fs0;
      for (let f = 0; f <= rect.fs1 - rect.fs0; f++, i++) {
        const x = rowX + f * fs.x;
        const y = rowY + f * fs.y;
        if (x > region.minX && x < region.maxX && y > region.minY && y < region.maxY) mask[i] = 0;
      }
    }
  }
}

function applyEdges(mask: Uint8Array, maps: PixelMaps, p: number, edge: number): void {
  const rect = panelSlabRect(maps, p);
  const { fsSize } = maps;
  const parts: SlabRect[] = [
    { ...rect, ss1: Math.min(rect.ss1, rect.ss0 + edge - 1) },
    { ...rect, ss0: Math.max(rect.ss0, rect.ss1 - edge + 1) },
    { ...rect, fs1: Math.min(rect.fs1, rect.fs0 + edge - 1) },
    { ...rect, fs0: Math.max(rect.fs0, rect.fs1 - edge + 1) },
  ];
  for (const part of parts) clearRect(mask, fsSize, part);
}

/** The geometry's own mask: 1 = good, 0 = no panel, no_index panel, edge pixel or bad region. */
export function geometryMask(maps: PixelMaps): Uint8Array {
  const size = maps.ssSize * maps.fsSize;
  const mask = new Uint8Array(size);
  const { panelIndex } = maps;
  const panels = maps.geometry.panels;
  for (let i = 0; i < size; i++) {
    const p = panelIndex[i];
    mask[i] = p >= 0 && !panels[p].noIndex ? 1 : 0;
  }
  panels.forEach((panel, p) => {
    if (panel.maskEdgePixels > 0) applyEdges(mask, maps, p, panel.maskEdgePixels);
  });
  for (const region of maps.geometry.badRegions) {
    if (region.kind === 'fsss') applyFsssRegion(mask, maps, region);
    else applyXyRegion(mask, maps, region);
  }
  return mask;
}

/**
 * Marks bad, within `rect`, every pixel whose mask word lacks any of `goodBits` or has any of
 * `badBits` (CrystFEL semantics). `words` is laid out like the slab.
 */
export function applyMaskBits(
  mask: Uint8Array,
  fsSize: number,
  words: ArrayLike<number>,
  goodBits: number,
  badBits: number,
  rect: SlabRect,
): void {
  const good = goodBits >>> 0;
  const bad = badBits >>> 0;
  for (let ss = rect.ss0; ss <= rect.ss1; ss++) {
    const end = ss * fsSize + rect.fs1;
    for (let i = ss * fsSize + rect.fs0; i <= end; i++) {
      const word = words[i] >>> 0;
      if ((word & good) !== good || (word & bad) !== 0) mask[i] = 0;
    }
  }
}
