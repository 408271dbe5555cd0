/**
 * The dispersion finder sums each window either directly (few pixels above the global threshold) or
 * through summed-area tables (many): both must mark exactly the pixels a plain per-pixel evaluation of
 * the DIALS tests marks, with window edges clipped to the panel and bad / NaN pixels left out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createDispersionContext,
  type DispersionParams,
  defaultDispersionParams,
  dispersionMask,
} from '../../src/peaks/dispersion.js';
import { seededRandom } from '../../src/util/random.js';
import { smallFs, smallMaps } from './pf8-fixtures.js';

const maps = smallMaps();
const panels = [
  [0, 63],
  [64, 127],
];

/** Strong pixels by the definition, window by window (the test's own oracle). */
function referenceMask(image: Float32Array, good: Uint8Array, params: DispersionParams): Uint8Array {
  const out = new Uint8Array(image.length);
  const [kf, ks] = params.kernelSize;
  const { gain, nSigmaB, nSigmaS } = params;
  for (const [ss0, ss1] of panels) {
    for (let ss = ss0; ss <= ss1; ss++) {
      for (let fs = 0; fs < smallFs; fs++) {
        const i = ss * smallFs + fs;
        const v = image[i];
        if (!good[i] || !(v > params.globalThreshold) || !Number.isFinite(v)) continue;
        let n = 0;
        let x = 0;
        let y = 0;
        for (let s = Math.max(ss0, ss - ks); s <= Math.min(ss1, ss + ks); s++) {
          for (let f = Math.max(0, fs - kf); f <= Math.min(smallFs - 1, fs + kf); f++) {
            const w = image[s * smallFs + f];
            if (!good[s * smallFs + f] || !Number.isFinite(w)) continue;
            n++;
            x += w;
            y += w * w;
          }
        }
        if (n < params.minLocal || !(x > 0)) continue;
        const dispersion = n * y - x * x - gain * x * (n - 1);
        const strong = n * v - x > nSigmaS * Math.sqrt(gain * x * n);
        if (strong && dispersion > gain * x * nSigmaB * Math.sqrt(2 * (n - 1))) out[i] = 1;
      }
    }
  }
  return out;
}

test('dispersion windows: direct sums and summed-area tables mark the same pixels as the definition', () => {
  const random = seededRandom(3);
  const image = new Float32Array(maps.ssSize * maps.fsSize);
  // Integer background 0..9 (sums exact either way), spots of 20..200 on it, spots at panel edges.
  for (let i = 0; i < image.length; i++) image[i] = Math.floor(random() * 10);
  const spots = [
    [5, 5],
    [30, 40],
    [62, 10],
    [64, 20],
    [100, 62],
    [90, 0],
  ];
  for (const [ss, fs] of spots) {
    for (let d = -1; d <= 1; d++) {
      for (let e = -1; e <= 1; e++) {
        const s = ss + d;
        const f = fs + e;
        if (s >= 0 && s < 128 && f >= 0 && f < smallFs)
          image[s * smallFs + f] = 200 - 60 * (Math.abs(d) + Math.abs(e));
      }
    }
  }
  image[31 * smallFs + 41] = Number.NaN;
  const good = new Uint8Array(image.length).fill(1);
  for (let f = 0; f < 8; f++) good[6 * smallFs + f] = 0;
  const ctx = createDispersionContext(maps, good);
  const base: DispersionParams = { ...defaultDispersionParams, gain: 1, nSigmaB: 3, nSigmaS: 3 };
  let marked = 0;
  // Threshold 50: a few dozen candidates (direct sums); 0: every pixel is one (tables).
  for (const globalThreshold of [50, 0]) {
    for (const kernelSize of [
      [3, 3],
      [1, 4],
    ] as [number, number][]) {
      const params = { ...base, globalThreshold, kernelSize };
      const got = dispersionMask(image, ctx, params);
      const want = referenceMask(image, good, params);
      for (let i = 0; i < image.length; i++)
        assert.equal(got[i], want[i], `threshold ${globalThreshold} kernel ${kernelSize}: pixel ${i}`);
      marked += want.reduce((a, b) => a + b, 0);
    }
  }
  assert.ok(marked > 40, `only ${marked} strong pixels`);
});
