/**
 * Trains a PeakNet on random crops of labelled frames (the simulator's truth masks): the smallest
 * honest training run, used by the demo. Crops hold a true spot 70% of the time so the rare peak class
 * is seen every step; the rest are anywhere (misses included), so the model also sees empty background.
 */

import type { Session } from '../nn/runtime.js';
import { Trainer } from '../train/trainer.js';
import { createProgress } from '../util/progress.js';
import { seededRandom } from '../util/random.js';
import type { LabelledFrame } from './labelled-frame.js';
import { type InputScaling, modelInput } from './model-input.js';

export interface CropTrainingOptions {
  /** [ss, fs] the trained model will serve; multiples of 32. */
  inferenceShape: [number, number];
  model: string;
  frames: readonly LabelledFrame[];
  /** How frames become model input (the same at inference). */
  inputScaling: InputScaling;
  aduPerPhoton: number;
  /** 1 = good pixel; the others read as 0 ADU (as at inference). */
  goodPixels?: Uint8Array;
  slabShape: [number, number];
  cropPx: number;
  batch: number;
  steps: number;
  seed: number;
  /** Focal-loss class weights [background, peak]; default the trainer's. */
  focalAlpha?: [number, number];
  /** Fraction of crops placed over a true spot (default 0.7). */
  spotCropFraction?: number;
  log: (line: string) => void;
}

export interface CropTrainingResult {
  params: number;
  firstLoss: number;
  lastLoss: number;
  msPerStep: number;
  /** Serves the trained weights for frames of this size (the caller releases it). */
  inferenceSession: Session;
}

export async function trainOnCrops(options: CropTrainingOptions): Promise<CropTrainingResult> {
  const { cropPx, batch, frames } = options;
  const [ssSize, fsSize] = options.slabShape;
  const random = seededRandom(options.seed + 1);
  const spotCropFraction = options.spotCropFraction ?? 0.7;
  const trainer = await Trainer.create({
    model: options.model,
    training: {
      batch,
      heightPx: cropPx,
      widthPx: cropPx,
      seed: options.seed,
      // A short run: a high peak rate with a brief warm-up, cosine to 10% by the last step.
      schedule: { peakLr: 4e-3, warmupSteps: 5, totalSteps: options.steps, minLr: 4e-4 },
      ...(options.focalAlpha ? { focal: { alpha: options.focalAlpha, gamma: 2 } } : {}),
    },
  });
  const normalised = frames.map((f) =>
    modelInput(f.image, options.inputScaling, options.aduPerPhoton, options.goodPixels),
  );
  const image = new Float32Array(batch * cropPx * cropPx);
  const target = new Uint8Array(batch * cropPx * cropPx);
  const losses: number[] = [];
  const progress = createProgress('train', options.steps, options.log);
  const start = performance.now();
  for (let step = 0; step < options.steps; step++) {
    for (let b = 0; b < batch; b++) {
      const k = Math.floor(random() * frames.length);
      const frame = frames[k];
      let ss0: number;
      let fs0: number;
      if (random() < spotCropFraction && frame.truth.count > 0) {
        const p = Math.floor(random() * frame.truth.count);
        ss0 = Math.round(frame.truth.ss[p] - random() * cropPx);
        fs0 = Math.round(frame.truth.fs[p] - random() * cropPx);
      } else {
        ss0 = Math.floor(random() * (ssSize - cropPx));
        fs0 = Math.floor(random() * (fsSize - cropPx));
      }
      ss0 = Math.min(Math.max(ss0, 0), ssSize - cropPx);
      fs0 = Math.min(Math.max(fs0, 0), fsSize - cropPx);
      for (let s = 0; s < cropPx; s++) {
        const from = (ss0 + s) * fsSize + fs0;
        const to = (b * cropPx + s) * cropPx;
        image.set(normalised[k].subarray(from, from + cropPx), to);
        target.set(frame.mask.subarray(from, from + cropPx), to);
      }
    }
    const result = await trainer.trainStep({ image, target });
    losses.push(result.loss);
    progress.update(step + 1, `loss ${result.loss.toFixed(5)}  lr ${result.lr.toExponential(2)}`);
  }
  progress.stop();
  const msPerStep = (performance.now() - start) / options.steps;
  const params = trainer.model.graph.paramCount();
  const [heightPx, widthPx] = options.inferenceShape;
  const inferenceSession = await trainer.inferenceSession({ batch: 1, heightPx, widthPx });
  await trainer.release();
  // Average the first and last few steps: single-batch losses are noisy.
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const window = Math.max(1, Math.min(5, Math.floor(losses.length / 4)));
  return {
    params,
    firstLoss: mean(losses.slice(0, window)),
    lastLoss: mean(losses.slice(-window)),
    msPerStep,
    inferenceSession,
  };
}
