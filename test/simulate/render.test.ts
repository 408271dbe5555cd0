import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type PixelMaps, pixelMapsFor, resolutionFor } from '../../src/detector/pixel-maps.js';
import { parseGeometry } from '../../src/io/geom.js';
import {
  backgroundMapForEnergy,
  backgroundPhotonMap,
  beamstopShadowMap,
  createBackgroundModel,
} from '../../src/simulate/background.js';
import { createDetectorState, exposeFrame, panelAduPerPhoton } from '../../src/simulate/detector.js';
import { samplePoisson } from '../../src/simulate/poisson.js';
import { createSpotPixels, drawSpot } from '../../src/simulate/profile.js';
import {
  createRenderContext,
  defaultImagingOptions,
  type ImagingOptions,
  renderFrame,
} from '../../src/simulate/render.js';
import type { FrameConditions, SimSpot } from '../../src/simulate/types.js';
import { seededRandom } from '../../src/util/random.js';

/** Two 64 x 64 panels side by side in x (2-pixel gap), stacked along ss in the slab; one bad region. */
function testGeometryText(extra = ''): string {
  const panel = (name: string, ss0: number, cornerX: number) =>
    [
      `${name}/min_fs = 0`,
      `${name}/max_fs = 63`,
      `${name}/min_ss = ${ss0}`,
      `${name}/max_ss = ${ss0 + 63}`,
      `${name}/fs = +1x`,
      `${name}/ss = +1y`,
      `${name}/corner_x = ${cornerX}`,
      `${name}/corner_y = 100`,
    ].join('\n');
  return [
    'photon_energy = 9000',
    'clen = 0.1',
    'res = 10000',
    'adu_per_photon = 10',
    'max_adu = 4000',
    extra,
    panel('p0', 0, -66),
    panel('p1', 64, 2),
    'bad0/min_fs = 60',
    'bad0/max_fs = 63',
    'bad0/min_ss = 120',
    'bad0/max_ss = 127',
  ].join('\n');
}

const quiet: ImagingOptions = {
  ...defaultImagingOptions,
  background: 'none',
  darkNoiseAdu: 0,
  pedestalResidualAdu: 0,
  commonModeAdu: 0,
  panelGainSpreadFraction: 0,
  pixelGainSpreadFraction: 0,
  hotPixelFraction: 0,
  deadPixelFraction: 0,
  beamstopRadiusM: 0,
  beamstopArmWidthM: 0,
  roundAdu: false,
  photonAduSpreadFraction: 0,
};

const conditions: FrameConditions = { photonEnergyEv: 9000, clenM: 0.1, frameIndex: 0, hit: true };

function spotAt(
  panel: number,
  fs: number,
  ss: number,
  photons: number,
  extra: Partial<SimSpot> = {},
): SimSpot {
  return {
    h: 1,
    k: 2,
    l: 3,
    crystal: 0,
    panel,
    fs,
    ss,
    dA: 3,
    partiality: 1,
    photons,
    sigmaRadialPx: 1,
    sigmaTangentialPx: 1,
    radialAngleRad: 0,
    ...extra,
  };
}

const maps: PixelMaps = pixelMapsFor(parseGeometry(testGeometryText(), 'test.geom'));

test('a spot in the open keeps all its photons, whatever its shape and sub-pixel position', () => {
  const pixels = createSpotPixels();
  const random = seededRandom(1);
  for (let trial = 0; trial < 20; trial++) {
    const spot = spotAt(0, 30 + random(), 30 + random(), 1000 + 1000 * random(), {
      sigmaRadialPx: 0.4 + 2 * random(),
      sigmaTangentialPx: 0.4 + random(),
      radialAngleRad: 6 * random(),
    });
    for (const tail of [0, 0.1]) {
      drawSpot(maps, spot, { ...quiet, lorentzianTailFraction: tail }, pixels);
      let sum = 0;
      for (let j = 0; j < pixels.count; j++) sum += pixels.photons[j];
      assert.ok(Math.abs(sum - spot.photons) < 1e-6 * spot.photons, `sum ${sum} vs ${spot.photons}`);
    }
  }
  // Through the renderer: the truth's integrated ADU is photons x gain, the mask is the spot's.
  const ctx = createRenderContext(maps, quiet, 7);
  const frame = renderFrame(ctx, [spotAt(0, 20.3, 40.6, 2000)], conditions, seededRandom(2));
  assert.equal(frame.truth.count, 1);
  assert.ok(Math.abs(frame.truth.totalIntensity[0] - 20000) < 1);
  let image = 0;
  for (const v of frame.imageAdu) image += v;
  // Poisson (below max_adu): the recorded sum is within a few sigma of the expectation.
  assert.ok(Math.abs(image / 10 - 2000) < 5 * Math.sqrt(2000), `image sum ${image}`);
});

