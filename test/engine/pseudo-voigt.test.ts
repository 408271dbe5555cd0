import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  evaluatePseudoVoigt,
  type FitOptions,
  fitPseudoVoigt,
  labelPixels,
  type PlanarBackground,
  type PseudoVoigtFit,
  type PseudoVoigtProfile,
  pseudoVoigtShape,
  renderPseudoVoigt,
} from '../../src/engine/pseudo-voigt.js';

const W = 32;
const H = 24;

/** Mulberry32: uniform [0, 1) from a seed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An exact Poisson draw: Knuth's method on chunks of at most 30 (a sum of Poissons is Poisson). */
function poisson(mu: number, rand: () => number): number {
  let k = 0;
  while (mu > 0) {
    const part = Math.min(mu, 30);
    mu -= part;
    const limit = Math.exp(-part);
    let prod = rand();
    while (prod > limit) {
      k++;
      prod *= rand();
    }
  }
  return k;
}

/** The model written out independently of the module: 2^-r^2 is exp(-ln2 r^2). */
function direct(p: PseudoVoigtProfile, fs: number, ss: number): number {
  const r2 = ((fs - p.fsPx) / p.hwhmFsPx) ** 2 + ((ss - p.ssPx) / p.hwhmSsPx) ** 2;
  return p.amplitude * (p.eta / (1 + r2) + (1 - p.eta) * 2 ** -r2);
}

function plane(b: PlanarBackground, fs: number, ss: number): number {
  return b.b0 + b.bFs * (fs - b.fsRef) + b.bSs * (ss - b.ssRef);
}

function synth(p: PseudoVoigtProfile, b: PlanarBackground, width = W, height = H): Float32Array {
  const image = new Float32Array(width * height);
  for (let ss = 0; ss < height; ss++) {
    for (let fs = 0; fs < width; fs++) image[ss * width + fs] = direct(p, fs, ss) + plane(b, fs, ss);
  }
  return image;
}

function noisy(clean: Float32Array, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return clean.map((mu) => poisson(mu, rand));
}

const flatBg = (b0: number): PlanarBackground => ({ b0, bFs: 0, bSs: 0, fsRef: 0, ssRef: 0 });
const tilted: PlanarBackground = { b0: 30, bFs: 0.8, bSs: -0.5, fsRef: 16, ssRef: 12 };

