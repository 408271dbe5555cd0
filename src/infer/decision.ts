/**
 * From the model's per-pixel logits to peaks, with the decision rule chosen on the training frames
 * the way pf8's parameters are: a pixel is a peak pixel when its peak logit exceeds the background
 * logit by `marginLogit` (0 = argmax), and a connected component needs `minPixels` pixels. A model
 * trained for a few hundred steps with a class-weighted focal loss is not calibrated (its argmax
 * leans to the weighted class), so the rule that scores best against the training frames' truth is
 * kept and then applied, unchanged, to the held-out frames.
 */
import { matchPeaks, type PointSet } from '../engine/match.js';
import type { PeakList } from '../peaks/peak-list.js';
import { segmentPeaks } from '../peaks/segment.js';
import { scoreCounts } from '../peaks/tune.js';

export interface DecisionRule {
  marginLogit: number;
  minPixels: number;
}

export const argmaxRule: Readonly<DecisionRule> = Object.freeze({ marginLogit: 0, minPixels: 2 });

/** The rules tried on the training frames. */
export const decisionMargins = [-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3];
export const decisionMinPixels = [1, 2, 3];

/** Peaks of one frame under `rule`; `logits` is [2, ss, fs] (background, peak). */
export function peaksWithRule(
  logits: Float32Array,
  imageAdu: Float32Array,
  ssSize: number,
  fsSize: number,
  rule: DecisionRule,
  scratch?: Float32Array,
): PeakList {
  let shifted = logits;
  if (rule.marginLogit !== 0) {
    const n = ssSize * fsSize;
    shifted = scratch ?? new Float32Array(logits.length);
    shifted.set(logits.subarray(0, n));
    for (let i = n; i < 2 * n; i++) shifted[i] = logits[i] - rule.marginLogit;
  }
  return segmentPeaks(shifted, imageAdu, ssSize, fsSize, { minPixels: rule.minPixels });
}

/** Accumulates match counts of every candidate rule over frames, then picks the best by F1. */
export function createRuleSearch(radiusPx: number) {
  const rules: DecisionRule[] = decisionMargins.flatMap((marginLogit) =>
    decisionMinPixels.map((minPixels) => ({ marginLogit, minPixels })),
  );
  const counts = rules.map(() => ({ matched: 0, found: 0, reference: 0 }));
  let scratch: Float32Array | undefined;
  return {
    /** Scores every rule on one training frame. */
    addFrame(logits: Float32Array, imageAdu: Float32Array, truth: PointSet, ssSize: number, fsSize: number) {
      scratch ??= new Float32Array(logits.length);
      rules.forEach((rule, r) => {
        const found = peaksWithRule(logits, imageAdu, ssSize, fsSize, rule, scratch);
        const match = matchPeaks(found, truth, radiusPx);
        counts[r].matched += match.matched;
        counts[r].found += match.found;
        counts[r].reference += match.reference;
      });
    },
    /** Best F1 (ties: the first listed, i.e. the smallest margin, then the fewest pixels). */
    best(): { rule: DecisionRule; f1: number; argmaxF1: number } {
      let best = 0;
      const scores = counts.map((c) => scoreCounts(c).f1);
      scores.forEach((f1, r) => {
        if (f1 > scores[best]) best = r;
      });
      const argmax = rules.findIndex(
        (r) => r.marginLogit === argmaxRule.marginLogit && r.minPixels === argmaxRule.minPixels,
      );
      return { rule: rules[best], f1: scores[best], argmaxF1: scores[argmax] };
    },
  };
}