test('a spot at a panel edge loses what falls off the panel, and never lands on another panel', () => {
  const pixels = createSpotPixels();
  // Centre on the boundary between the last column (63) and beyond: half the flux is lost.
  const edge = spotAt(0, 63.5, 30, 1000, { sigmaRadialPx: 1.5, sigmaTangentialPx: 1.5 });
  drawSpot(maps, edge, quiet, pixels);
  let sum = 0;
  for (let j = 0; j < pixels.count; j++) {
    sum += pixels.photons[j];
    assert.equal(maps.panelIndex[pixels.indices[j]], 0);
  }
  assert.ok(Math.abs(sum - 500) < 1, `edge spot keeps ${sum}`);
  // Last slab row of p0 (ss 63): the slab rows below belong to p1 and get nothing.
  const bottom = spotAt(0, 30, 63, 1000, { sigmaRadialPx: 1.5, sigmaTangentialPx: 1.5 });
  drawSpot(maps, bottom, quiet, pixels);
  sum = 0;
  for (let j = 0; j < pixels.count; j++) {
    sum += pixels.photons[j];
    assert.ok(Math.floor(pixels.indices[j] / maps.fsSize) <= 63);
  }
  assert.ok(sum > 500 && sum < 750, `bottom spot keeps ${sum}`);
  const ctx = createRenderContext(maps, quiet, 7);
  const frame = renderFrame(ctx, [bottom], conditions, seededRandom(3));
  for (let i = 64 * maps.fsSize; i < frame.imageAdu.length; i++) assert.equal(frame.imageAdu[i], 0);
});

test('the peak mask is the half-maximum footprint of detectable spots', () => {
  const ctx = createRenderContext(maps, quiet, 7);
  // Round spot centred on a pixel: centre and its 4 neighbours are above half maximum, diagonals not.
  const round = spotAt(0, 20, 20, 2000);
  const frame = renderFrame(ctx, [round], conditions, seededRandom(4));
  const labelled: string[] = [];
  for (let i = 0; i < frame.peakMask.length; i++)
    if (frame.peakMask[i]) labelled.push(`${i % maps.fsSize},${Math.floor(i / maps.fsSize)}`);
  assert.deepEqual(labelled.sort(), ['19,20', '20,19', '20,20', '20,21', '21,20'].sort());
  assert.equal(frame.truth.nPixels[0], 5);
  // An elongated, rotated spot: the mask equals the pixels at >= half its maximum expected value.
  const long = spotAt(1, 30.2, 90.7, 3000, {
    sigmaRadialPx: 2.5,
    sigmaTangentialPx: 0.9,
    radialAngleRad: 0.6,
  });
  const pixels = createSpotPixels();
  drawSpot(maps, long, quiet, pixels);
  let max = 0;
  for (let j = 0; j < pixels.count; j++) max = Math.max(max, pixels.photons[j]);
  const expected = new Set<number>();
  for (let j = 0; j < pixels.count; j++) if (pixels.photons[j] >= max / 2) expected.add(pixels.indices[j]);
  const frame2 = renderFrame(ctx, [long], conditions, seededRandom(5));
  const got = new Set<number>();
  for (let i = 0; i < frame2.peakMask.length; i++) if (frame2.peakMask[i]) got.add(i);
  assert.deepEqual(got, expected);
  assert.ok(expected.size > 5);
});

