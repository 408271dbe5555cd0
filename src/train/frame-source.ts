/**
 * Where training frames come from, one frame at a time (never a whole dataset in memory):
 *
 * - `simulate`: the physics simulator, on the fly, so training never sees a frame twice. Each block of
 *   `framesPerDetector` frames draws a detector (a `.geom`, the embedded one, or a synthetic layout),
 *   a preset, a gain (photon counting at 1 count per photon, or integrating at 1-50 ADU per photon with
 *   readout noise, whole or fractional values), a background level and a fluence. Frame i is a function
 *   of (seed, i) alone, so a resumed run sees exactly the frames it would have seen.
 * - `dataset`: labelled CXI/HDF5 (frames at /entry_1/data_1/data, masks at /entry_1/truth_1/mask), as
 *   `braggflow simulate` writes them and the data engine will, read lazily and cycled.
 */

import { defaultGeometry } from '../detector/default-geometry.js';
import { geometryMask } from '../detector/mask.js';
import { computePixelMaps, type PixelMaps } from '../detector/pixel-maps.js';
import { readPeakTable } from '../io/cxi-peaks.js';
import { type FrameReader, openFrameReader } from '../io/cxi-reader.js';
import { type Geometry, readGeometry } from '../io/geom.js';
import type { PeakList } from '../peaks/peak-list.js';
import { panelAduPerPhoton } from '../simulate/detector.js';
import { createFrameContext, type FrameContext, frameSeed, simulateFrame } from '../simulate/frame.js';
import { parseSimulateOptions } from '../simulate/options.js';
import { resolveSetup } from '../simulate/run.js';
import { UserError } from '../util/errors.js';
import { seededRandom } from '../util/random.js';
import type { DatasetSourceConfig, SimulateSourceConfig, SourceConfig, SyntheticFamily } from './config.js';
import { truthGroup, truthMaskPath } from './labelled-frame.js';
import { syntheticGeometry } from './synthetic-geometry.js';

/** A labelled frame with the detector it was taken on. */
export interface TrainingFrame {
  image: Float32Array;
  /** 1 = peak pixel, [ss * fs]. */
  mask: Uint8Array;
  truth: PeakList;
  maps: PixelMaps;
  /** 1 = pixel the geometry measures (bad regions are 0); what serving masks. */
  goodPixels: Uint8Array;
  /** ADU per photon of the detector (for re-noising). */
  aduPerPhoton: number;
  /** The detector and conditions, in words (logs, validation tables). */
  label: string;
}

export interface FrameSource {
  frame(index: number): Promise<TrainingFrame>;
  close(): void;
}

const logUniform = (random: () => number, [lo, hi]: readonly [number, number]) => lo * (hi / lo) ** random();
const uniform = (random: () => number, [lo, hi]: readonly [number, number]) => lo + (hi - lo) * random();
const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)];

/** A synthetic detector drawn from a family, with the pixel budget respected. */
function drawSynthetic(random: () => number, family: SyntheticFamily): { geometry: Geometry; label: string } {
  const panelRows = Math.round(logUniform(random, family.panelRowsPx));
  const panelCols = Math.round(logUniform(random, family.panelColsPx));
  let gridRows = Math.round(uniform(random, family.gridRows));
  let gridCols = Math.round(uniform(random, family.gridCols));
  while (gridRows * gridCols * panelRows * panelCols > family.maxPixels && gridRows * gridCols > 1) {
    if (gridRows >= gridCols) gridRows--;
    else gridCols--;
  }
  const pixelUm = logUniform(random, family.pixelUm);
  const clenM = uniform(random, family.clenM);
  const photonEnergyEv = uniform(random, family.photonEnergyEv);
  const geometry = syntheticGeometry({
    panelRows,
    panelCols,
    gridRows,
    gridCols,
    gapPx: Math.round(uniform(random, family.gapPx)),
    pixelUm: Number(pixelUm.toFixed(1)),
    clenM: Number(clenM.toFixed(4)),
    photonEnergyEv: Math.round(photonEnergyEv),
    aduPerPhoton: 1,
    maxAdu: 1e7,
  });
  return {
    geometry,
    label: `synthetic ${gridRows}x${gridCols} of ${panelRows}x${panelCols} px, ${pixelUm.toFixed(0)} um, ${(clenM * 1e3).toFixed(0)} mm, ${(photonEnergyEv / 1e3).toFixed(1)} keV`,
  };
}

interface SimulatedDetector {
  context: FrameContext;
  goodPixels: Uint8Array;
  aduPerPhoton: number;
  label: string;
}

