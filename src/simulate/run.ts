/**
 * A simulation run: resolve the options against the geometry and preset, make frames (in this thread
 * or over worker threads), and stream each to the CXI file and the CrystFEL stream as soon as it is
 * its turn, so memory stays constant however long the run.
 *
 * Outputs (see docs in src/io/cxi-writer.ts for the common layout):
 *   /entry_1/data_1/data               float32 [N, ss, fs] frames in ADU
 *   per-frame photon energy, and the camera length CrystFEL computes for the frames: the mean over
 *     panels of clen + coffset, the distance the physics used (see cxiCameraLength)
 *   per-frame values the geometry reads from the data file (`clen = /LCLS/detector_1/EncoderValue`),
 *     in its units, so that CrystFEL's clen + coffset is that same distance
 *   the bad-pixel masks the geometry reads from the data file (`mask = /entry_1/data_1/mask`) as
 *     [N, ss, fs]: good under its mask_good/mask_bad where the detector measures, bad at dead and hot
 *     pixels, in bad regions and outside panels (see mask-datasets.ts)
 *   /entry_1/truth_1/nPeaks, peakXPosRaw, peakYPosRaw, peakTotalIntensity, ... the detectable spots
 *   /entry_1/truth_1/mask              uint8 [N, ss, fs] peak pixels (definition: the renderer's)
 *   /entry_1/truth_1/h, k, l, panel, crystal   int32 [N, maxPeaks] per truth peak (zero padded)
 *   /entry_1/truth_1/dA, partiality, photons   float32 [N, maxPeaks] per truth peak
 *   /entry_1/truth_1/nCrystals         int32 [N]
 *   /entry_1/truth_1/orientation       float64 [N, maxCrystals, 9] a*, b*, c* rows, 1/A, lab frame
 *                                      (NaN for absent crystals)
 * and a stream with every predicted reflection (spots on pixels, detectable or not) per crystal and
 * the truth peaks as the chunk's peak list.
 */
import { readFileSync } from 'node:fs';
import { computePixelMaps, type PixelMaps } from '../detector/pixel-maps.js';
import { defaultDataPath } from '../io/cxi-reader.js';
import {
  type CxiWriter,
  cameraLengthPath,
  createCxiWriter,
  photonEnergyEvPath,
  photonEnergyJoulePath,
} from '../io/cxi-writer.js';
import { type Geometry, HC_EV_M } from '../io/geom.js';
import type { PeakTable, ReflectionTable, StreamChunk, StreamCrystal } from '../io/stream/types.js';
import { createStreamWriter, type StreamWriter } from '../io/stream/writer.js';
import { type PeakList, strongestWithColumn } from '../peaks/peak-list.js';
import { UserError } from '../util/errors.js';
import { median } from '../util/stats.js';
import { createWorkerPool, mapInOrder, workerScriptUrl } from '../util/worker-pool.js';
import { latticeTypeOf, screwAxesOf, validateCell } from './cell.js';
import {
  createFrameContext,
  type FrameBuffers,
  type FrameContext,
  type FrameTask,
  frameBuffers,
  frameTask,
  type SimulatedFrame,
  type SimulationSetup,
  simulateFrame,
} from './frame.js';
import { type MaskDataset, maskDatasets } from './mask-datasets.js';
import {
  parseCellText,
  parseSimulateOptions,
  type SimulateOptions,
  type SimulateOptionsInput,
} from './options.js';
import { presetByName } from './presets.js';
import { defaultImagingOptions, type ImagingOptions, runGoodPixels } from './render.js';

export interface SimulationRunInput extends SimulateOptionsInput {
  geometry: Geometry;
  /** The geometry file's text, written into the stream header. */
  geometryText: string;
  /** Called after each frame is written. */
  onFrame?: (done: number, total: number, frame: SimulatedFrame) => void;
  /**
   * Render later frames into the image and mask of frames already written (saves 20 MB of fresh memory
   * per 4-Mpixel frame). Off by default: with it, a frame's image and mask are overwritten after
   * `onFrame` returns, so an `onFrame` that keeps them must copy them.
   */
  reuseFrameBuffers?: boolean;
}

export interface Stats {
  mean: number;
  min: number;
  median: number;
  max: number;
}

