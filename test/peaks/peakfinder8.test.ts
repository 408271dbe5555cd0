import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { defaultGeometry } from '../../src/detector/default-geometry.js';
import { geometryMask } from '../../src/detector/mask.js';
import { computePixelMaps, pixelMapsFor } from '../../src/detector/pixel-maps.js';
import { matchPeaks } from '../../src/engine/match.js';
import { openFrameReader } from '../../src/io/cxi-reader.js';
import { readGeometry } from '../../src/io/geom.js';
import { type PeakList, peakColumns, peakListFrom } from '../../src/peaks/peak-list.js';
import {
  createPf8Context,
  defaultPf8Params,
  type Pf8Params,
  peakfinder8,
} from '../../src/peaks/peakfinder8.js';
import { parsePf8ParamsPartial, resolvePf8Params } from '../../src/peaks/pf8-params.js';
import { generateSpotFrame } from '../../src/simulate/spots.js';
import { UserError } from '../../src/util/errors.js';
import { seededRandom } from '../../src/util/random.js';
import { needsShared, sharedPath } from '../helpers.js';
import { block, noiseFrame, paint, smallFs, smallMaps } from './pf8-fixtures.js';

/** Background noise 0..20 (mean 10, sigma 5.8): with adc 100 the thresholds are all 100. */
const params: Pf8Params = { ...defaultPf8Params, adcThreshold: 100, minSnr: 5 };

const maps = smallMaps();

function find(image: ArrayLike<number>, overrides: Partial<Pf8Params> = {}, mask?: Uint8Array) {
  return peakfinder8(image, createPf8Context(maps, mask), { ...params, ...overrides });
}

test('pf8 finds a 3x3 peak at its value-weighted centroid, with its pixels, total and SNR', () => {
  const image = noiseFrame(maps);
  const values = [300, 500, 300, 600, 1000, 700, 300, 500, 400];
  paint(image, 20, 30, 3, values);
  const peaks = find(image);
  assert.equal(peaks.count, 1);
  let sum = 0;
  let sumFs = 0;
  let sumSs = 0;
  values.forEach((v, k) => {
    sum += v;
    sumFs += v * (30 + (k % 3));
    sumSs += v * (20 + Math.floor(k / 3));
  });
  assert.ok(Math.abs(peaks.fs[0] - sumFs / sum) < 1e-4, `fs ${peaks.fs[0]} vs ${sumFs / sum}`);
  assert.ok(Math.abs(peaks.ss[0] - sumSs / sum) < 1e-4);
  assert.equal(peaks.nPixels[0], 9);
  // Total above the local background (about 10 ADU a pixel) and maximum above it.
  assert.ok(Math.abs(peaks.totalIntensity[0] - (sum - 9 * 10)) < 9 * 2, `total ${peaks.totalIntensity[0]}`);
  assert.ok(Math.abs(peaks.maxValue[0] - 990) < 3);
  // SNR = total / local sigma (uniform 0..20: sigma ~5.8).
  const sigma = peaks.totalIntensity[0] / peaks.snr[0];
  assert.ok(sigma > 4.5 && sigma < 7, `local sigma ${sigma}`);
});

test('pf8 threshold: pixels must be strictly above max(adcThreshold, mean + minSnr * sigma)', () => {
  const image = noiseFrame(maps);
  block(image, 20, 30, 2, 100);
  assert.equal(find(image).count, 0, 'at the ADC threshold is not above it');
  block(image, 20, 30, 2, 100.5);
  assert.equal(find(image).count, 1);
  // With no ADC threshold the radial one rules: mean 10 + 5 sigma (5.8) ~ 39 (a bin of ~100 pixels).
  block(image, 20, 30, 2, 30);
  assert.equal(find(image, { adcThreshold: 0 }).count, 0);
  block(image, 20, 30, 2, 60);
  assert.equal(find(image, { adcThreshold: 0 }).count, 1);
  const ctx = createPf8Context(maps);
  peakfinder8(image, ctx, { ...params, adcThreshold: 0 });
  const bin = Math.round(maps.radiusPx[20 * smallFs + 30]);
  assert.ok(ctx.binThreshold[bin] > 30 && ctx.binThreshold[bin] < 60, `threshold ${ctx.binThreshold[bin]}`);
});