test('only detectable spots get truth rows and mask pixels; rows map back to their spots', () => {
  const noisy: ImagingOptions = { ...quiet, background: 'heavy', darkNoiseAdu: 20 };
  const ctx = createRenderContext(maps, noisy, 7);
  const spots = [spotAt(0, 20, 20, 3), spotAt(0, 40, 40, 5000), spotAt(1, 30, 100, 1)];
  const frame = renderFrame(ctx, spots, conditions, seededRandom(6));
  assert.equal(frame.truth.count, 1);
  assert.deepEqual([...frame.truthSpotIndex], [1]);
  assert.equal(frame.truth.fs[0], 40);
  assert.ok(frame.truth.snr[0] > noisy.truthMinSnr);
  assert.equal(frame.peakMask[20 * maps.fsSize + 20], 0);
  assert.equal(frame.peakMask[40 * maps.fsSize + 40], 1);
});

test('Poisson draws have the right mean and variance, from tiny to large means', () => {
  const random = seededRandom(11);
  for (const mean of [0.05, 0.7, 4, 29, 31, 400]) {
    const n = 40_000;
    let sum = 0;
    let sum2 = 0;
    for (let k = 0; k < n; k++) {
      const x = samplePoisson(mean, random);
      assert.ok(Number.isInteger(x) && x >= 0);
      sum += x;
      sum2 += x * x;
    }
    const m = sum / n;
    const v = sum2 / n - m * m;
    assert.ok(Math.abs(m - mean) < 5 * Math.sqrt(mean / n), `mean ${m} for ${mean}`);
    assert.ok(Math.abs(v / mean - 1) < 0.05 + 5 * Math.sqrt(2 / n), `variance ${v} for ${mean}`);
  }
});

test('the detector pass gives Poisson pixels times the gain, plus photon spread and dark noise', () => {
  const size = maps.ssSize * maps.fsSize;
  for (const mean of [0.3, 6, 80]) {
    const state = createDetectorState(maps, quiet, seededRandom(1));
    const background = new Float32Array(size).fill(mean);
    const out = new Float32Array(size);
    const exposure = {
      backgroundPhotons: background,
      backgroundScale: 1,
      spotPhotons: new Float32Array(size),
      aduPerPhoton: panelAduPerPhoton(maps, quiet, 9000),
      panelOffsetAdu: new Float64Array(2),
      seed: 99,
    };
    for (const [dark, spread] of [
      [0, 0],
      [7, 0],
      [0, 0.3],
    ]) {
      exposeFrame(
        maps,
        state,
        { ...quiet, darkNoiseAdu: dark, photonAduSpreadFraction: spread },
        exposure,
        out,
      );
      let n = 0;
      let sum = 0;
      let sum2 = 0;
      for (let i = 0; i < size; i++) {
        if (!state.measured[i]) continue;
        n++;
        sum += out[i];
        sum2 += out[i] * out[i];
      }
      const m = sum / n;
      const v = sum2 / n - m * m;
      // Compound Poisson: each photon's ADU has relative spread `spread`.
      const wantVar = 100 * mean * (1 + spread * spread) + dark * dark;
      assert.ok(Math.abs(m - 10 * mean) < 6 * Math.sqrt(wantVar / n), `mean ${m} at ${mean}, dark ${dark}`);
      assert.ok(Math.abs(v / wantVar - 1) < 0.08, `variance ${v} vs ${wantVar} at ${mean}, dark ${dark}`);
      if (dark === 0 && spread === 0 && mean < 1)
        assert.ok(
          out.every((x) => Number.isInteger(x / 10)),
          'whole photons',
        );
    }
  }
});

test('gain comes from adu_per_eV x photon energy, and values saturate at max_adu', () => {
  const text = testGeometryText().replace('adu_per_photon = 10', 'adu_per_eV = 0.002');
  const evMaps = pixelMapsFor(parseGeometry(text, 'ev.geom'));
  assert.deepEqual([...panelAduPerPhoton(evMaps, quiet, 9000)], [18, 18]);
  assert.deepEqual([...panelAduPerPhoton(evMaps, { ...quiet, gainScale: 0.5 }, 9000)], [9, 9]);
  const ctx = createRenderContext(evMaps, quiet, 1);
  const frame = renderFrame(
    ctx,
    [spotAt(0, 20, 20, 100_000), spotAt(0, 40, 40, 200)],
    conditions,
    seededRandom(2),
  );
  assert.equal(Math.max(...frame.imageAdu), 4000);
  assert.ok(Math.abs(frame.truth.totalIntensity[1] - 200 * 18) < 1e-3 * 3600);
  // The truth keeps the unsaturated expectation.
  assert.ok(frame.truth.maxValue[0] > 4000);
  // A photon energy change changes the gain.
  const ctx2 = createRenderContext(evMaps, quiet, 1);
  const frame2 = renderFrame(
    ctx2,
    [spotAt(0, 40, 40, 200)],
    { ...conditions, photonEnergyEv: 12000 },
    seededRandom(2),
  );
  assert.ok(Math.abs(frame2.truth.totalIntensity[0] - 200 * 24) < 1e-3 * 4800);
});

