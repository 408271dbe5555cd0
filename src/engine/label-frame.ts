/**
 * One frame's labels from its agreed peaks: each peak gets a 2-D pseudo-Voigt plus planar background
 * fitted in a window around it (Levenberg-Marquardt, pseudo-voigt.ts), and the pixels where the fitted
 * profile (background removed) is at or above half of its largest pixel value become peak pixels. A fit flagged bad labels
 * nothing and is counted. Work is per panel: a window never crosses a panel's edge.
 *
 * Pure and allocation-light (typed arrays in, typed arrays out) so it runs the same on the main thread
 * or in a worker.
 */
import type { SlabRect } from '../detector/mask.js';
import { createPeakList, type PeakList } from '../peaks/peak-list.js';
import { type FitOptions, fitPseudoVoigt, pixelAveragedShape } from './pseudo-voigt.js';

export interface FrameLabelInput {
  /** The slab [ssSize * fsSize], fs fastest, in detector units. */
  image: Float32Array;
  fsSize: number;
  ssSize: number;
  /** 1 = good pixel (geometry, mask files, NaN); bad pixels are never fitted or labelled. */
  mask: Uint8Array;
  /** Inclusive slab rectangle of each panel, by panel index. */
  panels: readonly SlabRect[];
  /** The peaks to fit: slab positions (CXI convention) and the panel of each (-1: none, skipped). */
  peaks: { count: number; fs: ArrayLike<number>; ss: ArrayLike<number>; panel: ArrayLike<number> };
  fit?: FitOptions;
  /**
   * A spot is labelled only when the background-subtracted sum over its label pixels is at least this
   * many standard deviations of its noise (default 0: no check). The noise: the window's other pixels'
   * scatter about the fitted model (robust: a median), per label pixel, plus the spot's own shot noise
   * (`fit.gain` units per photon). Unlike the fitted height's error, it does not blow up for spots
   * narrower than a pixel, whose height and width trade off while their sum is well measured.
   */
  minSnr?: number;
}

export interface FrameLabelResult {
  /** Peak pixels, slab [ssSize * fsSize]: 1 where some good fit's profile is at or above half maximum. */
  labels: Uint8Array;
  /**
   * One row per labelled spot: fitted centre (slab), background-subtracted sum over its label pixels,
   * that sum's SNR (see minSnr), its label pixel count, its fitted peak height.
   */
  peaks: PeakList;
  /** Per labelled spot (row of `peaks`): its fit's reduced chi-square. */
  peakReducedChiSquare: Float32Array;
  /** Per input peak: 1 when the fit was bad (or the peak lies on no panel), else 0. */
  bad: Uint8Array;
  /** Bad fits by reason (`not converged`, `amplitude <= 0`, `no panel`, ...). */
  badReasons: Record<string, number>;
  labelledPixels: number;
}