test('pf8 rejects peaks with too few or too many pixels', () => {
  const image = noiseFrame(maps);
  image[20 * smallFs + 30] = 2000; // one hot pixel
  assert.equal(find(image).count, 0, 'one pixel < min-pix-count 2');
  assert.equal(find(image, { minPixCount: 1 }).count, 1);
  // 4 x 60 pixels along the radial direction (panel a's rows near y = 0): each radial bin keeps
  // only a few of them, so the bin statistics stay those of the noise.
  const big = noiseFrame(maps);
  for (let ss = 30; ss < 34; ss++) big.fill(500, ss * smallFs + 2, ss * smallFs + 62);
  const found = find(big, { maxPixCount: 1000 });
  assert.equal(found.count, 1);
  const size = found.nPixels[0];
  assert.ok(size > 200 && size <= 240, `size ${size}`);
  assert.equal(find(big).count, 0, `${size} pixels > max-pix-count 200`);
  assert.equal(find(big, { maxPixCount: size }).count, 1);
  assert.equal(find(big, { maxPixCount: size - 1 }).count, 0);
});

test('pf8 rejects a peak whose SNR against its local background is below min-snr', () => {
  const image = noiseFrame(maps);
  // A noisy patch around the peak (0 / 90, under the threshold) makes the local sigma ~45.
  for (let ss = 14; ss <= 28; ss++) {
    for (let fs = 24; fs <= 38; fs++) image[ss * smallFs + fs] = (ss + fs) % 2 === 0 ? 0 : 90;
  }
  block(image, 21, 31, 1, 150);
  image[21 * smallFs + 32] = 150;
  const loose = find(image, { minSnr: 3 });
  assert.equal(loose.count, 1);
  const snr = loose.snr[0];
  assert.ok(snr > 3 && snr < 8, `snr ${snr}`);
  const sigma = loose.totalIntensity[0] / snr;
  assert.ok(sigma > 30, `local sigma ${sigma}`);
  // The radial thresholds stay at the ADC threshold for both, so only the SNR cut differs.
  assert.equal(find(image, { minSnr: snr * 0.99 }).count, 1);
  assert.equal(find(image, { minSnr: snr * 1.01 }).count, 0);
});

test('pf8 rejects a peak whose maximum is below the maximum of its local background ring', () => {
  // A 3 x 3 peak of 300 ADU (bins ~49-51, thresholds 100) near the ring of bin 45, whose pixels all
  // alternate between X and X - 2: that bin's threshold is about X + 4, so those pixels stay in the
  // peak's local background ring (under their own threshold) although they are brighter than 100.
  const ringBin = 45;
  const withRing = (x: number) => {
    const image = noiseFrame(maps);
    block(image, 20, 30, 3, 300);
    let inRing = 0;
    for (let i = 0; i < image.length; i++) {
      if (Math.round(maps.radiusPx[i]) !== ringBin) continue;
      const ss = Math.floor(i / smallFs);
      const fs = i % smallFs;
      image[i] = (ss + fs) % 2 === 0 ? x : x - 2;
      if (x === 300 && Math.hypot(ss - 21, fs - 31) <= 6) inRing++;
    }
    if (x === 300) assert.ok(inRing >= 4, `only ${inRing} pixels of bin ${ringBin} in the ring`);
    return image;
  };
  const ctx = createPf8Context(maps);
  const kept = peakfinder8(withRing(300), ctx, params);
  assert.equal(kept.count, 1, 'ring maximum equal to the peak maximum: kept');
  assert.ok(ctx.binThreshold[ringBin] > 300 && ctx.binThreshold[ringBin] < 310);
  assert.ok(kept.snr[0] > 2 * params.minSnr, `snr ${kept.snr[0]}`);
  // One ADU more in the ring: the SNR barely moves, but the peak is now below the ring's maximum.
  assert.equal(find(withRing(301)).count, 0);
  assert.equal(find(withRing(301), { minSnr: 3 }).count, 0);
  // The rule is the ring's maximum, not the bin threshold: the ring bin's pixels alone never seed.
  assert.equal(find(withRing(600)).count, 0);
  const noPeak = withRing(301);
  block(noPeak, 20, 30, 3, 10);
  assert.equal(find(noPeak).count, 0);
});