test('hot, dead and bad-region pixels read what a real detector gives', () => {
  const options: ImagingOptions = {
    ...quiet,
    background: 'heavy',
    hotPixelFraction: 0.002,
    deadPixelFraction: 0.002,
    hotPixelAdu: 3000,
  };
  const ctx = createRenderContext(maps, options, 21);
  const { hotPixels, deadPixels } = ctx.detector;
  assert.ok(hotPixels.length > 5 && deadPixels.length > 5);
  const spots = [...deadPixels, ...hotPixels].map((i) =>
    spotAt(maps.panelIndex[i], i % maps.fsSize, Math.floor(i / maps.fsSize), 500),
  );
  const a = renderFrame(ctx, spots, conditions, seededRandom(1));
  const b = renderFrame(ctx, [], conditions, seededRandom(2));
  for (const i of deadPixels) {
    assert.equal(a.imageAdu[i], 0);
    assert.equal(a.peakMask[i], 0);
  }
  for (const i of hotPixels) {
    assert.ok(a.imageAdu[i] >= 1500 && a.imageAdu[i] <= 4000);
    assert.equal(a.imageAdu[i], b.imageAdu[i], 'a hot pixel reads the same on every frame');
    assert.equal(a.peakMask[i], 0);
  }
  // The geometry's bad region (fs 60-63, ss 120-127) and every non-panel pixel read 0.
  for (let ss = 120; ss <= 127; ss++)
    for (let fs = 60; fs <= 63; fs++) assert.equal(b.imageAdu[ss * maps.fsSize + fs], 0);
  // The same run seed gives the same bad pixels.
  assert.deepEqual(createRenderContext(maps, options, 21).detector.hotPixels, hotPixels);
});

test('frames are deterministic for a seed and differ between seeds', () => {
  const options: ImagingOptions = { ...defaultImagingOptions, beamstopRadiusM: 0 };
  const spots = [spotAt(0, 20.5, 30.2, 800, { sigmaRadialPx: 1.4 }), spotAt(1, 10, 70, 400)];
  const a = renderFrame(createRenderContext(maps, options, 5), spots, conditions, seededRandom(9));
  const b = renderFrame(createRenderContext(maps, options, 5), spots, conditions, seededRandom(9));
  const c = renderFrame(createRenderContext(maps, options, 5), spots, conditions, seededRandom(10));
  const d = renderFrame(createRenderContext(maps, options, 6), spots, conditions, seededRandom(9));
  assert.deepEqual(a.imageAdu, b.imageAdu);
  assert.deepEqual(a.peakMask, b.peakMask);
  assert.deepEqual(a.truth, b.truth);
  assert.notDeepEqual(a.imageAdu, c.imageAdu);
  assert.notDeepEqual(a.imageAdu, d.imageAdu);
  assert.ok(
    a.imageAdu.every((x) => Number.isInteger(x)),
    'whole ADU by default',
  );
});

