/**
 * A geometry for the CXI files braggflow writes (`run`, `peaks --out` with frames): the source
 * geometry with its data layout, beam values and peak list pointed at the CXI layout, so that
 * `indexamajig -i OUT.lst -g OUT.geom --peaks=cxi` runs as it is:
 *
 *   data = /entry_1/data_1/data, dim0 = %, dim1 = ss, dim2 = fs
 *   photon_energy = /entry_1/instrument_1/source_1/photon_energy_eV   (per frame, eV)
 *   clen = /entry_1/instrument_1/detector_1/distance m                (per frame, metres: a path
 *     without a unit is read in mm, CrystFEL's historical default)
 *   peak_list = /entry_1/result_1, peak_list_type = cxi
 *
 * Panel placement, bad regions, coffset and everything else stay. A panel's literal camera length
 * stays (it overrides the global one, as in the source); one read from the data file now reads the
 * CXI's. Masks read from the source's data files are not in the CXI: their lines are commented out
 * with a note (the run applied them when it found the peaks).
 */

import { defaultDataPath } from './cxi-reader.js';
import { cameraLengthPath, photonEnergyEvPath } from './cxi-writer.js';

const LINE_RE = /^(\s*)([A-Za-z0-9_]+\/)?([A-Za-z0-9_]+)\s*=\s*([^;]*?)\s*(;.*)?$/;
/** Top-level keys this rewrite sets; the source's are dropped (per-panel data/dim lines too). */
const LAYOUT_KEYS = new Set([
  'data',
  'peak_list',
  'peak_list_type',
  'photon_energy',
  'wavelength',
  'electron_voltage',
]);
const MASK_KEYS = /^(mask|mask_file|mask_good|mask_bad|mask\d+_(data|file|goodbits|badbits))$/;

export function geometryForCxi(sourceText: string, peakGroup = '/entry_1/result_1'): string {
  const out: string[] = [
    '; Written by braggflow for the CXI file beside it: frames, per-frame photon energy and camera',
    '; length, and the peak table are read from it (indexamajig --peaks=cxi).',
    `data = ${defaultDataPath}`,
    'dim0 = %',
    'dim1 = ss',
    'dim2 = fs',
    `photon_energy = ${photonEnergyEvPath}`,
    `clen = ${cameraLengthPath} m`,
    `peak_list = ${peakGroup}`,
    'peak_list_type = cxi',
    '',
  ];
  for (const line of sourceText.split('\n')) {
    const match = LINE_RE.exec(line);
    if (match === null) {
      out.push(line);
      continue;
    }
    const [, indent, prefix = '', key, value] = match;
    // The source's layout and beam lines, replaced by the CXI's above (per panel: data, photon_energy).
    if (
      /^dim\d+$/.test(key) ||
      (prefix === '' && (LAYOUT_KEYS.has(key) || key === 'clen')) ||
      (prefix !== '' && (key === 'data' || key === 'photon_energy'))
    ) {
      out.push(`; (source) ${line.trim()}`);
      continue;
    }
    if (prefix !== '' && key === 'clen' && value.startsWith('/')) {
      out.push(`${indent}${prefix}clen = ${cameraLengthPath} m ; (source) ${line.trim()}`);
      continue;
    }
    if (MASK_KEYS.test(key)) {
      out.push(
        `; (source mask, applied by braggflow when finding the peaks; not in this CXI) ${line.trim()}`,
      );
      continue;
    }
    out.push(line);
  }
  return `${out.join('\n').trimEnd()}\n`;
}