test('pf8 seeds skip the 1-pixel panel border, and peaks never cross a panel edge', () => {
  const image = noiseFrame(maps);
  // Two pixels on the first row of panel a: no seed there, so not found.
  paint(image, 0, 30, 2, [800, 800]);
  assert.equal(find(image).count, 0);
  // A peak one row in is found, and grows into the border row.
  const inner = noiseFrame(maps);
  paint(inner, 1, 30, 2, [800, 800]);
  paint(inner, 0, 30, 2, [800, 800]);
  const found = find(inner);
  assert.equal(found.count, 1);
  assert.equal(found.nPixels[0], 4);
  // A bright column across the boundary between panel a (rows 0-63) and b (64-127): two peaks.
  const across = noiseFrame(maps);
  for (let ss = 60; ss < 68; ss++) across[ss * smallFs + 20] = 900;
  const split = find(across);
  assert.equal(split.count, 2);
  assert.deepEqual(Array.from(split.nPixels).sort(), [4, 4]);
  assert.ok(split.ss[0] <= 63 && split.ss[1] >= 64);
});

test('pf8 ignores masked, NaN and infinite pixels', () => {
  const image = noiseFrame(maps);
  block(image, 20, 30, 2, 800);
  block(image, 40, 10, 2, 800);
  const mask = geometryMask(maps);
  for (let ss = 20; ss < 22; ss++) mask.fill(0, ss * smallFs + 30, ss * smallFs + 32);
  const masked = find(image, {}, mask);
  assert.equal(masked.count, 1);
  assert.ok(Math.abs(masked.ss[0] - 40.5) < 0.01);
  // The same peak made of NaN, or one +Inf pixel, is not a peak; NaN noise elsewhere changes nothing.
  const nan = image.slice();
  block(nan, 20, 30, 2, Number.NaN);
  nan[50 * smallFs + 50] = Number.POSITIVE_INFINITY;
  nan[51 * smallFs + 50] = Number.POSITIVE_INFINITY;
  nan[90 * smallFs + 5] = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < 40; k++) nan[(70 + k) * smallFs + 40] = Number.NaN;
  const reference = image.slice();
  const refMask = mask.slice();
  for (let k = 0; k < 40; k++) refMask[(70 + k) * smallFs + 40] = 0;
  refMask[50 * smallFs + 50] = 0;
  refMask[51 * smallFs + 50] = 0;
  refMask[90 * smallFs + 5] = 0;
  const withNan = find(nan);
  const withMask = find(reference, {}, refMask);
  assert.equal(withNan.count, 1);
  assert.deepEqual(withNan, withMask);
});

test('pf8 keeps only pixels with min-res < radius < max-res (pixels from the beam)', () => {
  const image = noiseFrame(maps);
  block(image, 20, 30, 2, 800); // panel a: x = -80 + 31 = -49, y = -32 + 21 = -11: r ~ 50
  const r = maps.radiusPx[21 * smallFs + 31];
  assert.ok(r > 45 && r < 55);
  assert.equal(find(image).count, 1);
  assert.equal(find(image, { minResPx: r + 5 }).count, 0);
  assert.equal(find(image, { maxResPx: r - 5 }).count, 0);
  assert.equal(find(image, { minResPx: r - 5, maxResPx: r + 5 }).count, 1);
});