test('the water ring peaks at its resolution, and the heavy level is brighter than water', () => {
  // A long strip from the beam out to 2theta ~ 40 degrees at 9 keV, 100 mm.
  const strip = pixelMapsFor(
    parseGeometry(
      [
        'photon_energy = 9000',
        'clen = 0.1',
        'res = 10000',
        'adu_per_photon = 1',
        'p0/min_fs = 0',
        'p0/max_fs = 899',
        'p0/min_ss = 0',
        'p0/max_ss = 3',
        'p0/fs = +1x',
        'p0/ss = +1y',
        'p0/corner_x = 0',
        'p0/corner_y = -2',
      ].join('\n'),
      'strip.geom',
    ),
  );
  const ringOnly = {
    ...quiet,
    airScatterPhotonsPerPx: 0,
    parasiticPhotonsPerPx: 0,
    jetStreakPhotonsPerPx: 0,
    waterRingPhotonsPerPx: 5,
    waterRingDA: 3.25,
    waterRingSigmaPerA: 0.03,
    waterRingOuterSigmaPerA: 0.03,
  };
  for (const dA of [3.0, 3.25, 3.7]) {
    const photons = backgroundPhotonMap(
      strip,
      { ...ringOnly, waterRingDA: dA },
      { photonEnergyEv: 9000, clenM: 0.1 },
      1,
    );
    let best = 0;
    for (let i = 0; i < photons.length; i++) if (photons[i] > photons[best]) best = i;
    const invDPerM = resolutionFor(strip, { photonEnergyEv: 9000, clenM: 0.1 })[best];
    // Solid angle and polarisation pull the maximum slightly inwards; within 2 %.
    assert.ok(Math.abs(1e10 / invDPerM / dA - 1) < 0.02, `ring at ${1e10 / invDPerM} A, wanted ${dA}`);
  }
  // Rendered with noise: the ring band is brighter than the inner and outer parts.
  const ctx = createRenderContext(strip, { ...ringOnly, background: 'water' }, 3);
  const frame = renderFrame(ctx, [], conditions, seededRandom(4));
  const res = resolutionFor(strip, { photonEnergyEv: 9000, clenM: 0.1 });
  const band = (lo: number, hi: number) => {
    let sum = 0;
    let n = 0;
    for (let i = 0; i < res.length; i++) {
      const d = 1e10 / res[i];
      if (d >= lo && d < hi) {
        sum += frame.imageAdu[i];
        n++;
      }
    }
    return sum / n;
  };
  assert.ok(band(3.1, 3.4) > 3 * band(5, 8) && band(3.1, 3.4) > 3 * band(2.2, 2.6));
  const heavy = renderFrame(
    createRenderContext(strip, { ...ringOnly, background: 'heavy' }, 3),
    [],
    conditions,
    seededRandom(4),
  );
  let water = 0;
  let heavySum = 0;
  for (let i = 0; i < res.length; i++) {
    water += frame.imageAdu[i];
    heavySum += heavy.imageAdu[i];
  }
  assert.ok(heavySum > 2 * water);
});

test('background maps from the per-energy table equal the exact formula, shadow included', () => {
  const options = { ...defaultImagingOptions, beamstopRadiusM: 0.003 };
  const shadow = beamstopShadowMap(maps, options, 0.4);
  for (const clenM of [0.05, 0.12]) {
    const model = createBackgroundModel(maps, options, clenM, 0.7, shadow);
    for (const photonEnergyEv of [6000, 9500, 9547.6, 14000]) {
      const exact = backgroundPhotonMap(maps, options, { photonEnergyEv, clenM }, 0.7);
      const fromTable = backgroundMapForEnergy(model, options, photonEnergyEv);
      let worst = 0;
      let peak = 0;
      for (let i = 0; i < exact.length; i++) {
        worst = Math.max(worst, Math.abs(fromTable[i] - exact[i] * shadow[i]));
        peak = Math.max(peak, exact[i]);
      }
      assert.ok(peak > 0.1, 'the map has photons');
      assert.ok(worst < 1e-5 * peak, `worst difference ${worst} at ${photonEnergyEv} eV, ${clenM} m`);
    }
  }
});

test('the beamstop shadow removes background and spots at the beam centre', () => {
  const centred = pixelMapsFor(
    parseGeometry(
      [
        'photon_energy = 9000',
        'clen = 0.1',
        'res = 10000',
        'adu_per_photon = 1',
        'p0/min_fs = 0',
        'p0/max_fs = 99',
        'p0/min_ss = 0',
        'p0/max_ss = 99',
        'p0/fs = +1x',
        'p0/ss = +1y',
        'p0/corner_x = -50',
        'p0/corner_y = -50',
      ].join('\n'),
      'centred.geom',
    ),
  );
  const options: ImagingOptions = {
    ...quiet,
    background: 'heavy',
    beamstopRadiusM: 0.001,
    beamstopEdgeM: 0.0002,
  };
  const ctx = createRenderContext(centred, options, 3);
  const frame = renderFrame(ctx, [spotAt(0, 49.5, 49.5, 1e5)], conditions, seededRandom(1));
  assert.equal(frame.truth.count, 0);
  for (let ss = 45; ss < 55; ss++)
    for (let fs = 45; fs < 55; fs++) assert.equal(frame.imageAdu[ss * 100 + fs], 0);
  assert.ok(frame.imageAdu.some((x) => x > 0));
});