export interface SimulationSummary {
  frames: number;
  hits: number;
  crystals: number;
  preset: string;
  photonEnergyEv: number;
  /** The camera length (before each panel's coffset), as --clen-m gives it. */
  clenM: number;
  /** The camera length the files record: the mean over panels of clen + coffset, in metres. */
  cameraLengthM: number;
  /** Detectable spots (truth peaks) per frame, over all frames and over hits only. */
  peaksPerFrame: Stats;
  peaksPerHit: Stats;
  /** Reflections projected onto pixels per hit (the stream's predictions). */
  predictedPerHit: Stats;
  peaksDropped: number;
  seconds: number;
  framesPerSecond: number;
  workers: number;
  outputs: { cxi: string; stream: string };
}

/** Half a pixel: CrystFEL's stream positions put 0.0 at the corner of the first pixel. */
const crystfelHalfPixel = 0.5;

function literalEnergyEv(geometry: Geometry): number | undefined {
  const spec = geometry.panels[0]?.photonEnergy ?? geometry.photonEnergy;
  return spec?.kind === 'value' ? spec.photonEnergyEv : undefined;
}

function stats(values: number[]): Stats {
  if (values.length === 0) return { mean: 0, min: 0, median: 0, max: 0 };
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    sum += v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  return { mean: sum / values.length, min, median: median(values), max };
}

/** Resolves options, preset and geometry into the plain setup every frame is made from. */
export function resolveSetup(geometry: Geometry, options: SimulateOptions): SimulationSetup {
  if (geometry.panels.length === 0) throw new UserError('geometry has no panels', geometry.sourcePath);
  const preset = presetByName(options.preset);
  let cell = { ...preset.crystal.cell };
  if (options.cell !== undefined) cell = parseCellText(options.cell, options.centering ?? 'P');
  else if (options.centering !== undefined) cell.centering = options.centering;
  validateCell(cell, options.cell !== undefined ? '--cell' : '--centering');
  // A cell of the user's own has no known space group: no screw absences unless one is named.
  const spaceGroup = options.spaceGroup ?? (options.cell !== undefined ? 'P1' : preset.crystal.spaceGroup);
  const screwAxes = screwAxesOf(spaceGroup, '--space-group');

  const photonEnergyEv = options.photonEnergyEv ?? literalEnergyEv(geometry) ?? preset.beam.photonEnergyEv;
  if (!(photonEnergyEv > 0))
    throw new UserError(`photon energy must be positive, got ${photonEnergyEv} eV`, geometry.sourcePath);
  const coffsets = geometry.panels.map((panel) => panel.coffsetM).sort((a, b) => a - b);
  const fallbackClenM = preset.beam.detectorDistanceM - coffsets[coffsets.length >> 1];
  const panelClensM = geometry.panels.map((panel) => {
    if (options.clenM !== undefined) return options.clenM;
    const clen = panel.clen ?? geometry.clen;
    return clen?.kind === 'value' ? clen.clenM : fallbackClenM;
  });
  panelClensM.forEach((clenM, p) => {
    const z = clenM + geometry.panels[p].coffsetM;
    if (!(z > 0))
      throw new UserError(
        `panel '${geometry.panels[p].name}' would sit at z = ${z.toFixed(4)} m (clen + coffset): not behind the sample; give --clen-m`,
        geometry.sourcePath,
      );
  });

  const imaging: ImagingOptions = {
    ...defaultImagingOptions,
    ...preset.imaging,
    ...(options.background !== undefined ? { background: options.background } : {}),
    ...(options.truthMinSnr !== undefined ? { truthMinSnr: options.truthMinSnr } : {}),
  };
  return {
    geometry,
    seed: options.seed,
    hitRate: options.hitRate,
    crystal: {
      ...preset.crystal,
      cell,
      spaceGroup,
      maxCrystals: options.maxCrystals ?? preset.crystal.maxCrystals,
    },
    screwAxes,
    beam: { ...preset.beam, fluencePhotonsPerUm2: preset.beam.fluencePhotonsPerUm2 * options.fluenceScale },
    photonEnergyEv,
    clenM: panelClensM[0],
    panelClensM,
    imaging,
    minPartiality: 0.02,
  };
}

