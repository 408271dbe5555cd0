/**
 * Detectors made up for training: a grid of identical panels around the beam, written as CrystFEL
 * geometry text so it goes through the same parser as real files. Training draws detectors from a
 * range of panel sizes (a 185 x 194 CSPAD ASIC, a 512 x 1024 Jungfrau module, a 2463 x 2527 Pilatus
 * sheet), pixel sizes and camera lengths instead of fitting the geometries a model is later scored on:
 * a served model sees one panel tile at a time, so what it must learn is spot size in pixels, panel
 * edges and padding, not any one layout.
 */
import { type Geometry, parseGeometry } from '../io/geom.js';

export interface SyntheticDetector {
  /** Pixels per panel along ss and fs. */
  panelRows: number;
  panelCols: number;
  /** Panels along lab y and x. */
  gridRows: number;
  gridCols: number;
  /** Gap between neighbouring panels, pixels. */
  gapPx: number;
  pixelUm: number;
  clenM: number;
  photonEnergyEv: number;
  aduPerPhoton: number;
  /** Largest value the detector stores. */
  maxAdu: number;
}

/** CrystFEL geometry text for `d`: panels stacked along ss in the slab, the beam near the centre. */
export function syntheticGeometryText(d: SyntheticDetector): string {
  const lines = [
    `; braggflow synthetic training detector: ${d.gridRows} x ${d.gridCols} panels of ${d.panelRows} x ${d.panelCols} px, ${d.pixelUm} um`,
    `photon_energy = ${d.photonEnergyEv}`,
    `clen = ${d.clenM}`,
    `res = ${1e6 / d.pixelUm}`,
    `adu_per_photon = ${d.aduPerPhoton}`,
    `max_adu = ${d.maxAdu}`,
    'data = /entry_1/data_1/data',
    'dim0 = %',
    'dim1 = ss',
    'dim2 = fs',
    '',
  ];
  const width = d.gridCols * d.panelCols + (d.gridCols - 1) * d.gapPx;
  const height = d.gridRows * d.panelRows + (d.gridRows - 1) * d.gapPx;
  // The beam a little off the centre of the grid, so no gap runs through it on every detector.
  const x0 = -width / 2 + 0.37 * d.panelCols;
  const y0 = -height / 2 + 0.29 * d.panelRows;
  let slabRow = 0;
  for (let r = 0; r < d.gridRows; r++) {
    for (let c = 0; c < d.gridCols; c++) {
      const name = `p${r}c${c}`;
      lines.push(
        `${name}/min_fs = 0`,
        `${name}/max_fs = ${d.panelCols - 1}`,
        `${name}/min_ss = ${slabRow}`,
        `${name}/max_ss = ${slabRow + d.panelRows - 1}`,
        `${name}/fs = +1.0x`,
        `${name}/ss = +1.0y`,
        `${name}/corner_x = ${(x0 + c * (d.panelCols + d.gapPx)).toFixed(2)}`,
        `${name}/corner_y = ${(y0 + r * (d.panelRows + d.gapPx)).toFixed(2)}`,
        '',
      );
      slabRow += d.panelRows;
    }
  }
  return lines.join('\n');
}

export function syntheticGeometry(d: SyntheticDetector): Geometry {
  return parseGeometry(syntheticGeometryText(d), 'synthetic training detector');
}
