/**
 * Peak-level evaluation of a peak finder against reference peaks (simulator truth, expert labels):
 * per frame, the optimal one-to-one assignment within a radius (matchPeaks: Hungarian over clusters),
 * then precision, recall and F1 per frame and over the run. "Micro" sums true/false positives and
 * misses over frames (a frame with many peaks weighs more; what tuning maximises); "macro" averages the
 * per-frame scores (every frame weighs the same). Hit finding scores the frame-level decision "this
 * frame has at least minPeaks peaks" of the prediction against the same decision on the truth.
 */
import { UserError } from '../util/errors.js';
import { matchPeaks, type PointSet, type Scores, scoresFromCounts } from './match.js';

export { type Scores, scoresFromCounts } from './match.js';

export interface EvalOptions {
  /** Match radius, pixels (inclusive). */
  radiusPx: number;
  /** A frame is a hit when it has at least this many peaks. */
  minPeaks: number;
}

export const defaultEvalOptions: EvalOptions = { radiusPx: 2, minPeaks: 15 };

export interface FrameScore {
  frame: number;
  truth: number;
  predicted: number;
  /** True positives: predicted peaks matched to a truth peak. */
  matched: number;
  precision: number;
  recall: number;
  f1: number;
  /** Mean distance of matched pairs, pixels (0 when none matched). */
  meanDistancePx: number;
  truthHit: boolean;
  predictedHit: boolean;
}

export interface CountScores extends Scores {
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
}

export interface HitScores extends Scores {
  truthHits: number;
  predictedHits: number;
  /** Frames that are hits in both. */
  bothHits: number;
}

export interface EvalReport {
  frames: number;
  radiusPx: number;
  minPeaks: number;
  truthPeaks: number;
  predictedPeaks: number;
  micro: CountScores;
  macro: Scores;
  /** Mean distance over all matched pairs, pixels. */
  meanDistancePx: number;
  hits: HitScores;
  perFrame: FrameScore[];
}

function checkOptions(options: EvalOptions): void {
  if (!(options.radiusPx >= 0) || !Number.isFinite(options.radiusPx))
    throw new UserError(`radius must be a non-negative number of pixels, got ${options.radiusPx}`);
  if (!Number.isInteger(options.minPeaks) || options.minPeaks < 0)
    throw new UserError(`min-peaks must be a non-negative integer, got ${options.minPeaks}`);
}

/** Scores one frame. */
export function scoreFrame(
  frame: number,
  truth: PointSet,
  predicted: PointSet,
  options: EvalOptions,
): FrameScore {
  const match = matchPeaks(predicted, truth, options.radiusPx);
  return {
    frame,
    truth: truth.count,
    predicted: predicted.count,
    matched: match.matched,
    precision: match.precision,
    recall: match.recall,
    f1: match.f1,
    meanDistancePx: match.meanDistancePx,
    truthHit: truth.count >= options.minPeaks,
    predictedHit: predicted.count >= options.minPeaks,
  };
}

/** Aggregates per-frame scores into the run's report. */
export function summariseScores(perFrame: FrameScore[], options: EvalOptions): EvalReport {
  let matched = 0;
  let predicted = 0;
  let truth = 0;
  let distanceSum = 0;
  let truthHits = 0;
  let predictedHits = 0;
  let bothHits = 0;
  const macroSum = { precision: 0, recall: 0, f1: 0 };
  for (const frame of perFrame) {
    matched += frame.matched;
    predicted += frame.predicted;
    truth += frame.truth;
    distanceSum += frame.meanDistancePx * frame.matched;
    if (frame.truthHit) truthHits++;
    if (frame.predictedHit) predictedHits++;
    if (frame.truthHit && frame.predictedHit) bothHits++;
    macroSum.precision += frame.precision;
    macroSum.recall += frame.recall;
    macroSum.f1 += frame.f1;
  }
  const n = perFrame.length;
  const macro =
    n === 0
      ? { precision: 1, recall: 1, f1: 1 }
      : { precision: macroSum.precision / n, recall: macroSum.recall / n, f1: macroSum.f1 / n };
  return {
    frames: n,
    radiusPx: options.radiusPx,
    minPeaks: options.minPeaks,
    truthPeaks: truth,
    predictedPeaks: predicted,
    micro: {
      ...scoresFromCounts(matched, predicted, truth),
      truePositives: matched,
      falsePositives: predicted - matched,
      falseNegatives: truth - matched,
    },
    macro,
    meanDistancePx: matched === 0 ? 0 : distanceSum / matched,
    hits: { ...scoresFromCounts(bothHits, predictedHits, truthHits), truthHits, predictedHits, bothHits },
    perFrame,
  };
}

/**
 * Evaluates predicted peak lists against truth, frame by frame (the lists must have the same length:
 * the caller names the files when they do not).
 */
export function evaluatePeaks(
  truth: readonly PointSet[],
  predicted: readonly PointSet[],
  options: EvalOptions = defaultEvalOptions,
): EvalReport {
  checkOptions(options);
  if (truth.length !== predicted.length)
    throw new UserError(`truth has ${truth.length} frames but the prediction has ${predicted.length}`);
  const perFrame = truth.map((t, i) => scoreFrame(i, t, predicted[i], options));
  return summariseScores(perFrame, options);
}