/** Fits and labels every peak of one frame (see the module comment). */
export function labelFrame(input: FrameLabelInput): FrameLabelResult {
  const { image, fsSize, mask, panels, peaks } = input;
  const labels = new Uint8Array(image.length);
  const out = createPeakList(peaks.count);
  const peakReducedChiSquare = new Float32Array(peaks.count);
  const bad = new Uint8Array(peaks.count);
  const badReasons: Record<string, number> = {};
  const minSnr = input.minSnr ?? 0;
  const gain = input.fit?.gain ?? 1;
  const spot: number[] = [];
  const residual2: number[] = [];
  const noteBad = (i: number, reason: string) => {
    bad[i] = 1;
    badReasons[reason] = (badReasons[reason] ?? 0) + 1;
  };
  // Panel images, masks and labels cut out on first use: fits see one panel only.
  const cut = new Map<
    number,
    { image: Float32Array; mask: Uint8Array; labels: Uint8Array; rect: SlabRect }
  >();
  const panelData = (p: number) => {
    let data = cut.get(p);
    if (data === undefined) {
      const rect = panels[p];
      const width = rect.fs1 - rect.fs0 + 1;
      const height = rect.ss1 - rect.ss0 + 1;
      const panelImage = new Float32Array(width * height);
      const panelMask = new Uint8Array(width * height);
      for (let row = 0; row < height; row++) {
        const from = (rect.ss0 + row) * fsSize + rect.fs0;
        panelImage.set(image.subarray(from, from + width), row * width);
        panelMask.set(mask.subarray(from, from + width), row * width);
      }
      // NaN or infinite pixels are bad pixels too.
      for (let i = 0; i < panelImage.length; i++) if (!Number.isFinite(panelImage[i])) panelMask[i] = 0;
      data = { image: panelImage, mask: panelMask, labels: new Uint8Array(width * height), rect };
      cut.set(p, data);
    }
    return data;
  };
  for (let i = 0; i < peaks.count; i++) {
    const p = peaks.panel[i];
    if (p < 0 || p >= panels.length) {
      noteBad(i, 'no panel');
      continue;
    }
    const data = panelData(p);
    const width = data.rect.fs1 - data.rect.fs0 + 1;
    const height = data.rect.ss1 - data.rect.ss0 + 1;
    const fit = fitPseudoVoigt(
      data.image,
      width,
      height,
      peaks.fs[i] - data.rect.fs0,
      peaks.ss[i] - data.rect.ss0,
      input.fit,
      data.mask,
    );
    if (fit.bad) {
      noteBad(i, fit.badReason ?? 'bad fit');
      continue;
    }
    // This peak's own pixels: within its window, those where the fitted profile (background removed),
    // as the fit samples a pixel, is at least half of its largest pixel value. Half of the largest
    // *pixel* (not of the continuous peak height) is the simulator's truth definition too, and keeps
    // an unresolved spot centred between pixels labelled (its brightest pixel at least).
    const { window } = fit;
    const { b0, bFs, bSs, fsRef, ssRef } = fit.background;
    const supersample = input.fit?.supersample ?? 1;
    const shapeAt = (fs: number, ss: number) => pixelAveragedShape(fit, fs, ss, supersample);
    let brightest = 0;
    for (let ss = window.ssMin; ss <= window.ssMax; ss++)
      for (let fs = window.fsMin; fs <= window.fsMax; fs++)
        if (data.mask[ss * width + fs] !== 0) brightest = Math.max(brightest, shapeAt(fs, ss));
    let sum = 0;
    let count = 0;
    spot.length = 0;
    residual2.length = 0;
    for (let ss = window.ssMin; ss <= window.ssMax; ss++) {
      for (let fs = window.fsMin; fs <= window.fsMax; fs++) {
        const k = ss * width + fs;
        if (data.mask[k] === 0) continue;
        const shape = shapeAt(fs, ss);
        const background = b0 + bFs * (fs - fsRef) + bSs * (ss - ssRef);
        if (shape >= 0.5 * brightest) {
          spot.push(k);
          sum += data.image[k] - background;
          count++;
        } else {
          const r = data.image[k] - background - fit.amplitude * shape;
          residual2.push(r * r);
        }
      }
    }
    if (count === 0) {
      noteBad(i, 'no good pixel in the window');
      continue;
    }
    // The median of a chi-square with one degree of freedom is 0.4549: median(r^2) / 0.4549 estimates
    // the variance, untroubled by a neighbouring spot in the window.
    residual2.sort((a, b) => a - b);
    const pixelVariance = residual2.length === 0 ? 0 : residual2[residual2.length >> 1] / 0.4549;
    const snr = sum / Math.sqrt(count * pixelVariance + gain * Math.max(sum, 0) + 1e-30);
    if (!(snr >= minSnr)) {
      noteBad(i, 'spot not significant');
      continue;
    }
    for (const k of spot) data.labels[k] = 1;
    const n = out.count++;
    peakReducedChiSquare[n] = fit.reducedChiSquare;
    out.fs[n] = fit.fsPx + data.rect.fs0;
    out.ss[n] = fit.ssPx + data.rect.ss0;
    out.totalIntensity[n] = sum;
    out.snr[n] = snr;
    out.nPixels[n] = count;
    out.maxValue[n] = fit.amplitude;
  }
  let labelledPixels = 0;
  for (const { labels: panelLabels, rect } of cut.values()) {
    const width = rect.fs1 - rect.fs0 + 1;
    for (let row = 0; row <= rect.ss1 - rect.ss0; row++) {
      const at = (rect.ss0 + row) * fsSize + rect.fs0;
      for (let c = 0; c < width; c++) {
        if (panelLabels[row * width + c] !== 0 && labels[at + c] === 0) {
          labels[at + c] = 1;
          labelledPixels++;
        }
      }
    }
  }
  return {
    labels,
    peaks: out,
    peakReducedChiSquare: peakReducedChiSquare.subarray(0, out.count),
    bad,
    badReasons,
    labelledPixels,
  };
}
