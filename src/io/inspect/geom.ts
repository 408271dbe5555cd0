/**
 * Summary of a CrystFEL geometry file for `braggflow inspect` and `braggflow geom info`: counts, slab
 * shape, pixel size, camera length, beam energy, bad regions and masks. Parses only; builds no maps.
 */
import { slabLayout } from '../../detector/layout.js';
import { type ClenSpec, type Geometry, type PhotonEnergySpec, readGeometry } from '../geom.js';

function uniqueNumbers(values: number[]): number[] {
  return [...new Set(values)].sort((a, b) => a - b);
}

function specKey(spec: ClenSpec | PhotonEnergySpec | undefined): string {
  return JSON.stringify(spec ?? null);
}

function clenSummary(geometry: Geometry): Record<string, unknown> {
  const specs = new Map<string, ClenSpec | undefined>();
  for (const panel of geometry.panels) specs.set(specKey(panel.clen), panel.clen);
  if (specs.size > 1) {
    const values = [...specs.values()].map((spec) =>
      spec === undefined ? null : spec.kind === 'value' ? spec.clenM : spec.path,
    );
    return { clenM: null, clenPerPanel: values };
  }
  const spec = [...specs.values()][0];
  if (spec === undefined) return { clenM: null };
  if (spec.kind === 'value') return { clenM: spec.clenM };
  return { clenPath: spec.path, clenPathScaleToM: spec.scaleToM };
}

function energySummary(geometry: Geometry): Record<string, unknown> {
  const spec = geometry.panels[0]?.photonEnergy ?? geometry.photonEnergy;
  if (spec === undefined) return { photonEnergyEv: null };
  if (spec.kind === 'value') return { photonEnergyEv: spec.photonEnergyEv };
  return { photonEnergyPath: spec.path, photonEnergyPathUnit: spec.unit, photonEnergyPathScale: spec.scale };
}

function hex(bits: number): string {
  return `0x${bits.toString(16).padStart(4, '0')}`;
}

/** The summary as plain JSON-able data. */
export function summariseGeometry(geometry: Geometry): Record<string, unknown> {
  const { panels } = geometry;
  const layout = slabLayout(geometry);
  const pixels = panels.reduce((sum, p) => sum + (p.maxFs - p.minFs + 1) * (p.maxSs - p.minSs + 1), 0);
  const res = uniqueNumbers(panels.map((panel) => panel.resPxPerM));
  const coffsets = uniqueNumbers(panels.map((panel) => panel.coffsetM));
  const masks = new Map<string, Record<string, unknown>>();
  for (const panel of panels) {
    for (const mask of panel.masks) {
      const entry = {
        dataPath: mask.dataPath,
        file: mask.file ?? null,
        goodBits: hex(mask.goodBits),
        badBits: hex(mask.badBits),
      };
      masks.set(JSON.stringify(entry), entry);
    }
  }
  const badFsss = geometry.badRegions.filter((region) => region.kind === 'fsss').length;
  return {
    ...(geometry.sourcePath !== undefined ? { file: geometry.sourcePath } : {}),
    panels: panels.length,
    pixels,
    slabShape: [layout.ssSize, layout.fsSize],
    resPxPerM: res.length === 1 ? res[0] : res,
    resPxPerMCommon: res.length === 1,
    ...clenSummary(geometry),
    coffsetM: coffsets.length === 1 ? coffsets[0] : { min: coffsets[0], max: coffsets[coffsets.length - 1] },
    ...energySummary(geometry),
    badRegions: geometry.badRegions.length,
    badRegionsFsSs: badFsss,
    badRegionsXy: geometry.badRegions.length - badFsss,
    noIndexPanels: panels.filter((panel) => panel.noIndex).length,
    dataPaths: [...new Set(panels.map((panel) => panel.dataPath))],
    dims: panels[0].dims,
    dataBlocks: layout.blocks.length,
    masks: [...masks.values()],
    groups: Object.keys(geometry.groups).length,
    rigidGroups: Object.keys(geometry.rigidGroups).length,
    rigidGroupCollections: Object.keys(geometry.rigidGroupCollections).length,
    extraKeys: Object.keys(geometry.extraKeys),
  };
}

export function inspectGeom(path: string): Record<string, unknown> {
  return summariseGeometry(readGeometry(path));
}
