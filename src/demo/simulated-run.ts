/**
 * The demo's data: a run of the physics simulator (`braggflow simulate`) on the embedded detector,
 * streamed to CXI with its exact truth, then read back the way every other command reads a run:
 * frame by frame from the file (frames, the truth's per-pixel `mask`, the truth peak table), and
 * checked against what the simulator wrote.
 */
import { join } from 'node:path';
import { readPeakTable } from '../io/cxi-peaks.js';
import { openFrameReader } from '../io/cxi-reader.js';
import type { Geometry } from '../io/geom.js';
import { runSimulation, type SimulationSummary } from '../simulate/run.js';

import { type LabelledFrame, truthGroup, truthMaskPath } from '../train/labelled-frame.js';

export type { LabelledFrame };

export interface SimulatedRunOptions {
  geometry: Geometry;
  geometryText: string;
  outDir: string;
  frames: number;
  seed: number;
  preset: string;
  hitRate: number;
  workers: number;
  /** The truth rule (simulate --truth-min-snr): the shipped model's, so all methods meet its definition. */
  truthMinSnr?: number;
}

export interface SimulatedRun {
  cxiPath: string;
  streamPath: string;
  summary: SimulationSummary;
  /** Frames as read back from the CXI file. */
  frames: LabelledFrame[];
  /** Frames with at least one crystal (simulator truth). */
  hits: boolean[];
  /** Every frame and truth mask read back equals what the simulator produced. */
  readBackIdentical: boolean;
}

function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export async function simulateRun(options: SimulatedRunOptions): Promise<SimulatedRun> {
  const cxiPath = join(options.outDir, 'run.cxi');
  const streamPath = join(options.outDir, 'run.stream');
  // What the simulator handed to the writer, kept to check the read-back against.
  const written: { image: Float32Array; mask: Uint8Array }[] = [];
  const hits: boolean[] = [];
  const summary = await runSimulation({
    geometry: options.geometry,
    geometryText: options.geometryText,
    frames: options.frames,
    seed: options.seed,
    outPath: cxiPath,
    streamPath,
    preset: options.preset,
    hitRate: options.hitRate,
    workers: options.workers,
    truthMinSnr: options.truthMinSnr,
    compression: 1,
    maxPeaks: 1024,
    onFrame(_done, _total, frame) {
      written.push({ image: frame.rendered.imageAdu, mask: frame.rendered.peakMask });
      hits.push(frame.conditions.hit);
    },
  });

  const truth = await readPeakTable(cxiPath, truthGroup);
  const images = await openFrameReader(cxiPath);
  const masks = await openFrameReader(cxiPath, { dataPath: truthMaskPath });
  const frames: LabelledFrame[] = [];
  let identical = images.frameCount === options.frames && masks.frameCount === options.frames;
  try {
    for (let i = 0; i < images.frameCount; i++) {
      const image = images.readFrame(i);
      const mask = Uint8Array.from(masks.readFrame(i));
      identical &&= sameValues(image, written[i].image) && sameValues(mask, written[i].mask);
      frames.push({ image, mask, truth: truth[i] });
    }
  } finally {
    images.close();
    masks.close();
  }
  return { cxiPath, streamPath, summary, frames, hits, readBackIdentical: identical };
}
