/**
 * Validation during training, with the metric that matters and the code path that ships: the current
 * weights become a model file in memory, served per panel exactly as `peaks --method peaknet` serves
 * it (tiling, preprocessing, components), on held-out frames that training never draws (another seed).
 * Reported: peak-level precision/recall/F1 (Hungarian within the radius, as `braggflow eval`) under
 * the best decision rule and under argmax, and pixel IoU of the argmax mask against the truth mask.
 * The best rule of the last validation is the one the trained model file carries.
 */
import { createMarginRuleScorer } from '../infer/calibrate.js';
import type { ModelFile } from '../infer/model-file.js';
import { createPeakNetFinder, type DecisionRule } from '../infer/peaknet-finder.js';
import type { TrainConfig } from './config.js';
import { openFrameSource, type TrainingFrame } from './frame-source.js';

export interface ValidationSet {
  frames: TrainingFrame[];
  truthPeaks: number;
}

export interface ValidationResult {
  frames: number;
  truthPeaks: number;
  rule: DecisionRule;
  precision: number;
  recall: number;
  f1: number;
  found: number;
  argmaxF1: number;
  /** Pixel IoU of argmax peak pixels against the truth mask, over the pixels a tile decides. */
  pixelIou: number;
  seconds: number;
}

/** Held-out frames of every simulate source (dataset sources are training data only). */
export async function buildValidationSet(config: TrainConfig): Promise<ValidationSet> {
  const frames: TrainingFrame[] = [];
  for (const [i, source] of config.data.sources.entries()) {
    if (source.kind !== 'simulate') continue;
    const opened = await openFrameSource(
      // One detector per frame: validation should span detectors, not frames of one.
      { ...source, framesPerDetector: 1 },
      config.validation.seed + 7919 * i,
    );
    for (let f = 0; f < config.validation.framesPerSource; f++) frames.push(await opened.frame(f));
    opened.close();
  }
  return { frames, truthPeaks: frames.reduce((n, f) => n + f.truth.count, 0) };
}

export async function validate(
  file: ModelFile,
  set: ValidationSet,
  radiusPx: number,
  options: { intraOpThreads?: number } = {},
): Promise<ValidationResult> {
  const started = performance.now();
  const scorer = createMarginRuleScorer(radiusPx);
  let intersection = 0;
  let union = 0;
  // The validation set draws one detector per frame: a finder (sessions, tile plan) per frame.
  for (const frame of set.frames) {
    const finder = await createPeakNetFinder(file, frame.maps, frame.goodPixels, {
      intraOpThreads: options.intraOpThreads,
    });
    try {
      const margins = await finder.margins(frame.image);
      for (let i = 0; i < margins.length; i++) {
        if (margins[i] === Number.NEGATIVE_INFINITY) continue;
        const predicted = margins[i] > 0;
        const truth = frame.mask[i] === 1;
        if (predicted && truth) intersection++;
        if (predicted || truth) union++;
      }
      scorer.addFrame(finder, margins, frame.image, frame.truth);
    } finally {
      await finder.release();
    }
  }
  const best = scorer.best();
  return {
    frames: set.frames.length,
    truthPeaks: set.truthPeaks,
    rule: best.rule,
    precision: best.precision,
    recall: best.recall,
    f1: best.f1,
    found: best.found,
    argmaxF1: best.argmaxF1,
    pixelIou: union === 0 ? 1 : intersection / union,
    seconds: (performance.now() - started) / 1000,
  };
}
