/**
 * A labelled frame, as training and the decision-rule search use it: the image in ADU, the per-pixel
 * peak mask and the truth peak list, read from a CXI file where `braggflow simulate` (and the data
 * engine) put them.
 */
import type { PeakList } from '../peaks/peak-list.js';

/** The simulator's truth group and its per-pixel peak mask. */
export const truthGroup = '/entry_1/truth_1';
export const truthMaskPath = `${truthGroup}/mask`;

export interface LabelledFrame {
  image: Float32Array;
  /** 1 = peak pixel of a detectable spot, [ss * fs]. */
  mask: Uint8Array;
  truth: PeakList;
}