/**
 * The camera length CrystFEL computes for the frames (its stream's `average_camera_length`): the mean
 * over panels of clen + coffset, i.e. of the distances the simulator placed the panels at.
 */
export function averageCameraLengthM(setup: SimulationSetup): number {
  const { panels } = setup.geometry;
  let sum = 0;
  panels.forEach((panel, p) => {
    sum += setup.panelClensM[p] + panel.coffsetM;
  });
  return sum / panels.length;
}

/**
 * What the CXI file's own camera length dataset holds: the distance (`averageCameraLengthM`), unless the
 * geometry reads its clen from that very dataset; then that clen in the geometry's units (millimetres
 * unless it says `m`), as CrystFEL reads it before adding the coffset.
 */
export function cxiCameraLength(setup: SimulationSetup): number {
  const p = setup.geometry.panels.findIndex((panel) => {
    const clen = panel.clen ?? setup.geometry.clen;
    return clen?.kind === 'path' && clen.path === cameraLengthPath;
  });
  if (p < 0) return averageCameraLengthM(setup);
  const clen = setup.geometry.panels[p].clen ?? setup.geometry.clen;
  return clen?.kind === 'path' ? setup.panelClensM[p] / clen.scaleToM : averageCameraLengthM(setup);
}

/**
 * Per-frame values the geometry reads from the data file (`clen = /LCLS/detector_1/EncoderValue`,
 * `photon_energy = /LCLS/photon_energy_eV`, `detector_shift_x = ...`): written at those paths, in the
 * geometry's units, so the CXI file works with the very geometry it was simulated through. A clen
 * location holds the clen without the coffset, which CrystFEL adds (giving `averageCameraLengthM`).
 */
export function geometryDataPathValues(
  setup: SimulationSetup,
  photonEnergyEv: number,
): { path: string; value: number }[] {
  const { geometry } = setup;
  const values = new Map<string, number>();
  const energy = geometry.panels[0]?.photonEnergy ?? geometry.photonEnergy;
  if (energy?.kind === 'path') {
    const units: Partial<Record<string, number>> = {
      eV: photonEnergyEv,
      keV: photonEnergyEv / 1e3,
      m: HC_EV_M / photonEnergyEv,
      A: (HC_EV_M / photonEnergyEv) * 1e10,
    };
    const stored = units[energy.unit];
    if (stored !== undefined) values.set(energy.path, stored / energy.scale);
  }
  geometry.panels.forEach((panel, p) => {
    const clen = panel.clen ?? geometry.clen;
    if (clen?.kind === 'path') values.set(clen.path, setup.panelClensM[p] / clen.scaleToM);
  });
  for (const shift of [geometry.detectorShiftX, geometry.detectorShiftY]) {
    if (shift?.kind === 'path') values.set(shift.path, 0);
  }
  const own = new Set([photonEnergyEvPath, photonEnergyJoulePath, cameraLengthPath, defaultDataPath]);
  return [...values].filter(([path]) => !own.has(path)).map(([path, value]) => ({ path, value }));
}

interface Outputs {
  cxi: CxiWriter;
  stream: StreamWriter;
  cxiPath: string;
  setup: SimulationSetup;
  maxPeaks: number;
  slabShape: [number, number];
  panelNames: string[];
  /** The stream's average_camera_length and the CXI's camera length dataset (see cxiCameraLength). */
  cameraLengthM: number;
  cxiCameraLength: number;
  masks: MaskDataset[];
}

function reflectionTable(frame: SimulatedFrame, crystal: number, panelNames: string[]): ReflectionTable {
  const spots = frame.spots.filter((spot) => spot.crystal === crystal);
  const n = spots.length;
  const table: ReflectionTable = {
    h: new Int32Array(n),
    k: new Int32Array(n),
    l: new Int32Array(n),
    intensity: new Float64Array(n),
    sigma: new Float64Array(n),
    peak: new Float64Array(n),
    background: new Float64Array(n),
    fsPx: new Float64Array(n),
    ssPx: new Float64Array(n),
    panelIndex: new Int32Array(n),
    panelNames,
    hasPanelColumn: true,
  };
  spots.forEach((spot, i) => {
    table.h[i] = spot.h;
    table.k[i] = spot.k;
    table.l[i] = spot.l;
    table.intensity[i] = spot.photons;
    table.sigma[i] = Math.sqrt(spot.photons);
    table.fsPx[i] = spot.fs + crystfelHalfPixel;
    table.ssPx[i] = spot.ss + crystfelHalfPixel;
    table.panelIndex[i] = spot.panel;
  });
  return table;
}

