/**
 * One simulated frame, from its index alone: the run's setup (a plain, structured-clonable object)
 * plus the frame index fix every random draw, so a frame is the same whichever worker makes it and in
 * whatever order. Physics and image formation draw from separate streams, so a change in one half
 * does not move the other's numbers.
 */
import type { PixelMaps } from '../detector/pixel-maps.js';
import { computePixelMaps } from '../detector/pixel-maps.js';
import type { Geometry } from '../io/geom.js';
import { seededRandom } from '../util/random.js';
import { cellVolumeA3, reciprocalMatrix, type ScrewAxis } from './cell.js';
import { randomRotation, rotateRows } from './orientation.js';
import type { BeamPreset, CrystalPreset } from './presets.js';
import { createProjector, type Projector, projectReflections } from './projection.js';
import { predictReflections, profileRadiusPerA, type ShotBeam, type ShotCrystal } from './reflections.js';
import {
  createRenderContext,
  type ImagingOptions,
  type RenderContext,
  type RenderedFrame,
  renderFrame,
} from './render.js';
import type { FrameConditions, SimCrystal, SimSpot } from './types.js';

/** Everything a frame needs, resolved once per run; plain data so it can go to worker threads. */
export interface SimulationSetup {
  geometry: Geometry;
  seed: number;
  hitRate: number;
  crystal: CrystalPreset;
  screwAxes: ScrewAxis[];
  beam: BeamPreset;
  /** Central photon energy (eV) and the camera length recorded per frame (metres). */
  photonEnergyEv: number;
  clenM: number;
  /** Camera length used for each panel (metres; coffset is added on top, as CrystFEL). */
  panelClensM: number[];
  imaging: ImagingOptions;
  /** Reflections excited less than this are not predicted. */
  minPartiality: number;
}

/** What a frame's physics needs (crystals, reflections, spots): no image formation. */
export interface PhysicsContext {
  setup: SimulationSetup;
  maps: PixelMaps;
  projector: Projector;
  /** a*, b*, c* rows of the unrotated cell. */
  reciprocalPerA: Float64Array;
  cellVolumeA3: number;
}

export interface FrameContext extends PhysicsContext {
  render: RenderContext;
}

/** A crystal of the frame with what the truth and stream record about it. */
export interface FrameCrystal extends SimCrystal {
  sizeUm: number;
  /** Profile radius at the resolution limit, 1/angstrom (the stream's profile_radius). */
  profileRadiusPerA: number;
  /** Reflections predicted on the Ewald sphere (before projection onto pixels). */
  excited: number;
}

export interface SimulatedFrame {
  conditions: FrameConditions;
  /** Per shot: bandwidth and divergence written in the stream. */
  bandwidth: number;
  divergenceRad: number;
  crystals: FrameCrystal[];
  spots: SimSpot[];
  rendered: RenderedFrame;
}

/** A 32-bit seed for stream `purpose` of frame `frameIndex` of the run seeded `seed`. */
export function frameSeed(seed: number, frameIndex: number, purpose: number): number {
  let x = Math.imul(seed ^ 0x3c6ef372, 0x9e3779b1) ^ Math.imul(frameIndex + 1, 0x85ebca77);
  x = Math.imul(x ^ (x >>> 15) ^ Math.imul(purpose, 0xc2b2ae3d), 0x27d4eb2f);
  x ^= x >>> 13;
  x = Math.imul(x, 0x165667b1);
  x ^= x >>> 16;
  return x >>> 0;
}

function gaussian(random: () => number): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** The physics part of a frame context (cheap: no detector state or background maps). */
export function createPhysicsContext(
  setup: SimulationSetup,
  maps: PixelMaps = computePixelMaps(setup.geometry),
): PhysicsContext {
  return {
    setup,
    maps,
    projector: createProjector(maps, setup.panelClensM),
    reciprocalPerA: reciprocalMatrix(setup.crystal.cell),
    cellVolumeA3: cellVolumeA3(setup.crystal.cell),
  };
}

export function createFrameContext(
  setup: SimulationSetup,
  maps: PixelMaps = computePixelMaps(setup.geometry),
): FrameContext {
  return {
    ...createPhysicsContext(setup, maps),
    render: createRenderContext(maps, setup.imaging, setup.seed),
  };
}

