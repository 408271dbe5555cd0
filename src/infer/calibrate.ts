/**
 * Choosing a model file's decision rule on labelled frames: every candidate rule (logit margin,
 * smallest component) is applied to the same margin maps, its peaks matched to the truth one-to-one
 * within a radius (as `braggflow eval`), and the counts summed over frames; the rule with the best
 * micro F1 wins. Used by `braggflow export --calibrate` and by training's validation, which also
 * writes the winner into the trained model file.
 */
import { matchPeaks, type PointSet, scoresFromCounts } from '../engine/match.js';
import type { DecisionRule, PeakNetFinder } from './peaknet-finder.js';

/** The rules tried when calibrating. */
export const CALIBRATION_MARGINS = [-5, -4, -3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, 4];
export const CALIBRATION_MIN_PIXELS = [1, 2, 3];
/** The uncalibrated rule: argmax, components of two pixels or more. */
export const ARGMAX_RULE: Readonly<DecisionRule> = Object.freeze({ marginLogit: 0, minPixels: 2 });

export interface RuleScore {
  rule: DecisionRule;
  precision: number;
  recall: number;
  f1: number;
  found: number;
  matched: number;
  reference: number;
}

export interface MarginRuleScorer {
  addFrame(
    finder: Pick<PeakNetFinder, 'peaksFromMargins'>,
    margins: Float32Array,
    image: ArrayLike<number>,
    truth: PointSet,
  ): void;
  /** Every rule's score, in CALIBRATION order. */
  scores(): RuleScore[];
  /** The best rule (ties: the first listed) and argmax's F1. */
  best(): RuleScore & { argmaxF1: number };
}

export function createMarginRuleScorer(radiusPx: number): MarginRuleScorer {
  const rules: DecisionRule[] = CALIBRATION_MARGINS.flatMap((marginLogit) =>
    CALIBRATION_MIN_PIXELS.map((minPixels) => ({ marginLogit, minPixels })),
  );
  const counts = rules.map(() => ({ matched: 0, found: 0, reference: 0 }));
  const scores = (): RuleScore[] =>
    rules.map((rule, r) => ({
      rule,
      ...counts[r],
      ...scoresFromCounts(counts[r].matched, counts[r].found, counts[r].reference),
    }));
  return {
    addFrame(finder, margins, image, truth) {
      rules.forEach((rule, r) => {
        const m = matchPeaks(finder.peaksFromMargins(margins, image, rule), truth, radiusPx);
        counts[r].matched += m.matched;
        counts[r].found += m.found;
        counts[r].reference += m.reference;
      });
    },
    scores,
    best() {
      const all = scores();
      let best = 0;
      all.forEach((s, r) => {
        if (s.f1 > all[best].f1) best = r;
      });
      const argmax = all.find(
        (s) => s.rule.marginLogit === ARGMAX_RULE.marginLogit && s.rule.minPixels === ARGMAX_RULE.minPixels,
      );
      return { ...all[best], argmaxF1: argmax?.f1 ?? 0 };
    },
  };
}
