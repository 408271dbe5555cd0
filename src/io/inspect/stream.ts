/**
 * Summary of a CrystFEL stream for `braggflow inspect`: counts of chunks, hits, crystals, found peaks
 * (peak-table rows) and reflections (reflection-table rows), indexing methods, the target cell. Reads
 * the file once, streaming, holding one chunk at a time.
 */
import { readStream } from '../stream/reader.js';
import type { StreamHeader, Vec3 } from '../stream/types.js';

interface Range {
  min: number;
  max: number;
}

function widen(range: Range | undefined, value: number | undefined): Range | undefined {
  if (value === undefined || Number.isNaN(value)) return range;
  if (range === undefined) return { min: value, max: value };
  return { min: Math.min(range.min, value), max: Math.max(range.max, value) };
}

/** `xgandalf-nolatt-cell` -> `xgandalf`: the method without CrystFEL's flags. */
function methodName(indexedBy: string): string {
  return indexedBy.split('-')[0];
}

/** Panel count from the embedded geometry, when braggflow's geometry parser is there and accepts it. */
async function geometryPanels(header: StreamHeader, path: string): Promise<number | null> {
  if (header.geometryText === undefined) return null;
  try {
    // Looked up at run time so that this summary does not depend on the geometry module.
    const specifier = '../geom.js';
    const geom = (await import(specifier)) as {
      parseGeometry?: (text: string, source?: string) => { panels: unknown[] };
    };
    return geom.parseGeometry ? geom.parseGeometry(header.geometryText, path).panels.length : null;
  } catch {
    return null;
  }
}

export async function inspectStream(path: string): Promise<Record<string, unknown>> {
  const stream = await readStream(path);
  const { header } = stream;
  let chunks = 0;
  let hits = 0;
  let indexedChunks = 0;
  let multiCrystalChunks = 0;
  let crystals = 0;
  let peaks = 0;
  let reflections = 0;
  const indexers: Record<string, number> = {};
  const indexedBy: Record<string, number> = {};
  const latticeTypes: Record<string, number> = {};
  let photonEnergyEv: Range | undefined;
  let cameraLengthM: Range | undefined;
  const cellSumNm: Vec3 = [0, 0, 0];
  let cells = 0;

  for await (const chunk of stream.chunks) {
    chunks++;
    if (chunk.hit) hits++;
    peaks += chunk.peaks?.fsPx.length ?? 0;
    if (chunk.crystals.length > 0) indexedChunks++;
    if (chunk.crystals.length > 1) multiCrystalChunks++;
    if (chunk.indexedBy !== undefined && chunk.indexedBy !== 'none') {
      indexers[methodName(chunk.indexedBy)] = (indexers[methodName(chunk.indexedBy)] ?? 0) + 1;
      indexedBy[chunk.indexedBy] = (indexedBy[chunk.indexedBy] ?? 0) + 1;
    }
    photonEnergyEv = widen(photonEnergyEv, chunk.photonEnergyEv);
    cameraLengthM = widen(cameraLengthM, chunk.averageCameraLengthM);
    for (const crystal of chunk.crystals) {
      crystals++;
      reflections += crystal.reflections?.h.length ?? 0;
      if (crystal.latticeType !== undefined)
        latticeTypes[crystal.latticeType] = (latticeTypes[crystal.latticeType] ?? 0) + 1;
      if (crystal.cellNm) {
        cells++;
        for (let i = 0; i < 3; i++) cellSumNm[i] += crystal.cellNm[i];
      }
    }
  }

  const cell = stream.unitCell;
  return {
    file: path,
    format: `CrystFEL stream ${header.formatVersion}`,
    crystfelVersion: header.crystfelVersion ?? null,
    commandLine: header.commandLine ?? null,
    indexingMethods: header.indexingMethods ?? null,
    chunks,
    hits,
    indexedChunks,
    multiCrystalChunks,
    crystals,
    peaks,
    reflections,
    indexers,
    indexedBy,
    latticeTypes,
    cell: cell
      ? {
          latticeType: cell.latticeType ?? null,
          centering: cell.centering ?? null,
          uniqueAxis: cell.uniqueAxis ?? null,
          axesNm: cell.axesNm ?? null,
          anglesDeg: cell.anglesDeg ?? null,
        }
      : null,
    meanIndexedCellNm: cells > 0 ? cellSumNm.map((sum) => sum / cells) : null,
    photonEnergyEv: photonEnergyEv ?? null,
    averageCameraLengthM: cameraLengthM ?? null,
    geometryLines: header.geometryText === undefined ? null : header.geometryText.split('\n').length - 1,
    geometryPanels: await geometryPanels(header, path),
    ...(stream.trailingLines.length > 0 ? { trailingLines: stream.trailingLines.length } : {}),
  };
}