/** The physics of frame `frameIndex`: conditions, crystals and their spots (no image). */
export function simulateFramePhysics(
  context: PhysicsContext,
  frameIndex: number,
): Omit<SimulatedFrame, 'rendered'> {
  const { setup, projector } = context;
  const random = seededRandom(frameSeed(setup.seed, frameIndex, 1));
  const { beam, crystal } = setup;
  const hit = random() < setup.hitRate;
  const photonEnergyEv = setup.photonEnergyEv * (1 + beam.photonEnergyJitter * gaussian(random));
  const conditions: FrameConditions = { photonEnergyEv, clenM: setup.clenM, frameIndex, hit };
  const fluence = beam.fluencePhotonsPerUm2 * Math.max(0.05, 1 + beam.fluenceJitter * gaussian(random));
  const shotBeam: ShotBeam = {
    photonEnergyEv,
    bandwidth: beam.bandwidth,
    divergenceRad: beam.divergenceRad,
    fluencePhotonsPerUm2: fluence,
    polarisationX: beam.polarisationX,
  };
  const crystals: FrameCrystal[] = [];
  const spots: SimSpot[] = [];
  if (hit) {
    let count = 1;
    while (count < crystal.maxCrystals && random() < crystal.multipleCrystalChance) count++;
    // Photon energy bounds the largest |q| the detector sees on this shot.
    const lambdaA = 12398.41984 / photonEnergyEv;
    const detectorQ = (2 * Math.sin(projector.maxTwoThetaRad / 2)) / lambdaA;
    const maxQPerA = Math.min(1 / crystal.resolutionLimitA, detectorQ * (1 + 4 * beam.bandwidth));
    for (let c = 0; c < count; c++) {
      const rotation = randomRotation(random);
      const reciprocalPerA = rotateRows(rotation, context.reciprocalPerA);
      const sizeUm = crystal.sizeMedianUm * Math.exp(crystal.sizeLogSigma * gaussian(random));
      const shotCrystal: ShotCrystal = {
        reciprocalPerA,
        centering: crystal.cell.centering,
        screwAxes: setup.screwAxes,
        cellVolumeA3: context.cellVolumeA3,
        proteinFraction: crystal.proteinFraction,
        sizeUm,
        mosaicityRad: (crystal.mosaicityDeg * Math.PI) / 180,
        bFactorA2: crystal.bFactorA2,
        intensityScale: crystal.intensityScale,
        structureSeed: frameSeed(setup.seed, -1, 7),
      };
      const excited = predictReflections(shotCrystal, shotBeam, {
        maxQPerA,
        minPartiality: setup.minPartiality,
      });
      projectReflections(
        projector,
        excited,
        c,
        {
          photonEnergyEv,
          bandwidth: beam.bandwidth,
          divergenceRad: beam.divergenceRad,
          mosaicityRad: shotCrystal.mosaicityRad,
          sizeUm,
          illuminatedUm: Math.min(sizeUm, beam.beamSizeUm),
        },
        spots,
      );
      const cell = crystal.cell;
      crystals.push({
        cellA: [cell.aA, cell.bA, cell.cA],
        anglesDeg: [cell.alphaDeg, cell.betaDeg, cell.gammaDeg],
        centering: cell.centering,
        reciprocalPerA,
        sizeUm,
        profileRadiusPerA: profileRadiusPerA(shotCrystal, shotBeam, maxQPerA),
        excited: excited.length,
      });
    }
  }
  return { conditions, bandwidth: beam.bandwidth, divergenceRad: beam.divergenceRad, crystals, spots };
}

/** Slab-sized buffers a frame can be rendered into instead of new ones (see `simulateFrame`). */
export interface FrameBuffers {
  imageAdu: Float32Array;
  peakMask: Uint8Array;
}

/**
 * Frame `frameIndex` in full: physics, then image formation with the frame's own render stream.
 * `reuse` lends the buffers of a frame the caller is done with: a 4-Mpixel frame is 20 MB of image and
 * mask, and fresh memory for every frame (page faults, then freeing in whichever thread received it)
 * cost a worker pool more than its second worker gained.
 */
export function simulateFrame(
  context: FrameContext,
  frameIndex: number,
  reuse?: FrameBuffers,
): SimulatedFrame {
  const physics = simulateFramePhysics(context, frameIndex);
  const rendered = renderFrame(
    context.render,
    physics.spots,
    physics.conditions,
    seededRandom(frameSeed(context.setup.seed, frameIndex, 2)),
    reuse,
  );
  return { ...physics, rendered };
}

/** A worker's task: the frame to simulate, and buffers moved to it for reuse. */
export interface FrameTask {
  frameIndex: number;
  reuse?: FrameBuffers;
}

/** The task for frame `frameIndex` and its transfer list (the lent buffers move, not copy). */
export function frameTask(frameIndex: number, reuse?: FrameBuffers): [FrameTask, ArrayBuffer[]] {
  if (!reuse) return [{ frameIndex }, []];
  const buffers = [reuse.imageAdu.buffer, reuse.peakMask.buffer].filter(
    (b): b is ArrayBuffer => b instanceof ArrayBuffer,
  );
  return [{ frameIndex, reuse }, [...new Set(buffers)]];
}

/** The buffers of a frame the caller is done with, for the next `simulateFrame` or `frameTask`. */
export function frameBuffers(frame: SimulatedFrame): FrameBuffers {
  return { imageAdu: frame.rendered.imageAdu, peakMask: frame.rendered.peakMask };
}

/** Buffers of a frame that can move between threads instead of being copied. */
export function frameTransferables(frame: SimulatedFrame): ArrayBuffer[] {
  const { rendered } = frame;
  const buffers = [
    rendered.imageAdu.buffer,
    rendered.peakMask.buffer,
    rendered.truthSpotIndex.buffer,
    rendered.truth.fs.buffer,
    rendered.truth.ss.buffer,
    rendered.truth.totalIntensity.buffer,
    rendered.truth.snr.buffer,
    rendered.truth.nPixels.buffer,
    rendered.truth.maxValue.buffer,
  ];
  // A buffer listed twice (views of one allocation) cannot be transferred: keep the first.
  return [...new Set(buffers)].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
}