test('pixel values of a spot match a brute-force integral of its profile over each pixel', () => {
  const pixels = createSpotPixels();
  const random = seededRandom(17);
  for (let trial = 0; trial < 6; trial++) {
    const spot = spotAt(0, 30 + random(), 30 + random(), 1000, {
      sigmaRadialPx: 0.3 + 2 * random(),
      sigmaTangentialPx: 0.3 + random(),
      radialAngleRad: 6 * random(),
    });
    drawSpot(maps, spot, quiet, pixels);
    // 40 x 40 samples per pixel of the normalised Gaussian, rotated.
    const cos = Math.cos(spot.radialAngleRad);
    const sin = Math.sin(spot.radialAngleRad);
    const norm = spot.photons / (2 * Math.PI * spot.sigmaRadialPx * spot.sigmaTangentialPx);
    let worst = 0;
    for (let j = 0; j < pixels.count; j++) {
      const i = pixels.indices[j];
      const fs = i % maps.fsSize;
      const ss = Math.floor(i / maps.fsSize);
      let value = 0;
      for (let a = 0; a < 40; a++)
        for (let c = 0; c < 40; c++) {
          const x = fs - 0.5 + (c + 0.5) / 40 - spot.fs;
          const y = ss - 0.5 + (a + 0.5) / 40 - spot.ss;
          const u = x * cos + y * sin;
          const v = -x * sin + y * cos;
          value +=
            norm * Math.exp(-0.5 * ((u / spot.sigmaRadialPx) ** 2 + (v / spot.sigmaTangentialPx) ** 2));
        }
      worst = Math.max(worst, Math.abs(value / 1600 - pixels.photons[j]));
    }
    // Within 0.5 % of the spot's photons in any pixel (supersampling at up to 5 x 5).
    assert.ok(worst < 0.005 * spot.photons, `trial ${trial}: worst pixel error ${worst}`);
  }
});

test('overlapping spots add their photons once per pixel, whatever the drawing order', () => {
  // Two spots on the same pixels: every pixel is listed twice for the sparse spot pass.
  const ctx = createRenderContext(maps, quiet, 7);
  const twice = renderFrame(
    ctx,
    [spotAt(0, 30, 30, 800), spotAt(0, 30.4, 30.2, 800)],
    conditions,
    seededRandom(8),
  );
  let image = 0;
  for (const v of twice.imageAdu) image += v;
  // Below max_adu (the peak pixel expects ~250 photons = 2500 ADU).
  assert.ok(Math.max(...twice.imageAdu) < 4000);
  assert.ok(Math.abs(image / 10 - 1600) < 5 * Math.sqrt(1600), `image sum ${image}`);
  // The scratch is cleared: the next frame without spots has no photons.
  const empty = renderFrame(ctx, [], conditions, seededRandom(9));
  assert.ok(empty.imageAdu.every((x) => x === 0));
});

test('a frame does not depend on the energies of the frames rendered before it', () => {
  const options: ImagingOptions = { ...defaultImagingOptions, beamstopRadiusM: 0 };
  const at = (photonEnergyEv: number) => ({ ...conditions, photonEnergyEv });
  const fresh = (photonEnergyEv: number) =>
    renderFrame(createRenderContext(maps, options, 5), [], at(photonEnergyEv), seededRandom(3)).imageAdu;
  // 9000 and 9300 eV use different background maps; the context keeps two and recomputes a third.
  const ctx = createRenderContext(maps, options, 5);
  for (const energy of [9000, 9300, 9000, 9600, 9300, 9300, 9000]) {
    const image = renderFrame(ctx, [], at(energy), seededRandom(3)).imageAdu;
    assert.deepEqual(image, fresh(energy), `frame at ${energy} eV`);
  }
  assert.notDeepEqual(fresh(9000), fresh(9600));
});