function assertNear(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, expected ${expected} within ${tol}`);
}

function assertFinite(fit: PseudoVoigtFit): void {
  for (const key of [
    'amplitude',
    'fsPx',
    'ssPx',
    'hwhmFsPx',
    'hwhmSsPx',
    'eta',
    'reducedChiSquare',
  ] as const) {
    assert.ok(Number.isFinite(fit[key]), `${key} = ${fit[key]}`);
  }
  for (const key of ['b0', 'bFs', 'bSs'] as const) assert.ok(Number.isFinite(fit.background[key]));
}

/** Labels exactly where the true profile is at or above half its maximum, on the panel only. */
function expectedLabels(p: PseudoVoigtProfile, width = W, height = H): Uint8Array {
  const out = new Uint8Array(width * height);
  let closest = Number.POSITIVE_INFINITY;
  for (let ss = 0; ss < height; ss++) {
    for (let fs = 0; fs < width; fs++) {
      const ratio = direct(p, fs, ss) / p.amplitude;
      closest = Math.min(closest, Math.abs(ratio - 0.5));
      if (ratio >= 0.5) out[ss * width + fs] = 1;
    }
  }
  // The cases keep every pixel clear of the half-maximum contour, so a good fit cannot tip one over.
  assert.ok(closest > 1e-4, `a pixel sits on the half-maximum contour (${closest})`);
  return out;
}

const sum = (a: Uint8Array): number => a.reduce((s, x) => s + x, 0);

describe('pseudo-Voigt model', () => {
  test('half maximum is exactly r = 1 for every eta, and the shape falls monotonically', () => {
    for (let k = 0; k <= 10; k++) {
      const eta = k / 10;
      assert.equal(pseudoVoigtShape(0, eta), 1);
      assertNear(pseudoVoigtShape(1, eta), 0.5, 1e-15, `eta ${eta}`);
      let previous = 1;
      for (let step = 1; step < 100; step++) {
        const r = step / 20;
        const value = pseudoVoigtShape(r * r, eta);
        assert.ok(value < previous, `not decreasing at r = ${r}, eta = ${eta}`);
        assert.equal(value >= 0.5, r <= 1, `r = ${r}, eta = ${eta}`);
        previous = value;
      }
    }
  });

  test('evaluatePseudoVoigt and renderPseudoVoigt match the formula written out', () => {
    const p = { amplitude: 70, fsPx: 10.3, ssPx: 7.8, hwhmFsPx: 1.7, hwhmSsPx: 0.9, eta: 0.3 };
    const out = new Float64Array(W * H);
    renderPseudoVoigt(p, W, H, out, tilted);
    for (let ss = 0; ss < H; ss++) {
      for (let fs = 0; fs < W; fs++) {
        const want = direct(p, fs, ss) + plane(tilted, fs, ss);
        assertNear(out[ss * W + fs], want, 1e-9, `render (${fs}, ${ss})`);
        assertNear(evaluatePseudoVoigt(p, fs, ss, tilted), want, 1e-9, `evaluate (${fs}, ${ss})`);
        assertNear(evaluatePseudoVoigt(p, fs, ss), direct(p, fs, ss), 1e-9, `no background (${fs}, ${ss})`);
      }
    }
    const boxed = new Float64Array(W * H);
    renderPseudoVoigt(p, W, H, boxed, undefined, 2);
    assert.equal(boxed[8 * W + 10], direct(p, 10, 8));
    assert.equal(boxed[8 * W + 13], 0);
  });
});

describe('fitPseudoVoigt on noiseless peaks', () => {
  const cases: {
    name: string;
    p: PseudoVoigtProfile;
    b: PlanarBackground;
    start: [number, number];
    options?: FitOptions;
  }[] = [
    {
      name: 'Gaussian, round, sub-pixel centre',
      p: { amplitude: 400, fsPx: 15.3, ssPx: 12.8, hwhmFsPx: 1.2, hwhmSsPx: 1.2, eta: 0 },
      b: flatBg(10),
      start: [15, 13],
    },
    {
      name: 'Lorentzian, anisotropic, tilted background',
      p: { amplitude: 900, fsPx: 16.45, ssPx: 11.55, hwhmFsPx: 1.6, hwhmSsPx: 0.8, eta: 1 },
      b: tilted,
      start: [16.9, 11.2],
    },
    {
      name: 'mixture, narrow along fs',
      p: { amplitude: 250, fsPx: 15.1, ssPx: 12.2, hwhmFsPx: 0.7, hwhmSsPx: 1.4, eta: 0.35 },
      b: tilted,
      start: [15, 12],
    },
    {
      name: 'mostly Lorentzian, wide, 13 px window',
      p: { amplitude: 3000, fsPx: 14.72, ssPx: 10.37, hwhmFsPx: 2.1, hwhmSsPx: 1.15, eta: 0.8 },
      b: { ...tilted, b0: 120 },
      start: [14.2, 10.9],
      options: { windowPx: 13 },
    },
  ];

  for (const { name, p, b, start, options } of cases) {
    test(name, () => {
      const fit = fitPseudoVoigt(synth(p, b), W, H, start[0], start[1], options);
      assert.equal(fit.bad, false, fit.badReason);
      assert.equal(fit.converged, true);
      assertNear(fit.fsPx, p.fsPx, 0.05, 'fs');
      assertNear(fit.ssPx, p.ssPx, 0.05, 'ss');
      // Exact data: everything comes back to float32 rounding, far inside the 0.05 px asked for.
      assertNear(fit.fsPx, p.fsPx, 1e-4, 'fs (tight)');
      assertNear(fit.ssPx, p.ssPx, 1e-4, 'ss (tight)');
      assertNear(fit.hwhmFsPx, p.hwhmFsPx, 1e-4 * p.hwhmFsPx, 'hwhm fs');
      assertNear(fit.hwhmSsPx, p.hwhmSsPx, 1e-4 * p.hwhmSsPx, 'hwhm ss');
      assertNear(fit.eta, p.eta, 1e-4, 'eta');
      assertNear(fit.amplitude, p.amplitude, 1e-4 * p.amplitude, 'amplitude');
      const c = [fit.background.fsRef, fit.background.ssRef];
      assertNear(fit.background.b0, plane(b, c[0], c[1]), 1e-4 * p.amplitude, 'b0');
      assertNear(fit.background.bFs, b.bFs, 1e-4, 'bFs');
      assertNear(fit.background.bSs, b.bSs, 1e-4, 'bSs');
      assert.ok(fit.reducedChiSquare < 1e-8, `reduced chi-square ${fit.reducedChiSquare}`);
      assert.equal(fit.pixels, (options?.windowPx ?? 9) ** 2);
      assert.ok(fit.iterations > 0 && fit.iterations < 50);
    });
  }
});

describe('fitPseudoVoigt on Poisson noise', () => {
  test('bright peaks: centre within 0.3 px, widths and eta close', () => {
    const shapes: PseudoVoigtProfile[] = [
      { amplitude: 2000, fsPx: 15.3, ssPx: 12.6, hwhmFsPx: 1.3, hwhmSsPx: 0.9, eta: 0 },
      { amplitude: 2000, fsPx: 16.7, ssPx: 11.4, hwhmFsPx: 1.0, hwhmSsPx: 1.5, eta: 0.5 },
      { amplitude: 2000, fsPx: 15.55, ssPx: 12.05, hwhmFsPx: 1.2, hwhmSsPx: 1.2, eta: 1 },
    ];
    shapes.forEach((p, k) => {
      const clean = synth(p, tilted);
      for (let seed = 1; seed <= 5; seed++) {
        const fit = fitPseudoVoigt(
          noisy(clean, 100 * k + seed),
          W,
          H,
          Math.round(p.fsPx),
          Math.round(p.ssPx),
        );
        const what = `shape ${k}, seed ${seed}`;
        assert.equal(fit.bad, false, `${what}: ${fit.badReason}`);
        assertNear(fit.fsPx, p.fsPx, 0.3, `${what} fs`);
        assertNear(fit.ssPx, p.ssPx, 0.3, `${what} ss`);
        assertNear(fit.hwhmFsPx, p.hwhmFsPx, 0.15 * p.hwhmFsPx, `${what} hwhm fs`);
        assertNear(fit.hwhmSsPx, p.hwhmSsPx, 0.15 * p.hwhmSsPx, `${what} hwhm ss`);
        assertNear(fit.eta, p.eta, 0.2, `${what} eta`);
        assertNear(fit.amplitude, p.amplitude, 0.1 * p.amplitude, `${what} amplitude`);
        assert.ok(fit.amplitudeError > 0 && fit.amplitudeError < 0.1 * p.amplitude);
      }
    });
  });

  test('reduced chi-square is ~1 with the right weights and tracks wrong ones', () => {
    const p = { amplitude: 600, fsPx: 15.4, ssPx: 11.7, hwhmFsPx: 1.1, hwhmSsPx: 1.4, eta: 0.4 };
    const clean = synth(p, tilted);
    const mean = (options: FitOptions): number => {
      let total = 0;
      const trials = 60;
      for (let seed = 0; seed < trials; seed++) {
        const fit = fitPseudoVoigt(noisy(clean, 7000 + seed), W, H, 15, 12, options);
        assert.equal(fit.bad, false, fit.badReason);
        total += fit.reducedChiSquare;
      }
      return total / trials;
    };
    const poissonMean = mean({});
    assert.ok(poissonMean > 0.85 && poissonMean < 1.15, `poisson weighting: ${poissonMean}`);
    // Telling the fitter there are 4 image units per photon cuts every variance estimate by ~4.
    const wrong = mean({ gain: 4, noiseFloor: 1 });
    assert.ok(wrong > 0.2 && wrong < 0.3, `gain 4: ${wrong}`);
    // The border's scatter as the background variance: a compact Gaussian in a 13 px window.
    const compact = { ...p, eta: 0, hwhmFsPx: 1, hwhmSsPx: 1 };
    const compactClean = synth(compact, tilted);
    let total = 0;
    for (let seed = 0; seed < 60; seed++) {
      const fit = fitPseudoVoigt(noisy(compactClean, 9000 + seed), W, H, 15, 12, {
        weighting: 'border',
        windowPx: 13,
      });
      assert.equal(fit.bad, false, fit.badReason);
      total += fit.reducedChiSquare;
    }
    assert.ok(total / 60 > 0.8 && total / 60 < 1.25, `border weighting: ${total / 60}`);
  });

  test('a dim but clear peak is found, flat noise never is', () => {
    const p = { amplitude: 150, fsPx: 15.2, ssPx: 12.3, hwhmFsPx: 1.2, hwhmSsPx: 1.2, eta: 0.2 };
    const clean = synth(p, flatBg(20));
    let good = 0;
    for (let seed = 0; seed < 20; seed++) {
      const fit = fitPseudoVoigt(noisy(clean, 300 + seed), W, H, 15, 12);
      if (!fit.bad) {
        good++;
        assertNear(fit.fsPx, p.fsPx, 0.5, 'dim fs');
      }
    }
    assert.ok(good >= 18, `dim peak found in ${good} of 20`);

    const flat = synth({ ...p, amplitude: 0 }, tilted);
    for (let seed = 0; seed < 60; seed++) {
      for (const weighting of ['poisson', 'border'] as const) {
        const fit = fitPseudoVoigt(noisy(flat, 500 + seed), W, H, 15, 12, { weighting });
        assert.equal(
          fit.bad,
          true,
          `seed ${seed} ${weighting}: amplitude ${fit.amplitude} ± ${fit.amplitudeError}`,
        );
        assert.ok(fit.badReason !== undefined && fit.badReason.length > 0);
      }
    }
    const constant = new Float32Array(W * H).fill(25);
    const fit = fitPseudoVoigt(constant, W, H, 15, 12);
    assert.equal(fit.bad, true, `constant image: ${fit.badReason}`);
    assert.ok(Math.abs(fit.amplitude) < 1e-9, `constant image: amplitude ${fit.amplitude}`);
  });

  test('unresolved spots: a one-pixel spot is good and significant, flat noise still is not', () => {
    // Narrower than a pixel: at the 0.5 px floor, the width no longer trades off against the amplitude.
    const sharp = { amplitude: 400, fsPx: 15, ssPx: 12, hwhmFsPx: 0.2, hwhmSsPx: 0.25, eta: 0 };
    const options = { minHwhmPx: 0.5, allowUnresolved: true, weighting: 'border' as const };
    let good = 0;
    for (let seed = 0; seed < 20; seed++) {
      const fit = fitPseudoVoigt(noisy(synth(sharp, flatBg(20)), 700 + seed), W, H, 15, 12, options);
      if (fit.bad) continue;
      good++;
      assert.equal(fit.hwhmFsPx, 0.5);
      assert.ok(fit.amplitude > 4 * fit.amplitudeError, `${fit.amplitude} ± ${fit.amplitudeError}`);
      const labels = new Uint8Array(W * H);
      assert.equal(labelPixels(fit, W, H, labels), 1);
      assert.equal(labels[12 * W + 15], 1);
    }
    assert.ok(good >= 18, `sharp spot good in ${good} of 20`);
    // The same spot without allowUnresolved is a width at its bound.
    const strict = fitPseudoVoigt(noisy(synth(sharp, flatBg(20)), 700), W, H, 15, 12, { minHwhmPx: 0.5 });
    assert.equal(strict.badReason, 'width at a bound');
    let accepted = 0;
    const flat = synth({ ...sharp, amplitude: 0 }, tilted);
    for (let seed = 0; seed < 200; seed++)
      if (!fitPseudoVoigt(noisy(flat, 900 + seed), W, H, 15, 12, options).bad) accepted++;
    assert.ok(accepted <= 4, `${accepted} of 200 flat-noise windows accepted`);
  });
});

describe('panel edges', () => {
  for (const [name, p] of [
    ['left edge', { amplitude: 800, fsPx: 0.4, ssPx: 11.3, hwhmFsPx: 1.7, hwhmSsPx: 1.1, eta: 0.5 }],
    [
      'top-right corner',
      { amplitude: 800, fsPx: W - 1.7, ssPx: 0.55, hwhmFsPx: 1.9, hwhmSsPx: 1.7, eta: 0.2 },
    ],
  ] as const) {
    test(`${name}: the clipped window still fits, labels stay on the panel`, () => {
      const image = synth(p, tilted);
      const fit = fitPseudoVoigt(image, W, H, Math.round(p.fsPx), Math.round(p.ssPx));
      assert.equal(fit.bad, false, fit.badReason);
      assert.ok(fit.pixels < 81 && fit.pixels >= 18);
      const { fsMin, fsMax, ssMin, ssMax } = fit.window;
      assert.ok(fsMin >= 0 && ssMin >= 0 && fsMax <= W - 1 && ssMax <= H - 1);
      assert.equal((fsMax - fsMin + 1) * (ssMax - ssMin + 1), fit.pixels);
      assertNear(fit.fsPx, p.fsPx, 0.05, 'fs');
      assertNear(fit.ssPx, p.ssPx, 0.05, 'ss');
      assertNear(fit.eta, p.eta, 0.02, 'eta');

      const out = new Uint8Array(W * H);
      const count = labelPixels(fit, W, H, out);
      // A pixel off the panel would wrap to the other side of a row (or past the end): none may.
      assert.deepEqual(out, expectedLabels(p));
      assert.equal(count, sum(out));
      assert.ok(count > 0);

      const noisyFit = fitPseudoVoigt(noisy(image, 42), W, H, Math.round(p.fsPx), Math.round(p.ssPx));
      assert.equal(noisyFit.bad, false, noisyFit.badReason);
      assertNear(noisyFit.fsPx, p.fsPx, 0.3, 'noisy fs');
      assertNear(noisyFit.ssPx, p.ssPx, 0.3, 'noisy ss');
    });
  }
});

describe('masks and bad pixels', () => {
  const p = { amplitude: 1200, fsPx: 15.35, ssPx: 12.2, hwhmFsPx: 1.2, hwhmSsPx: 1.0, eta: 0.4 };
  const image = noisy(synth(p, tilted), 77);
  const hot = 13 * W + 16;

  test('a masked pixel does not change the fit, whatever its value', () => {
    const mask = new Uint8Array(W * H).fill(1);
    mask[hot] = 0;
    const reference = fitPseudoVoigt(image, W, H, 15, 12, {}, mask);
    const spoiled = Float32Array.from(image);
    spoiled[hot] = 1e9;
    const fit = fitPseudoVoigt(spoiled, W, H, 15, 12, {}, mask);
    assert.deepEqual(fit, reference);
    assert.equal(fit.bad, false, fit.badReason);
    assert.equal(fit.pixels, 80);
    assertNear(fit.fsPx, p.fsPx, 0.3, 'fs');
    assertNear(fit.ssPx, p.ssPx, 0.3, 'ss');
    // Without the mask the hot pixel wrecks the fit: the mask is what protects it.
    const unmasked = fitPseudoVoigt(spoiled, W, H, 15, 12);
    assert.ok(
      unmasked.bad || Math.hypot(unmasked.fsPx - reference.fsPx, unmasked.ssPx - reference.ssPx) > 0.3,
      'the hot pixel should matter when not masked',
    );
  });

  test('non-finite pixels are skipped like masked ones', () => {
    const mask = new Uint8Array(W * H).fill(1);
    mask[hot] = 0;
    mask[hot + W] = 0;
    const reference = fitPseudoVoigt(image, W, H, 15, 12, {}, mask);
    const holes = Float32Array.from(image);
    holes[hot] = Number.NaN;
    holes[hot + W] = Number.POSITIVE_INFINITY;
    assert.deepEqual(fitPseudoVoigt(holes, W, H, 15, 12), reference);
    assert.equal(reference.pixels, 79);
  });

  test('too few good pixels is a bad fit, not a crash', () => {
    const mask = new Uint8Array(W * H);
    const fit = fitPseudoVoigt(image, W, H, 15, 12, {}, mask);
    assert.equal(fit.bad, true);
    assert.match(fit.badReason ?? '', /too few good pixels/);
    assert.equal(fit.pixels, 0);
    assert.equal(labelPixels(fit, W, H, new Uint8Array(W * H), { includeBad: true }), 0);
  });
});

describe('labelPixels', () => {
  const shapes: PseudoVoigtProfile[] = [
    { amplitude: 500, fsPx: 15.3, ssPx: 12.6, hwhmFsPx: 1.33, hwhmSsPx: 0.87, eta: 0 },
    { amplitude: 500, fsPx: 16.71, ssPx: 11.43, hwhmFsPx: 2.07, hwhmSsPx: 1.52, eta: 0.5 },
    { amplitude: 500, fsPx: 15.13, ssPx: 12.09, hwhmFsPx: 0.62, hwhmSsPx: 2.39, eta: 1 },
  ];

  test('a noiseless fit labels exactly the pixels where the true profile >= half max', () => {
    for (const p of shapes) {
      const fit = fitPseudoVoigt(synth(p, tilted), W, H, 15, 12, { windowPx: 11 });
      assert.equal(fit.bad, false, fit.badReason);
      const out = new Uint8Array(W * H);
      const count = labelPixels(fit, W, H, out);
      const want = expectedLabels(p);
      assert.deepEqual(out, want);
      assert.equal(count, sum(want));
    }
  });

  test('restricting to the window, and bad fits', () => {
    const wide = { ...shapes[1], hwhmFsPx: 6.2, hwhmSsPx: 4.1 };
    const window = { fsMin: 13, fsMax: 19, ssMin: 9, ssMax: 14 };
    const everywhere = new Uint8Array(W * H);
    const all = labelPixels({ ...wide, window }, W, H, everywhere);
    const inside = new Uint8Array(W * H);
    const count = labelPixels({ ...wide, window }, W, H, inside, { restrictToWindow: true });
    assert.ok(count < all);
    assert.equal(count, sum(inside));
    for (let ss = 0; ss < H; ss++) {
      for (let fs = 0; fs < W; fs++) {
        const inWindow = fs >= 13 && fs <= 19 && ss >= 9 && ss <= 14;
        assert.equal(inside[ss * W + fs], inWindow ? everywhere[ss * W + fs] : 0, `(${fs}, ${ss})`);
      }
    }
    const bad = { ...shapes[0], bad: true };
    assert.equal(labelPixels(bad, W, H, new Uint8Array(W * H)), 0);
    assert.equal(
      labelPixels(bad, W, H, new Uint8Array(W * H), { includeBad: true }),
      sum(expectedLabels(shapes[0])),
    );
    assert.equal(labelPixels({ ...shapes[0], amplitude: -5 }, W, H, new Uint8Array(W * H)), 0);
  });

  test('leaves other labels alone', () => {
    const out = new Uint8Array(W * H);
    out[0] = 1;
    labelPixels(shapes[0], W, H, out);
    assert.equal(out[0], 1);
    assert.equal(sum(out), sum(expectedLabels(shapes[0])) + 1);
  });
});

describe('awkward windows', () => {
  test('a saturated plateau does not crash: bad, or a finite fit near the centre', () => {
    const p = { amplitude: 20000, fsPx: 15.4, ssPx: 12.3, hwhmFsPx: 1.6, hwhmSsPx: 1.6, eta: 0.3 };
    const image = noisy(synth(p, flatBg(20)), 5).map((x) => Math.min(x, 4000));
    const fit = fitPseudoVoigt(image, W, H, 15, 12);
    if (!fit.bad) {
      assertFinite(fit);
      assertNear(fit.fsPx, p.fsPx, 0.5, 'fs');
    }
    assert.ok(fit.iterations <= 50);
  });

  test('two peaks in one window do not crash: bad, or a finite fit', () => {
    const a = { amplitude: 1000, fsPx: 13.6, ssPx: 12.2, hwhmFsPx: 1, hwhmSsPx: 1, eta: 0.5 };
    const b = { ...a, fsPx: 17.1, ssPx: 11.6, amplitude: 800 };
    const clean = synth(a, flatBg(20));
    const second = synth(b, flatBg(0));
    const image = noisy(
      clean.map((x, i) => x + second[i]),
      9,
    );
    for (const start of [
      [15, 12],
      [14, 12],
      [17, 12],
    ]) {
      const fit = fitPseudoVoigt(image, W, H, start[0], start[1]);
      if (!fit.bad) assertFinite(fit);
      else assert.ok((fit.badReason ?? '').length > 0);
    }
  });

  test('arguments: even or tiny windows throw, a start off the panel is a bad fit', () => {
    const image = synth({ amplitude: 100, fsPx: 5, ssPx: 5, hwhmFsPx: 1, hwhmSsPx: 1, eta: 0.5 }, flatBg(10));
    assert.throws(() => fitPseudoVoigt(image, W, H, 5, 5, { windowPx: 8 }), RangeError);
    assert.throws(() => fitPseudoVoigt(image, W, H, 5, 5, { windowPx: 3 }), RangeError);
    assert.throws(() => fitPseudoVoigt(image.subarray(1), W, H, 5, 5), RangeError);
    const off = fitPseudoVoigt(image, W, H, -3, 5);
    assert.equal(off.bad, true);
    assert.match(off.badReason ?? '', /outside the panel/);
    assert.equal(labelPixels(off, W, H, new Uint8Array(W * H), { includeBad: true }), 0);
  });
});