function streamChunk(
  frame: SimulatedFrame,
  truth: PeakList,
  spotIndex: Int32Array,
  outputs: Outputs,
): StreamChunk {
  const { conditions } = frame;
  const { setup, panelNames } = outputs;
  const n = truth.count;
  const peaks: PeakTable = {
    fsPx: new Float64Array(n),
    ssPx: new Float64Array(n),
    oneOverDPerNm: new Float64Array(n),
    intensity: new Float64Array(n),
    panelIndex: new Int32Array(n),
    panelNames,
    hasPanelColumn: true,
  };
  for (let i = 0; i < n; i++) {
    const spot = frame.spots[spotIndex[i]];
    peaks.fsPx[i] = truth.fs[i] + crystfelHalfPixel;
    peaks.ssPx[i] = truth.ss[i] + crystfelHalfPixel;
    peaks.oneOverDPerNm[i] = 10 / spot.dA;
    peaks.intensity[i] = truth.totalIntensity[i];
    peaks.panelIndex[i] = spot.panel;
  }
  const cell = setup.crystal.cell;
  const latticeType = latticeTypeOf(cell);
  const crystals: StreamCrystal[] = frame.crystals.map((crystal, c) => {
    const r = crystal.reciprocalPerA;
    const reflections = reflectionTable(frame, c, panelNames);
    return {
      otherLines: [],
      cellNm: [cell.aA / 10, cell.bA / 10, cell.cA / 10],
      anglesDeg: [cell.alphaDeg, cell.betaDeg, cell.gammaDeg],
      astarPerNm: [r[0] * 10, r[1] * 10, r[2] * 10],
      bstarPerNm: [r[3] * 10, r[4] * 10, r[5] * 10],
      cstarPerNm: [r[6] * 10, r[7] * 10, r[8] * 10],
      latticeType,
      centering: cell.centering,
      uniqueAxis: latticeType === 'hexagonal' || latticeType === 'tetragonal' ? 'c' : '?',
      profileRadiusPerNm: crystal.profileRadiusPerA * 10,
      resolutionLimitPerNm: 10 / setup.crystal.resolutionLimitA,
      resolutionLimitA: setup.crystal.resolutionLimitA,
      numReflections: reflections.h.length,
      numSaturatedReflections: 0,
      numImplausibleReflections: 0,
      reflections,
    };
  });
  return {
    otherLines: [],
    imageFilename: outputs.cxiPath,
    event: `//${conditions.frameIndex}`,
    serial: conditions.frameIndex + 1,
    hit: conditions.hit,
    indexedBy: frame.crystals.length > 0 ? 'simulation' : 'none',
    photonEnergyEv: conditions.photonEnergyEv,
    beamDivergenceRad: frame.divergenceRad,
    beamBandwidth: frame.bandwidth,
    averageCameraLengthM: outputs.cameraLengthM,
    numPeaks: n,
    peaks,
    crystals,
  };
}

/** Per-peak column of the kept truth rows, as a typed array of the spots' field. */
function perPeak(
  make: typeof Int32Array | typeof Float32Array,
  frame: SimulatedFrame,
  spotIndex: Int32Array,
  pick: SpotPick,
): Int32Array | Float32Array {
  const out = new make(spotIndex.length);
  for (let i = 0; i < spotIndex.length; i++) out[i] = pick(frame.spots[spotIndex[i]]);
  return out;
}

type SpotPick = (spot: SimulatedFrame['spots'][number]) => number;

/** Per-peak truth columns beside the peak table: which reflection each truth peak is, and how bright. */
const truthSpotColumns: [string, typeof Int32Array | typeof Float32Array, SpotPick][] = [
  ['h', Int32Array, (s) => s.h],
  ['k', Int32Array, (s) => s.k],
  ['l', Int32Array, (s) => s.l],
  ['panel', Int32Array, (s) => s.panel],
  ['crystal', Int32Array, (s) => s.crystal],
  ['dA', Float32Array, (s) => s.dA],
  ['partiality', Float32Array, (s) => s.partiality],
  ['photons', Float32Array, (s) => s.photons],
];