test('pf8 stops at max-peaks, keeping the first peaks in scan order (as the C code)', () => {
  const image = noiseFrame(maps);
  const spots: [number, number, number][] = [];
  for (let k = 0; k < 10; k++) spots.push([5 + 12 * (k % 5), 6 + 10 * Math.floor(k / 5), 300 + 100 * k]);
  for (const [ss, fs, v] of spots) block(image, ss, fs, 2, v);
  const all = find(image);
  assert.equal(all.count, 10);
  const three = find(image, { maxNumPeaks: 3 });
  assert.equal(three.count, 3);
  assert.deepEqual(Array.from(three.fs), Array.from(all.fs.subarray(0, 3)));
  assert.deepEqual(Array.from(three.ss), Array.from(all.ss.subarray(0, 3)));
  // Scan order is rows first: the two peaks of the top row, then the next row; not the strongest
  // three (the brightest peaks are the bottom ones).
  assert.deepEqual(Array.from(three.ss), [5.5, 5.5, 17.5]);
});

test('pf8 context reuse across frames and integer images give the same peaks as fresh runs', () => {
  const ctx = createPf8Context(maps);
  const a = noiseFrame(maps, 1);
  block(a, 20, 30, 2, 800);
  const b = noiseFrame(maps, 2);
  block(b, 70, 12, 3, 500);
  b[5 * smallFs + 5] = Number.NaN;
  const first = peakfinder8(a, ctx, params);
  peakfinder8(b, ctx, params);
  assert.deepEqual(peakfinder8(a, ctx, params), first);
  assert.deepEqual(peakfinder8(b, ctx, params), find(b));
  const ints = Int32Array.from(a, Math.round);
  assert.deepEqual(peakfinder8(ints, ctx, params), peakfinder8(Float32Array.from(ints), ctx, params));
});

test('pf8 finds generated Gaussian spots with high precision and recall', () => {
  const geometryMaps = pixelMapsFor(defaultGeometry());
  const ctx = createPf8Context(geometryMaps, geometryMask(geometryMaps));
  const random = seededRandom(11);
  let matched = 0;
  let found = 0;
  let truth = 0;
  for (let frame = 0; frame < 2; frame++) {
    const spots = generateSpotFrame(geometryMaps, random, {
      minSpots: 40,
      maxSpots: 60,
      spotSigmaPx: 1,
      minSpotPhotons: 400,
      maxSpotPhotons: 3000,
      backgroundPhotons: 6,
      backgroundScalePx: 300,
      gain: 1,
    });
    const peaks = peakfinder8(spots.image, ctx, { ...defaultPf8Params, adcThreshold: 30, minSnr: 5 });
    const match = matchPeaks(peaks, spots.truth, 2);
    matched += match.matched;
    found += match.found;
    truth += match.reference;
  }
  const precision = matched / found;
  const recall = matched / truth;
  assert.ok(precision >= 0.95, `precision ${precision}`);
  assert.ok(recall >= 0.9, `recall ${recall}`);
});

test('pf8 parameters: CrystFEL names, defaults, errors that name the field', () => {
  const partial = parsePf8ParamsPartial(
    { threshold: 300, 'min-snr': '4.5', 'max-res': null },
    'p.json',
    'params',
  );
  assert.deepEqual(partial, { adcThreshold: 300, minSnr: 4.5, maxResPx: Number.POSITIVE_INFINITY });
  const resolved = resolvePf8Params(partial, { minPixCount: 3 });
  assert.equal(resolved.adcThreshold, 300);
  assert.equal(resolved.minPixCount, 3);
  assert.equal(resolved.localBgRadius, defaultPf8Params.localBgRadius);
  assert.throws(
    () => parsePf8ParamsPartial({ 'min-pix-count': 1.5 }, 'p.json', 'params'),
    (error: unknown) =>
      error instanceof UserError &&
      error.toLine().startsWith('p.json: field params.min-pix-count: must be an integer'),
  );
  assert.throws(
    () => parsePf8ParamsPartial({ threshold: 1, adcThreshold: 2 }, 'p.json'),
    (error: unknown) => error instanceof UserError && /given twice/.test(error.message),
  );
  assert.throws(
    () => parsePf8ParamsPartial({ snr: 4 }, 'p.json'),
    (error: unknown) => error instanceof UserError && error.where === 'field snr',
  );
  assert.throws(() => resolvePf8Params({ minPixCount: 10, maxPixCount: 5 }), UserError);
  assert.throws(
    () => parsePf8ParamsPartial({ max_res: -3 }, 'p.json'),
    (error: unknown) => error instanceof UserError && error.where === 'field max_res',
  );
});