/** The detector and conditions of block `block` of a simulate source. */
export function drawSimulatedDetector(
  config: SimulateSourceConfig,
  seed: number,
  block: number,
  geometries: Map<string, Geometry>,
): SimulatedDetector {
  const random = seededRandom(frameSeed(seed, block, 11));
  const entry = pick(random, config.geometries);
  let geometry: Geometry;
  let geometryLabel: string;
  if (typeof entry === 'string') {
    let cached = geometries.get(entry);
    if (cached === undefined) {
      cached = entry === 'embedded' ? defaultGeometry() : readGeometry(entry);
      geometries.set(entry, cached);
    }
    geometry = cached;
    geometryLabel = entry === 'embedded' ? 'embedded' : (entry.split('/').pop() ?? entry);
  } else {
    const drawn = drawSynthetic(random, entry);
    geometry = drawn.geometry;
    geometryLabel = drawn.label;
  }
  const preset = pick(random, config.presets);
  const background = pick(random, config.backgrounds);
  const fluenceScale = logUniform(random, config.fluenceScale);
  const counting = random() < config.photonCountingFraction;
  const gain = counting ? 1 : logUniform(random, config.gainAduPerPhoton);
  const darkPhotons = uniform(random, config.darkNoisePhotons);
  const rounded = counting || random() >= config.unroundedFraction;
  const options = parseSimulateOptions({
    frames: 1,
    outPath: '-',
    seed: frameSeed(seed, block, 12),
    preset,
    hitRate: config.hitRate,
    background,
    fluenceScale,
  });
  const setup = resolveSetup(geometry, options);
  const maps = computePixelMaps(geometry);
  const base = panelAduPerPhoton(maps, { ...setup.imaging, gainScale: 1 }, setup.photonEnergyEv)[0] || 1;
  const dark = counting ? 0 : darkPhotons * gain;
  setup.imaging = {
    ...setup.imaging,
    aduPerPhotonFallback: gain,
    gainScale: gain / base,
    darkNoiseAdu: dark,
    pedestalResidualAdu: 0.6 * dark,
    commonModeAdu: 0.7 * dark,
    photonAduSpreadFraction: counting ? 0 : setup.imaging.photonAduSpreadFraction,
    panelGainSpreadFraction: counting ? 0 : setup.imaging.panelGainSpreadFraction,
    pixelGainSpreadFraction: counting ? 0 : setup.imaging.pixelGainSpreadFraction,
    hotPixelAdu: setup.imaging.hotPixelAdu * gain,
    roundAdu: rounded,
    truthMinSnr: config.truthMinSnr,
  };
  const context = createFrameContext(setup, maps);
  const kind = counting
    ? 'photon counting'
    : `${gain.toFixed(1)} ADU/photon, ${darkPhotons.toFixed(2)} ph dark${rounded ? '' : ', fractional'}`;
  return {
    context,
    goodPixels: geometryMask(maps),
    aduPerPhoton: gain,
    label: `${geometryLabel}; ${preset}, ${background} background, fluence x${fluenceScale.toFixed(2)}; ${kind}`,
  };
}

function simulateSource(config: SimulateSourceConfig, seed: number): FrameSource {
  const geometries = new Map<string, Geometry>();
  let current: { block: number; detector: SimulatedDetector } | undefined;
  return {
    async frame(index) {
      const block = Math.floor(index / config.framesPerDetector);
      if (current?.block !== block)
        current = { block, detector: drawSimulatedDetector(config, seed, block, geometries) };
      const { context, goodPixels, aduPerPhoton, label } = current.detector;
      const frame = simulateFrame(context, index);
      return {
        image: frame.rendered.imageAdu,
        mask: frame.rendered.peakMask,
        truth: frame.rendered.truth,
        maps: context.maps,
        goodPixels,
        aduPerPhoton,
        label: `${label}; ${frame.conditions.hit ? `hit, ${frame.rendered.truth.count} spots` : 'miss'}`,
      };
    },
    close() {},
  };
}

async function datasetSource(config: DatasetSourceConfig): Promise<FrameSource> {
  const geometry = readGeometry(config.geom);
  const maps = computePixelMaps(geometry);
  const expectedSlabShape: [number, number] = [maps.ssSize, maps.fsSize];
  let images: FrameReader | undefined;
  let masks: FrameReader | undefined;
  try {
    images = await openFrameReader(config.path, { expectedSlabShape });
    masks = await openFrameReader(config.path, { dataPath: truthMaskPath, expectedSlabShape });
  } catch (error) {
    images?.close();
    if (error instanceof UserError) throw error;
    throw new UserError((error as Error).message, config.path);
  }
  const truth = await readPeakTable(config.path, truthGroup);
  const [first, end] = config.frames ?? [0, images.frameCount];
  if (end > images.frameCount || first >= end)
    throw new UserError(
      `frames ${first}:${end} are not in the file (it holds ${images.frameCount})`,
      config.path,
    );
  const goodPixels = geometryMask(maps);
  const gain = maps.geometry.panels[0]?.aduPerPhoton ?? 1;
  const imageReader = images;
  const maskReader = masks;
  return {
    async frame(index) {
      const f = first + (index % (end - first));
      return {
        image: imageReader.readFrame(f),
        mask: Uint8Array.from(maskReader.readFrame(f)),
        truth: truth[f],
        maps,
        goodPixels,
        aduPerPhoton: gain,
        label: `${config.path} frame ${f}`,
      };
    },
    close() {
      imageReader.close();
      maskReader.close();
    },
  };
}

export async function openFrameSource(config: SourceConfig, seed: number): Promise<FrameSource> {
  return config.kind === 'simulate' ? simulateSource(config, seed) : datasetSource(config);
}

/**
 * Several sources mixed by weight: blocks of 8 consecutive frame indices come from one source (so a
 * simulated detector serves a few frames before the next is built), chosen by (seed, block).
 */
export async function openMixedSource(sources: readonly SourceConfig[], seed: number): Promise<FrameSource> {
  const opened = await Promise.all(sources.map((s, i) => openFrameSource(s, seed + 7919 * i)));
  const total = sources.reduce((sum, s) => sum + s.weight, 0);
  const blockFrames = 8;
  return {
    async frame(index) {
      const random = seededRandom(frameSeed(seed, Math.floor(index / blockFrames), 13));
      let u = random() * total;
      let s = 0;
      while (s < sources.length - 1 && u >= sources[s].weight) u -= sources[s++].weight;
      return opened[s].frame(index);
    },
    close() {
      for (const source of opened) source.close();
    },
  };
}