async function writeFrame(
  outputs: Outputs,
  frame: SimulatedFrame,
): Promise<{ peaks: number; dropped: number }> {
  const { cxi, maxPeaks, setup } = outputs;
  const { rendered, conditions } = frame;
  // The strongest truth rows (the CXI writer's rule) with their spot indices.
  const { peaks: truth, column: spotIndex } = strongestWithColumn(
    rendered.truth,
    rendered.truthSpotIndex,
    maxPeaks,
  );
  cxi.appendFrame({
    peaks: truth,
    image: rendered.imageAdu,
    photonEnergyEv: conditions.photonEnergyEv,
    clenM: outputs.cxiCameraLength,
  });
  cxi.appendExtra('mask', rendered.peakMask, outputs.slabShape);
  for (const { path, value } of geometryDataPathValues(setup, conditions.photonEnergyEv))
    cxi.appendExtra(path.startsWith('/') ? path : `/${path}`, Float64Array.of(value), []);
  for (const { path, words } of outputs.masks) cxi.appendExtra(path, words, outputs.slabShape);
  const row = [maxPeaks];
  for (const [name, make, pick] of truthSpotColumns)
    cxi.appendExtra(name, perPeak(make, frame, spotIndex, pick), row);
  cxi.appendExtra('nCrystals', Int32Array.of(frame.crystals.length), []);
  const maxCrystals = setup.crystal.maxCrystals;
  const orientation = new Float64Array(maxCrystals * 9).fill(Number.NaN);
  frame.crystals.forEach((crystal, c) => {
    orientation.set(crystal.reciprocalPerA, 9 * c);
  });
  cxi.appendExtra('orientation', orientation, [maxCrystals, 9]);
  await outputs.stream.writeChunk(streamChunk(frame, truth, spotIndex, outputs));
  return { peaks: truth.count, dropped: rendered.truth.count - truth.count };
}

/** Where the run's CXI file keeps its own datasets (a geometry's mask must not land on one). */
const truthGroup = '/entry_1/truth_1';

/**
 * The bad-pixel masks the geometry reads from the data file, with the pixels this run's detector
 * measures (the same dead and hot pixels as every frame's render context) good.
 */
function runMaskDatasets(setup: SimulationSetup, maps: PixelMaps): MaskDataset[] {
  const wanted = setup.geometry.panels.some((panel) =>
    panel.masks.some((spec) => spec.dataPath !== undefined && spec.file === undefined),
  );
  if (!wanted) return [];
  const masks = maskDatasets(maps, runGoodPixels(maps, setup.imaging, setup.seed));
  const taken = new Set([
    defaultDataPath,
    photonEnergyEvPath,
    photonEnergyJoulePath,
    cameraLengthPath,
    ...geometryDataPathValues(setup, setup.photonEnergyEv).map(({ path }) =>
      path.startsWith('/') ? path : `/${path}`,
    ),
  ]);
  for (const { path } of masks) {
    if (taken.has(path) || path === truthGroup || path.startsWith(`${truthGroup}/`))
      throw new UserError(
        `the mask location ${path} is one of the datasets the simulator writes; name another`,
        setup.geometry.sourcePath,
      );
  }
  return masks;
}

/** Default stream path: beside the CXI file, `.stream` instead of `.cxi`/`.h5`. */
export function defaultStreamPath(cxiPath: string): string {
  return `${cxiPath.replace(/\.(cxi|h5|hdf5)$/i, '')}.stream`;
}

