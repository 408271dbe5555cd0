/** Streams built in code for the stream tests and bench: deterministic, any size. */
import type { PeakTable, ReflectionTable, StreamChunk, StreamHeader } from '../src/io/stream/types.js';
import { seededRandom } from '../src/util/random.js';

/** Rounded as the stream prints it, so a value written and read back is the same double. */
const round = (value: number, decimals: number) => Number(value.toFixed(decimals));

export const SYNTHETIC_PANELS = ['p0', 'p1', 'p2', 'p3'];

export function syntheticHeader(): StreamHeader {
  return {
    formatVersion: '2.3',
    crystfelVersion: '0.9.1',
    commandLine: 'braggflow simulate --test',
    indexingMethods: 'xgandalf',
    geometryText: 'clen = 0.1\nres = 10000\np0/min_fs = 0\n',
    unitCell: {
      latticeType: 'orthorhombic',
      centering: 'C',
      axesNm: [6.14, 12.26, 16.8],
      anglesDeg: [90, 90, 90],
    },
    otherLines: [],
  };
}

/** One chunk with `peaks` found peaks and, when `reflections` > 0, one crystal. */
export function syntheticChunk(
  serial: number,
  peaks: number,
  reflections: number,
  random = seededRandom(serial),
): StreamChunk {
  const peakTable: PeakTable = {
    fsPx: Float64Array.from({ length: peaks }, () => round(random() * 1500, 2)),
    ssPx: Float64Array.from({ length: peaks }, () => round(random() * 1500, 2)),
    oneOverDPerNm: Float64Array.from({ length: peaks }, () => round(random() * 5, 2)),
    intensity: Float64Array.from({ length: peaks }, () => round((random() - 0.1) * 20000, 2)),
    panelIndex: Int32Array.from({ length: peaks }, () => Math.floor(random() * SYNTHETIC_PANELS.length)),
    panelNames: [...SYNTHETIC_PANELS],
    hasPanelColumn: true,
  };
  const chunk: StreamChunk = {
    imageFilename: `run0001/data_${serial}.h5`,
    event: `//${serial}`,
    serial,
    hit: peaks > 0,
    indexedBy: reflections > 0 ? 'xgandalf-nolatt-cell' : 'none',
    photonEnergyEv: round(9500 + random() * 30, 6),
    beamDivergenceRad: 0,
    beamBandwidth: 1e-8,
    averageCameraLengthM: 0.152001,
    numPeaks: peaks,
    peakResolutionPerNm: round(3 + random(), 6),
    peakResolutionA: round(2 + random(), 6),
    peaks: peakTable,
    crystals: [],
    otherLines: [`header/float//LCLS/photon_energy_eV = ${(9500 + serial).toFixed(6)}`],
  };
  if (reflections > 0) {
    chunk.nIndexingTries = 1;
    const table: ReflectionTable = {
      h: Int32Array.from({ length: reflections }, () => Math.floor(random() * 60) - 30),
      k: Int32Array.from({ length: reflections }, () => Math.floor(random() * 60) - 30),
      l: Int32Array.from({ length: reflections }, () => Math.floor(random() * 60) - 30),
      intensity: Float64Array.from({ length: reflections }, () => round((random() - 0.3) * 2000, 2)),
      sigma: Float64Array.from({ length: reflections }, () => round(random() * 500, 2)),
      peak: Float64Array.from({ length: reflections }, () => round(random() * 900, 2)),
      background: Float64Array.from({ length: reflections }, () => round(random() * 200, 2)),
      fsPx: Float64Array.from({ length: reflections }, () => round(random() * 1500, 1)),
      ssPx: Float64Array.from({ length: reflections }, () => round(random() * 1500, 1)),
      panelIndex: Int32Array.from({ length: reflections }, () =>
        Math.floor(random() * SYNTHETIC_PANELS.length),
      ),
      panelNames: [...SYNTHETIC_PANELS],
      hasPanelColumn: true,
    };
    chunk.crystals.push({
      cellNm: [6.13532, 12.19726, 16.88163],
      anglesDeg: [90.54524, 91.23016, 90.53769],
      astarPerNm: [0.0706577, -0.1444151, 0.0270631],
      bstarPerNm: [-0.0612585, -0.0381529, -0.0389182],
      cstarPerNm: [0.0296121, 0.0034501, -0.0512061],
      latticeType: 'orthorhombic',
      centering: 'C',
      uniqueAxis: '?',
      profileRadiusPerNm: 0.00258,
      predictRefineFinalResidual: 3.289294e-7,
      detShiftXMm: 0.022,
      detShiftYMm: -0.009,
      resolutionLimitPerNm: 1.8,
      resolutionLimitA: 5.56,
      numReflections: reflections,
      numSaturatedReflections: 0,
      numImplausibleReflections: 0,
      reflections: table,
      otherLines: [],
    });
  }
  return chunk;
}