test('pf8 on the real CSPAD frame: peaks DIALS also finds', needsShared, async () => {
  const geometryMaps = computePixelMaps(readGeometry(sharedPath('data/real/cspad-thermolysin.geom')));
  const reader = await openFrameReader(sharedPath('data/real/cspad-thermolysin.cxi'), {
    expectedSlabShape: [geometryMaps.ssSize, geometryMaps.fsSize],
  });
  const image = reader.readFrame(0);
  reader.close();
  const dials = JSON.parse(
    readFileSync(sharedPath('data/real/cspad-thermolysin.dials-spots.json'), 'utf8'),
  ) as number[][];
  const reference = { count: dials.length, fs: dials.map((d) => d[0]), ss: dials.map((d) => d[1]) };
  const ctx = createPf8Context(geometryMaps, geometryMask(geometryMaps));
  // indexamajig's defaults (threshold 800): only the strong spots, nearly all of them DIALS spots.
  const strict = peakfinder8(image, ctx, defaultPf8Params);
  const strictMatch = matchPeaks(strict, reference, 2);
  assert.ok(strict.count >= 15, `found ${strict.count}`);
  assert.ok(strictMatch.precision >= 0.9, `precision ${strictMatch.precision}`);
  // A lower threshold finds most of DIALS' spots.
  const loose = peakfinder8(image, ctx, { ...defaultPf8Params, adcThreshold: 200, minSnr: 4 });
  const looseMatch = matchPeaks(loose, reference, 2);
  assert.ok(looseMatch.recall >= 0.75, `recall ${looseMatch.recall}`);
  assert.ok(looseMatch.precision >= 0.9, `precision ${looseMatch.precision}`);
  assert.ok(looseMatch.meanDistancePx < 0.5, `mean distance ${looseMatch.meanDistancePx}`);
});

/** Same count, and every column equal to 1e-4 relative. */
function assertSamePeaks(got: PeakList, want: PeakList, label: string) {
  assert.equal(got.count, want.count, `${label}: count`);
  for (const column of peakColumns) {
    for (let k = 0; k < want.count; k++) {
      const a = got[column][k];
      const b = want[column][k];
      assert.ok(
        Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(a), Math.abs(b)),
        `${label}: ${column}[${k}] ${a} vs ${b}`,
      );
    }
  }
}