/** Runs a whole simulation to disk and returns its summary. */
export async function runSimulation(input: SimulationRunInput): Promise<SimulationSummary> {
  const { geometry, geometryText, onFrame, reuseFrameBuffers, ...raw } = input;
  const options = parseSimulateOptions(raw);
  const setup = resolveSetup(geometry, options);
  const streamPath = options.streamPath ?? defaultStreamPath(options.outPath);
  const started = performance.now();

  // The pixel maps check the geometry and give the slab shape. The whole frame context (detector
  // state, background model: ~1 s and ~150 MB on 4 Mpixel) is built here only if this thread renders.
  const maps = computePixelMaps(setup.geometry);
  let context: FrameContext | undefined;
  const slabShape: [number, number] = [maps.ssSize, maps.fsSize];
  const masks = runMaskDatasets(setup, maps);
  const cxi = await createCxiWriter(options.outPath, {
    maxPeaks: options.maxPeaks,
    peakGroup: truthGroup,
    frames: { slabShape, dtype: 'float32', compression: options.compression },
    perFrameScalars: true,
  });
  const stream = createStreamWriter(streamPath);
  const outputs: Outputs = {
    cxi,
    stream,
    cxiPath: options.outPath,
    setup,
    maxPeaks: options.maxPeaks,
    slabShape,
    panelNames: geometry.panels.map((panel) => panel.name),
    cameraLengthM: averageCameraLengthM(setup),
    cxiCameraLength: cxiCameraLength(setup),
    masks,
  };
  const cell = setup.crystal.cell;
  const latticeType = latticeTypeOf(cell);
  const pool =
    options.workers > 1
      ? createWorkerPool<FrameTask, SimulatedFrame>(
          workerScriptUrl(import.meta.url, 'sim-worker'),
          options.workers,
          setup,
        )
      : undefined;
  const peaksPerFrame: number[] = [];
  const peaksPerHit: number[] = [];
  const predictedPerHit: number[] = [];
  let hits = 0;
  let crystals = 0;
  let dropped = 0;
  try {
    await stream.writeHeader({
      formatVersion: '2.3',
      otherLines: [],
      crystfelVersion: 'braggflow simulate',
      commandLine: `braggflow simulate --preset ${options.preset} --frames ${options.frames} --seed ${options.seed} --hit-rate ${options.hitRate}`,
      indexingMethods: 'simulation',
      geometryText,
      unitCell: {
        latticeType,
        centering: cell.centering,
        uniqueAxis: latticeType === 'hexagonal' || latticeType === 'tetragonal' ? 'c' : '?',
        axesNm: [cell.aA / 10, cell.bA / 10, cell.cA / 10],
        anglesDeg: [cell.alphaDeg, cell.betaDeg, cell.gammaDeg],
      },
    });
    // Frames in flight at once: enough to keep every worker busy, few enough to bound memory.
    const window = pool === undefined ? 1 : 2 * pool.size;
    // Buffers of frames already written, lent to the next frames (see simulateFrame).
    const spare: FrameBuffers[] = [];
    const simulateOne = (index: number): Promise<SimulatedFrame> => {
      const reuse = spare.pop();
      if (pool !== undefined) return pool.run(...frameTask(index, reuse));
      context ??= createFrameContext(setup, maps);
      return Promise.resolve(simulateFrame(context, index, reuse));
    };
    const indices = Array.from({ length: options.frames }, (_, i) => i);
    let done = 0;
    for await (const frame of mapInOrder(indices, window, simulateOne)) {
      const written = await writeFrame(outputs, frame);
      dropped += written.dropped;
      peaksPerFrame.push(written.peaks);
      if (frame.conditions.hit) {
        hits++;
        peaksPerHit.push(written.peaks);
        predictedPerHit.push(frame.spots.length);
      }
      crystals += frame.crystals.length;
      onFrame?.(++done, options.frames, frame);
      if (reuseFrameBuffers) spare.push(frameBuffers(frame));
    }
  } finally {
    await pool?.close();
    cxi.close();
    await stream.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    frames: options.frames,
    hits,
    crystals,
    preset: options.preset,
    photonEnergyEv: setup.photonEnergyEv,
    clenM: setup.clenM,
    cameraLengthM: outputs.cameraLengthM,
    peaksPerFrame: stats(peaksPerFrame),
    peaksPerHit: stats(peaksPerHit),
    predictedPerHit: stats(predictedPerHit),
    peaksDropped: dropped,
    seconds,
    framesPerSecond: options.frames / seconds,
    workers: options.workers,
    outputs: { cxi: options.outPath, stream: streamPath },
  };
}

/** The text of a geometry file, for the stream header. */
export function readGeometryText(path: string): string {
  return readFileSync(path, 'utf8');
}
