/**
 * Lab-frame images for rendering: each image pixel takes the value of the slab pixel under its centre
 * (nearest pixel, found by inverting each panel's fs/ss vectors, so rotated panels leave no holes).
 *
 * Orientation follows the CrystFEL GUI ("into the beam"): +x to the right, +y up, so image row 0 is the
 * largest y. Image pixels are one pixel of the first panel (`resPxPerM`) wide; panels with another
 * pixel size are scaled. Panel z (tilt, coffset) is ignored: the image is the projection along the beam.
 *
 * `assemblyMap` does the geometry work once; `assemble` is then one gather per frame.
 */
import { UserError } from '../util/errors.js';
import type { PixelMaps } from './pixel-maps.js';

export interface AssemblyMap {
  widthPx: number;
  heightPx: number;
  /** Slab index for each image pixel (row-major), -1 where no panel. */
  slabIndex: Int32Array;
  /** Where the beam (lab x = y = 0) falls, in image pixels; 0.0 = centre of the first pixel. */
  beamCentrePx: { x: number; y: number };
  /** Image pixels per metre. */
  resPxPerM: number;
  /** Lab position (in image pixels) of the image's top-left corner. */
  originXPx: number;
  originYPx: number;
}

export interface AssembledImage {
  widthPx: number;
  heightPx: number;
  values: Float32Array;
  beamCentrePx: { x: number; y: number };
}

/** Refuse absurd images (a broken geometry far from the beam) rather than allocate gigabytes. */
const MAX_IMAGE_PIXELS = 2 ** 28;

export function assemblyMap(maps: PixelMaps): AssemblyMap {
  const panels = maps.geometry.panels;
  const resPxPerM = panels[0].resPxPerM;
  // Panel corners in image-pixel units (lab, beam at 0).
  const corners = panels.map((panel) => {
    const scale = resPxPerM / panel.resPxPerM;
    const w = panel.maxFs - panel.minFs + 1;
    const h = panel.maxSs - panel.minSs + 1;
    const cx = panel.cornerXPx + maps.shiftXM * panel.resPxPerM;
    const cy = panel.cornerYPx + maps.shiftYM * panel.resPxPerM;
    return [
      [cx, cy],
      [cx + w * panel.fs.x, cy + w * panel.fs.y],
      [cx + h * panel.ss.x, cy + h * panel.ss.y],
      [cx + w * panel.fs.x + h * panel.ss.x, cy + w * panel.fs.y + h * panel.ss.y],
    ].map(([x, y]) => [x * scale, y * scale]);
  });
  let minX = Number.POSITIVE_INFINITY;
  let maxX = Number.NEGATIVE_INFINITY;
  let minY = Number.POSITIVE_INFINITY;
  let maxY = Number.NEGATIVE_INFINITY;
  for (const panelCorners of corners) {
    for (const [x, y] of panelCorners) {
      minX = Math.min(minX, x);
      maxX = Math.max(maxX, x);
      minY = Math.min(minY, y);
      maxY = Math.max(maxY, y);
    }
  }
  const originX = Math.floor(minX);
  const originY = Math.ceil(maxY);
  const widthPx = Math.max(1, Math.ceil(maxX) - originX);
  const heightPx = Math.max(1, originY - Math.floor(minY));
  if (widthPx * heightPx > MAX_IMAGE_PIXELS) {
    throw new UserError(
      `assembled image of ${widthPx} x ${heightPx} pixels is too large`,
      maps.geometry.sourcePath,
    );
  }
  const slabIndex = new Int32Array(widthPx * heightPx).fill(-1);

  panels.forEach((panel, p) => {
    const scale = panel.resPxPerM / resPxPerM; // image pixels -> this panel's pixels
    const { fs, ss } = panel;
    const det = fs.x * ss.y - fs.y * ss.x;
    if (Math.abs(det) < 1e-12) return; // panel seen edge-on: nothing to draw
    const w = panel.maxFs - panel.minFs + 1;
    const h = panel.maxSs - panel.minSs + 1;
    const cx = panel.cornerXPx + maps.shiftXM * panel.resPxPerM;
    const cy = panel.cornerYPx + maps.shiftYM * panel.resPxPerM;
    const rowOffset = maps.layout.panelSsOffset[p] + panel.minSs;
    // Bounding box of the panel in image pixels.
    let c0 = Number.POSITIVE_INFINITY;
    let c1 = Number.NEGATIVE_INFINITY;
    let r0 = Number.POSITIVE_INFINITY;
    let r1 = Number.NEGATIVE_INFINITY;
    for (const [x, y] of corners[p]) {
      c0 = Math.min(c0, x - originX);
      c1 = Math.max(c1, x - originX);
      r0 = Math.min(r0, originY - y);
      r1 = Math.max(r1, originY - y);
    }
    const colStart = Math.max(0, Math.floor(c0));
    const colEnd = Math.min(widthPx - 1, Math.ceil(c1));
    const rowStart = Math.max(0, Math.floor(r0));
    const rowEnd = Math.min(heightPx - 1, Math.ceil(r1));
    for (let row = rowStart; row <= rowEnd; row++) {
      const dy = (originY - row - 0.5) * scale - cy;
      for (let col = colStart; col <= colEnd; col++) {
        const dx = (originX + col + 0.5) * scale - cx;
        // Solve corner + f*fs + s*ss = (x, y) for the panel-relative position (f, s).
        const f = (dx * ss.y - dy * ss.x) / det;
        const s = (fs.x * dy - fs.y * dx) / det;
        if (f < 0 || s < 0 || f >= w || s >= h) continue;
        slabIndex[row * widthPx + col] =
          (rowOffset + Math.floor(s)) * maps.fsSize + panel.minFs + Math.floor(f);
      }
    }
  });

  return {
    widthPx,
    heightPx,
    slabIndex,
    beamCentrePx: { x: -originX - 0.5, y: originY - 0.5 },
    resPxPerM,
    originXPx: originX,
    originYPx: originY,
  };
}

/** Gathers slab `values` into the lab-frame image; `fill` (default NaN) where there is no pixel. */
export function assemble(
  map: AssemblyMap,
  values: ArrayLike<number>,
  fill = Number.NaN,
  out?: Float32Array,
): AssembledImage {
  const result = out ?? new Float32Array(map.widthPx * map.heightPx);
  const { slabIndex } = map;
  for (let i = 0; i < slabIndex.length; i++) {
    const source = slabIndex[i];
    result[i] = source >= 0 ? values[source] : fill;
  }
  return {
    widthPx: map.widthPx,
    heightPx: map.heightPx,
    values: result,
    beamCentrePx: { ...map.beamCentrePx },
  };
}

/** One-shot convenience: build the map and assemble one frame. */
export function assembleImage(maps: PixelMaps, values: ArrayLike<number>, fill = Number.NaN): AssembledImage {
  return assemble(assemblyMap(maps), values, fill);
}