test('pf8 gives the same statistics and peaks from a fresh context and from one reused across frames', () => {
  // A fresh context clips every bin from its own pixels; a reused one sums each bin's core band (from
  // the last frame) and clips only the pixels outside it. Frames and parameters change in between,
  // including a frame far off the last one (every band misses) and NaN / Inf pixels.
  const geometryMaps = pixelMapsFor(defaultGeometry());
  const mask = geometryMask(geometryMaps);
  const random = seededRandom(5);
  const frames: Float32Array[] = [];
  for (let k = 0; k < 2; k++) {
    frames.push(
      generateSpotFrame(geometryMaps, random, {
        minSpots: 40,
        maxSpots: 80,
        spotSigmaPx: 1,
        minSpotPhotons: 100,
        maxSpotPhotons: 3000,
        backgroundPhotons: 4 + 4 * k,
        backgroundScalePx: 300,
        gain: 10,
      }).image,
    );
  }
  frames.push(Float32Array.from(frames[0], (v) => 3 * v + 500));
  const odd = frames[1].slice();
  for (let k = 0; k < 300; k++) odd[(k * 7919) % odd.length] = [Number.NaN, Infinity, -Infinity][k % 3];
  frames.push(odd);
  const paramSets: Pf8Params[] = [
    { ...defaultPf8Params, adcThreshold: 200, minSnr: 4 },
    { ...defaultPf8Params, adcThreshold: 0, minSnr: 6 },
    { ...defaultPf8Params, adcThreshold: 30, minSnr: 3, minPixCount: 1, minResPx: 100, maxResPx: 700 },
  ];
  const reused = createPf8Context(geometryMaps, mask);
  let peaks = 0;
  for (const [p, params] of paramSets.entries()) {
    for (const [f, frame] of frames.entries()) {
      const fresh = createPf8Context(geometryMaps, mask);
      const want = peakfinder8(frame, fresh, params);
      const got = peakfinder8(frame, reused, params);
      assertSamePeaks(got, want, `params ${p} frame ${f}`);
      for (let b = 0; b <= fresh.nBins; b++) {
        const a = reused.binThreshold[b];
        const c = fresh.binThreshold[b];
        assert.ok(a === c || Math.abs(a - c) <= 1e-9 * Math.abs(c), `threshold of bin ${b}: ${a} vs ${c}`);
      }
      peaks += want.count;
    }
  }
  assert.ok(peaks > 100, `${peaks} peaks`);
});

test('pf8 on the real CSPAD frame: the peaks the first implementation found', needsShared, async () => {
  const geometryMaps = computePixelMaps(readGeometry(sharedPath('data/real/cspad-thermolysin.geom')));
  const reader = await openFrameReader(sharedPath('data/real/cspad-thermolysin.cxi'), {
    expectedSlabShape: [geometryMaps.ssSize, geometryMaps.fsSize],
  });
  const image = new Float32Array(reader.readFrame(0));
  reader.close();
  // Measured with the gather-by-bin implementation (commit 01b9346) before the streaming statistics:
  // count, then [fs, ss, total, snr, pixels, max] of the first three peaks in scan order.
  const recorded: [Pf8Params, number, number[][]][] = [
    [
      { ...defaultPf8Params },
      32,
      [
        [111, 159.5334, 2960.0093, 72.98711, 2, 1580.5046],
        [27.253916, 416.7893, 7680.1943, 151.15273, 3, 4121.398],
        [180.64415, 500, 6456.3945, 112.934776, 2, 4164.697],
      ],
    ],
    [
      { ...defaultPf8Params, adcThreshold: 200, minSnr: 4 },
      151,
      [
        [11, 41.52545, 1223.8257, 86.33103, 2, 644.4128],
        [83, 57.651737, 1046.3303, 99.87608, 2, 689.1652],
        [133, 60.586, 1102.8533, 65.96494, 2, 650.9266],
      ],
    ],
  ];
  const ctx = createPf8Context(geometryMaps, geometryMask(geometryMaps));
  // Twice: the first pass clips every bin from its pixels, the second uses the bands of the first.
  for (let pass = 0; pass < 2; pass++) {
    for (const [params, count, first] of recorded) {
      const peaks = peakfinder8(image, ctx, params);
      assertSamePeaks(
        peaks,
        peakListFrom({
          fs: [...first.map((p) => p[0]), ...Array.from(peaks.fs.subarray(3))],
          ss: [...first.map((p) => p[1]), ...Array.from(peaks.ss.subarray(3))],
          totalIntensity: [...first.map((p) => p[2]), ...Array.from(peaks.totalIntensity.subarray(3))],
          snr: [...first.map((p) => p[3]), ...Array.from(peaks.snr.subarray(3))],
          nPixels: [...first.map((p) => p[4]), ...Array.from(peaks.nPixels.subarray(3))],
          maxValue: [...first.map((p) => p[5]), ...Array.from(peaks.maxValue.subarray(3))],
        }),
        `threshold ${params.adcThreshold} pass ${pass}`,
      );
      assert.equal(peaks.count, count, `threshold ${params.adcThreshold}: count`);
    }
  }
});
