/**
 * `npm run demo` / `braggflow demo`: the main job on the embedded default detector, with nothing beside
 * the checkout. Today it runs the foundation end to end: geometry -> pixel maps -> a run of frames with
 * exact truth streamed to CXI -> read back lazily -> a PeakNet edge model trained for a few steps with
 * our autodiff on onnxruntime -> inference on a held-out frame -> peaks written as a CXI peak table.
 * Every number printed is computed in this run. (The physics simulator and the producer-consumer
 * pipeline replace the spot generator and the loop here when they land.)
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { defaultGeometry } from '../detector/default-geometry.js';
import { geometryMask, pixelMapsFor, resolutionFor } from '../detector/index.js';
import { matchPeaks } from '../engine/match.js';
import { readPeakTable } from '../io/cxi-peaks.js';
import { openFrameReader } from '../io/cxi-reader.js';
import { createCxiWriter } from '../io/cxi-writer.js';
import { hostTensor } from '../nn/runtime.js';
import { segmentPeaks } from '../peaks/segment.js';
import { defaultSpotFrameOptions, generateSpotFrame } from '../simulate/spots.js';
import { seededRandom } from '../util/random.js';
import { trainOnCrops } from './train-crops.js';

export interface DemoOptions {
  outDir: string;
  frames: number;
  seed: number;
  model: string;
  trainSteps: number;
  cropPx: number;
  batch: number;
  log: (line: string) => void;
}

export interface DemoReport {
  detector: {
    name: string;
    panels: number;
    pixels: number;
    slabShape: [number, number];
    bestResolutionA: number;
  };
  run: { path: string; frames: number; truthPeaks: number; writeMs: number; readBackIdentical: boolean };
  training: {
    model: string;
    params: number;
    steps: number;
    firstLoss: number;
    lastLoss: number;
    msPerStep: number;
  };
  inference: {
    frame: number;
    mpixPerS: number;
    found: number;
    truth: number;
    precision: number;
    recall: number;
  };
  peaksPath: string;
}

export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const { log } = options;
  mkdirSync(options.outDir, { recursive: true });

  // 1. Detector.
  const geometry = defaultGeometry();
  const maps = pixelMapsFor(geometry);
  const goodPixels = geometryMask(maps);
  const resolution = resolutionFor(maps);
  let maxInvD = 0;
  for (let i = 0; i < resolution.length; i++) if (resolution[i] > maxInvD) maxInvD = resolution[i];
  const slabShape: [number, number] = [maps.ssSize, maps.fsSize];
  let pixels = 0;
  for (const panel of maps.panelIndex) if (panel >= 0) pixels++;
  log(
    `detector  ${geometry.sourcePath}: ${geometry.panels.length} panels, ${pixels} pixels, slab [${slabShape}], ` +
      `corner resolution ${(1e10 / maxInvD).toFixed(2)} A`,
  );

  // 2. A run with exact truth, streamed to CXI frame by frame.
  const random = seededRandom(options.seed);
  const runPath = join(options.outDir, 'run.cxi');
  const writer = await createCxiWriter(runPath, {
    frames: { slabShape, dtype: 'float32', compression: 1 },
    peakGroup: '/entry_1/truth_1',
    maxPeaks: 256,
  });
  const startWrite = performance.now();
  const frames = [];
  let truthPeaks = 0;
  for (let i = 0; i < options.frames; i++) {
    const frame = generateSpotFrame(maps, random, defaultSpotFrameOptions);
    for (let p = 0; p < frame.image.length; p++) if (!goodPixels[p]) frame.image[p] = 0;
    writer.appendFrame({ peaks: frame.truth, image: frame.image, photonEnergyEv: 9500, clenM: 0.08 });
    writer.appendExtra('mask', frame.mask, slabShape);
    frames.push(frame);
    truthPeaks += frame.truth.count;
  }
  writer.close();
  const writeMs = performance.now() - startWrite;
  const reader = await openFrameReader(runPath, { expectedSlabShape: slabShape });
  let identical = reader.frameCount === options.frames;
  for (let i = 0; i < reader.frameCount && identical; i++) {
    const back = reader.readFrame(i);
    for (let p = 0; p < back.length; p++) {
      if (back[p] !== frames[i].image[p]) {
        identical = false;
        break;
      }
    }
  }
  reader.close();
  log(
    `run       ${runPath}: ${options.frames} frames, ${truthPeaks} true spots, written in ${writeMs.toFixed(0)} ms, ` +
      `read back ${identical ? 'identical' : 'DIFFERENT'}`,
  );

  // 3. Train an edge model on crops of all frames but the last.
  const training = await trainOnCrops({
    model: options.model,
    frames: frames.slice(0, -1),
    slabShape,
    inferenceShape: slabShape,
    cropPx: options.cropPx,
    batch: options.batch,
    steps: options.trainSteps,
    seed: options.seed,
    log,
  });
  log(
    `train     ${options.model} (${training.params} params): loss ${training.firstLoss.toFixed(4)} -> ` +
      `${training.lastLoss.toFixed(4)} over ${options.trainSteps} steps, ${training.msPerStep.toFixed(0)} ms/step`,
  );

  // 4. Inference on the held-out frame, whole slab (panels stacked along ss), then peaks from the mask.
  const heldOut = frames.length - 1;
  const [ssSize, fsSize] = slabShape;
  const session = training.inferenceSession;
  const image = normalise(frames[heldOut].image);
  const feeds = { [session.inputNames[0]]: hostTensor('float32', [1, 1, ssSize, fsSize], image) };
  let out = await session.run(feeds); // warm-up: the first run plans memory
  const times: number[] = [];
  for (let r = 0; r < 3; r++) {
    const start = performance.now();
    out = await session.run(feeds);
    times.push((performance.now() - start) / 1000);
  }
  const seconds = times.sort((a, b) => a - b)[1]; // median of 3
  await session.release();
  const logits = out[session.outputNames[0]].values as Float32Array;
  const found = segmentPeaks(logits, frames[heldOut].image, ssSize, fsSize, { minPixels: 2 });
  const match = matchPeaks(found, frames[heldOut].truth, 2);
  const peaksPath = join(options.outDir, 'peaks.cxi');
  const peakWriter = await createCxiWriter(peaksPath);
  peakWriter.appendFrame({ peaks: found, photonEnergyEv: 9500, clenM: 0.08 });
  peakWriter.close();
  const written = await readPeakTable(peaksPath);
  const mpixPerS = (ssSize * fsSize) / 1e6 / seconds;
  log(
    `infer     frame ${heldOut}: ${((ssSize * fsSize) / 1e6).toFixed(2)} Mpix in ${(seconds * 1000).toFixed(0)} ms ` +
      `(median of 3, ${mpixPerS.toFixed(2)} Mpix/s), ${written[0].count} peaks -> ${peaksPath}; against truth within 2 px: ` +
      `precision ${match.precision.toFixed(3)}, recall ${match.recall.toFixed(3)}`,
  );

  return {
    detector: {
      name: geometry.sourcePath ?? 'default',
      panels: geometry.panels.length,
      pixels,
      slabShape,
      bestResolutionA: 1e10 / maxInvD,
    },
    run: { path: runPath, frames: options.frames, truthPeaks, writeMs, readBackIdentical: identical },
    training: {
      model: options.model,
      params: training.params,
      steps: options.trainSteps,
      firstLoss: training.firstLoss,
      lastLoss: training.lastLoss,
      msPerStep: training.msPerStep,
    },
    inference: {
      frame: heldOut,
      mpixPerS,
      found: written[0].count,
      truth: frames[heldOut].truth.count,
      precision: match.precision,
      recall: match.recall,
    },
    peaksPath,
  };
}

/** Per-event instance normalisation (mean/variance over the frame, eps 1e-6), as the reference system. */
export function normalise(image: Float32Array): Float32Array {
  let mean = 0;
  for (let i = 0; i < image.length; i++) mean += image[i];
  mean /= image.length;
  let variance = 0;
  for (let i = 0; i < image.length; i++) variance += (image[i] - mean) ** 2;
  const scale = 1 / Math.sqrt(variance / image.length + 1e-6);
  const out = new Float32Array(image.length);
  for (let i = 0; i < image.length; i++) out[i] = (image[i] - mean) * scale;
  return out;
}
