/**
 * Gaussian-spot frames with exact truth: a small, fast generator for smoke tests and the demo. It is
 * NOT the physics simulator (Ewald sphere, partiality, Wilson intensities, water ring: that one comes
 * with `braggflow simulate`); it places round spots at random on real pixels over a radial background
 * with Poisson noise, and says exactly where each spot is and which pixels belong to it.
 */
import type { PixelMaps } from '../detector/pixel-maps.js';
import { createPeakList, type PeakList } from '../peaks/peak-list.js';

export interface SpotFrameOptions {
  /** Spots per frame (drawn uniformly in [min, max]). */
  minSpots: number;
  maxSpots: number;
  /** Gaussian sigma of a spot, pixels. */
  spotSigmaPx: number;
  /** Integrated photons of a spot, log-uniform in [min, max]. */
  minSpotPhotons: number;
  maxSpotPhotons: number;
  /** Background photons per pixel at the beam, falling as 1/(1 + (r / backgroundScalePx)^2). */
  backgroundPhotons: number;
  backgroundScalePx: number;
  /** ADU per photon. */
  gain: number;
}

export const defaultSpotFrameOptions: SpotFrameOptions = {
  minSpots: 20,
  maxSpots: 60,
  spotSigmaPx: 1.0,
  minSpotPhotons: 200,
  maxSpotPhotons: 3000,
  backgroundPhotons: 6,
  backgroundScalePx: 300,
  gain: 1,
};

export interface SpotFrame {
  /** [ss * fs] ADU, fs fastest. */
  image: Float32Array;
  /** 1 where the spot's expected signal is at least half its maximum (the label definition). */
  mask: Uint8Array;
  /** Spot centres (CXI slab convention) and integrated ADU. */
  truth: PeakList;
}

/** Poisson sample: Knuth's method for small means, a rounded normal approximation above 30. */
function poisson(mean: number, random: () => number): number {
  if (mean <= 0) return 0;
  if (mean > 30) {
    const u = 1 - random();
    const v = random();
    const normal = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    return Math.max(0, Math.round(mean + Math.sqrt(mean) * normal));
  }
  const limit = Math.exp(-mean);
  let k = 0;
  let p = random();
  while (p > limit) {
    k++;
    p *= random();
  }
  return k;
}

/**
 * One frame over the geometry's pixels. Spots land only where a panel pixel exists and stay 3 sigma
 * inside their panel, so every true spot is findable.
 */
export function generateSpotFrame(
  maps: PixelMaps,
  random: () => number,
  options: SpotFrameOptions = defaultSpotFrameOptions,
): SpotFrame {
  const { ssSize, fsSize, panelIndex, radiusPx } = maps;
  const n = ssSize * fsSize;
  const expected = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = radiusPx[i];
    if (panelIndex[i] < 0 || Number.isNaN(r)) continue;
    const q = r / options.backgroundScalePx;
    expected[i] = options.backgroundPhotons / (1 + q * q);
  }

  const spotCount = options.minSpots + Math.floor(random() * (options.maxSpots - options.minSpots + 1));
  const truth = createPeakList(spotCount);
  const mask = new Uint8Array(n);
  const sigma = options.spotSigmaPx;
  const reach = Math.ceil(3 * sigma);
  const halfMaxRadius2 = 2 * Math.LN2 * sigma * sigma; // exp(-d^2 / 2 sigma^2) >= 1/2
  const logMin = Math.log(options.minSpotPhotons);
  const logSpan = Math.log(options.maxSpotPhotons) - logMin;
  let placed = 0;
  for (let attempt = 0; placed < spotCount && attempt < spotCount * 50; attempt++) {
    const fs = reach + random() * (fsSize - 1 - 2 * reach);
    const ss = reach + random() * (ssSize - 1 - 2 * reach);
    const centre = Math.round(ss) * fsSize + Math.round(fs);
    const panel = panelIndex[centre];
    if (panel < 0) continue;
    // The whole 3-sigma box must be on the same panel (no spot split across a gap).
    let inside = true;
    for (let dss = -reach; dss <= reach && inside; dss += reach) {
      for (let dfs = -reach; dfs <= reach; dfs += reach) {
        if (panelIndex[(Math.round(ss) + dss) * fsSize + Math.round(fs) + dfs] !== panel) inside = false;
      }
    }
    if (!inside) continue;
    const photons = Math.exp(logMin + random() * logSpan);
    const norm = photons / (2 * Math.PI * sigma * sigma);
    let peakValue = 0;
    for (let s = Math.round(ss) - reach; s <= Math.round(ss) + reach; s++) {
      for (let f = Math.round(fs) - reach; f <= Math.round(fs) + reach; f++) {
        const d2 = (s - ss) ** 2 + (f - fs) ** 2;
        const value = norm * Math.exp(-d2 / (2 * sigma * sigma));
        expected[s * fsSize + f] += value;
        peakValue = Math.max(peakValue, value);
        if (d2 <= halfMaxRadius2) mask[s * fsSize + f] = 1;
      }
    }
    truth.fs[placed] = fs;
    truth.ss[placed] = ss;
    truth.totalIntensity[placed] = photons * options.gain;
    truth.maxValue[placed] = peakValue * options.gain;
    truth.nPixels[placed] = (2 * reach + 1) ** 2;
    placed++;
  }
  truth.count = placed;

  const image = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (panelIndex[i] < 0) continue;
    image[i] = poisson(expected[i], random) * options.gain;
  }
  return { image, mask, truth };
}
