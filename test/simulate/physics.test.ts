import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultGeometry, defaultGeometryText } from '../../src/detector/default-geometry.js';
import { computePixelMaps, slabToLab } from '../../src/detector/pixel-maps.js';
import { type Geometry, parseGeometry, readGeometry } from '../../src/io/geom.js';
import {
  cellOfBasis,
  cellVolumeA3,
  centeringAllows,
  det3,
  directMatrix,
  reciprocalMatrix,
  screwAxesAllow,
  screwAxesOf,
  type UnitCell,
  validateCell,
} from '../../src/simulate/cell.js';
import { createPhysicsContext, frameSeed, simulateFramePhysics } from '../../src/simulate/frame.js';
import { parseSimulateOptions } from '../../src/simulate/options.js';
import { randomRotation, rotateRows } from '../../src/simulate/orientation.js';
import { maxTwoTheta } from '../../src/simulate/projection.js';
import {
  hklUniform,
  predictReflections,
  type ShotBeam,
  type ShotCrystal,
} from '../../src/simulate/reflections.js';
import { resolveSetup } from '../../src/simulate/run.js';
import { UserError } from '../../src/util/errors.js';
import { seededRandom } from '../../src/util/random.js';
import { haveShared, needsShared, sharedPath } from '../helpers.js';

const cell = (
  a: number,
  b: number,
  c: number,
  al: number,
  be: number,
  ga: number,
  centering = 'P',
): UnitCell => ({
  aA: a,
  bA: b,
  cA: c,
  alphaDeg: al,
  betaDeg: be,
  gammaDeg: ga,
  centering,
});

test('impossible cells are one-line UserErrors naming the option', () => {
  const bad: [UnitCell, RegExp][] = [
    [cell(0, 10, 10, 90, 90, 90), /edge a must be a positive length/],
    [cell(10, -1, 10, 90, 90, 90), /edge b/],
    [cell(10, 10, Number.NaN, 90, 90, 90), /edge c/],
    [cell(10, 10, 10, 0, 90, 90), /angle alpha must be between 0 and 180/],
    [cell(10, 10, 10, 90, 180, 90), /angle beta/],
    [cell(10, 10, 10, 60, 60, 150), /cannot close/],
    [cell(10, 10, 10, 120, 120, 120), /cannot close/],
    [cell(10, 10, 10, 90, 90, 90, 'Q'), /unknown centering 'Q'/],
  ];
  for (const [c, message] of bad) {
    assert.throws(
      () => validateCell(c, '--cell'),
      (error: unknown) =>
        error instanceof UserError && message.test(error.message) && error.where === '--cell',
    );
  }
  for (const c of [
    cell(79, 79, 38, 90, 90, 90),
    cell(93, 93, 130, 90, 90, 120),
    cell(30, 40, 50, 70, 80, 100),
  ])
    validateCell(c);
});

test('direct and reciprocal bases are dual for any triclinic cell', () => {
  const random = seededRandom(3);
  for (let trial = 0; trial < 200; trial++) {
    const c = cell(
      5 + random() * 300,
      5 + random() * 300,
      5 + random() * 300,
      60 + random() * 60,
      60 + random() * 60,
      60 + random() * 60,
    );
    try {
      validateCell(c);
    } catch {
      continue;
    }
    const direct = directMatrix(c);
    const recip = reciprocalMatrix(c);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) {
        const dot =
          direct[3 * i] * recip[3 * j] +
          direct[3 * i + 1] * recip[3 * j + 1] +
          direct[3 * i + 2] * recip[3 * j + 2];
        assert.ok(Math.abs(dot - (i === j ? 1 : 0)) < 1e-9, `a_${i} . a*_${j} = ${dot}`);
      }
    assert.ok(Math.abs(det3(direct) - cellVolumeA3(c)) < 1e-6 * cellVolumeA3(c));
    // Rotating keeps the cell: edges and angles read back from the rotated basis.
    const back = cellOfBasis(rotateRows(randomRotation(random), direct));
    assert.ok(Math.abs(back.edgesA[2] - c.cA) < 1e-9 * c.cA);
    assert.ok(Math.abs(back.anglesDeg[0] - c.alphaDeg) < 1e-7);
    assert.ok(Math.abs(back.anglesDeg[2] - c.gammaDeg) < 1e-7);
  }
});

test('centering and screw-axis absences', () => {
  const fractions: Record<string, number> = { P: 1, A: 0.5, B: 0.5, C: 0.5, I: 0.5, F: 0.25, R: 1 / 3 };
  for (const [centering, expected] of Object.entries(fractions)) {
    let allowed = 0;
    let total = 0;
    for (let h = -6; h < 6; h++)
      for (let k = -6; k < 6; k++)
        for (let l = -6; l < 6; l++) {
          total++;
          if (centeringAllows(h, k, l, centering)) allowed++;
        }
    assert.ok(Math.abs(allowed / total - expected) < 0.01, `${centering}: ${allowed / total}`);
  }
  assert.ok(centeringAllows(1, 1, 0, 'C') && !centeringAllows(1, 0, 0, 'C'));
  assert.ok(centeringAllows(1, 1, 1, 'F') && !centeringAllows(1, 1, 0, 'F'));
  const p6122 = screwAxesOf('P6122');
  for (let l = -13; l <= 13; l++) assert.equal(screwAxesAllow(0, 0, l, p6122), l % 6 === 0, `00${l}`);
  assert.ok(screwAxesAllow(1, 0, 5, p6122), 'only the 00l row is affected');
  const p43212 = screwAxesOf('P43212');
  assert.ok(
    !screwAxesAllow(0, 0, 2, p43212) && screwAxesAllow(0, 0, 8, p43212) && !screwAxesAllow(3, 0, 0, p43212),
  );
  assert.throws(() => screwAxesOf('P99'), UserError);
});

test('random rotations are proper and uniform on SO(3)', () => {
  const random = seededRandom(11);
  const n = 20000;
  let meanX = 0;
  let meanY = 0;
  let meanZ = 0;
  let meanTrace = 0;
  const zBins = new Array(10).fill(0);
  for (let i = 0; i < n; i++) {
    const r = randomRotation(random);
    // R R^T = I and det = +1.
    for (let a = 0; a < 3; a++)
      for (let b = 0; b < 3; b++) {
        const dot = r[3 * a] * r[3 * b] + r[3 * a + 1] * r[3 * b + 1] + r[3 * a + 2] * r[3 * b + 2];
        assert.ok(Math.abs(dot - (a === b ? 1 : 0)) < 1e-12);
      }
    assert.ok(Math.abs(det3(r) - 1) < 1e-12);
    // R applied to e_z is the third column.
    meanX += r[2] / n;
    meanY += r[5] / n;
    meanZ += r[8] / n;
    meanTrace += (r[0] + r[4] + r[8]) / n;
    zBins[Math.min(9, Math.floor(((r[8] + 1) / 2) * 10))]++;
  }
  // A rotated unit vector is uniform on the sphere: mean 0, its cosine to any axis uniform on [-1, 1].
  const tolerance = 4 / Math.sqrt(3 * n);
  for (const mean of [meanX, meanY, meanZ]) assert.ok(Math.abs(mean) < tolerance, `mean ${mean}`);
  for (const count of zBins) assert.ok(Math.abs(count - n / 10) < 5 * Math.sqrt(n / 10), `bins ${zBins}`);
  // Haar measure: E[trace] = 0 (a uniform axis with a uniform angle would give 1).
  assert.ok(Math.abs(meanTrace) < 0.03, `mean trace ${meanTrace}`);
});

const beam: ShotBeam = {
  photonEnergyEv: 9500,
  bandwidth: 0.003,
  divergenceRad: 1e-4,
  fluencePhotonsPerUm2: 1e11,
  polarisationX: 1,
};

function shotCrystal(reciprocalPerA: Float64Array, overrides: Partial<ShotCrystal> = {}): ShotCrystal {
  return {
    reciprocalPerA,
    centering: 'P',
    screwAxes: [],
    cellVolumeA3: 79 * 79 * 38,
    proteinFraction: 0.6,
    sizeUm: 3,
    mosaicityRad: 1e-3,
    bFactorA2: 20,
    intensityScale: 1,
    structureSeed: 5,
    ...overrides,
  };
}

test('predicted reflections are exactly the lattice points near the Ewald sphere (brute force)', () => {
  const random = seededRandom(21);
  const c = cell(40, 50, 60, 80, 95, 105, 'I');
  for (let trial = 0; trial < 3; trial++) {
    const recip = rotateRows(randomRotation(random), reciprocalMatrix(c));
    const crystal = shotCrystal(recip, { centering: 'I', cellVolumeA3: cellVolumeA3(c) });
    const options = { maxQPerA: 1 / 2.5, minPartiality: 0.05 };
    const predicted = predictReflections(crystal, beam, options);
    assert.ok(predicted.length > 20, `${predicted.length} reflections`);
    const got = new Set(predicted.map((r) => `${r.h},${r.k},${r.l}`));
    const k = 9500 / 12398.41984;
    let expected = 0;
    for (let h = -25; h <= 25; h++)
      for (let kk = -25; kk <= 25; kk++)
        for (let l = -25; l <= 25; l++) {
          if (!centeringAllows(h, kk, l, 'I') || (h === 0 && kk === 0 && l === 0)) continue;
          const q = [0, 1, 2].map((i) => h * recip[i] + kk * recip[3 + i] + l * recip[6 + i]);
          const qLen = Math.hypot(q[0], q[1], q[2]);
          if (qLen > options.maxQPerA) continue;
          const eps = Math.hypot(q[0], q[1], q[2] + k) - k;
          const rho = Math.sqrt(
            (1 / 3e4) ** 2 +
              ((qLen * 1e-3) / 2) ** 2 +
              ((0.003 * qLen * qLen) / k / 2) ** 2 +
              ((qLen * 1e-4) / 2) ** 2,
          );
          if (Math.exp(-(eps * eps) / (2 * rho * rho)) < options.minPartiality) continue;
          expected++;
          assert.ok(got.has(`${h},${kk},${l}`), `missing ${h},${kk},${l}`);
        }
    assert.equal(predicted.length, expected);
    for (const r of predicted) {
      assert.ok(r.partiality >= options.minPartiality && r.partiality <= 1);
      assert.ok(Math.abs(r.dA - 1 / Math.hypot(r.qx, r.qy, r.qz)) < 1e-9);
      assert.ok(r.fullPhotons > 0);
    }
  }
});

test('Wilson intensities: seeded per hkl, Friedel mates equal, exponential, B-factor fall-off', () => {
  assert.equal(hklUniform(9, 3, -2, 5), hklUniform(9, -3, 2, -5));
  assert.notEqual(hklUniform(9, 3, -2, 5), hklUniform(10, 3, -2, 5));
  let mean = 0;
  let meanSquare = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) {
    const x = -Math.log(1 - hklUniform(4, i % 37, Math.floor(i / 37), 7));
    mean += x / n;
    meanSquare += (x * x) / n;
  }
  // Exp(1): mean 1, second moment 2.
  assert.ok(Math.abs(mean - 1) < 0.04, `mean ${mean}`);
  assert.ok(Math.abs(meanSquare - 2) < 0.15, `second moment ${meanSquare}`);

  const recip = rotateRows(randomRotation(seededRandom(2)), reciprocalMatrix(cell(79, 79, 38, 90, 90, 90)));
  const options = { maxQPerA: 1 / 2, minPartiality: 0.05 };
  const flat = predictReflections(shotCrystal(recip, { bFactorA2: 0 }), beam, options);
  const fallen = predictReflections(shotCrystal(recip, { bFactorA2: 40 }), beam, options);
  assert.equal(flat.length, fallen.length);
  flat.forEach((r, i) => {
    const ratio = fallen[i].fullPhotons / r.fullPhotons;
    assert.ok(Math.abs(ratio - Math.exp(-40 / (2 * r.dA * r.dA))) < 1e-9);
  });
  // Photons scale with the crystal volume and the fluence.
  const byHkl = new Map(flat.map((r) => [`${r.h},${r.k},${r.l}`, r.fullPhotons]));
  const bigger = predictReflections(shotCrystal(recip, { bFactorA2: 0, sizeUm: 6 }), beam, options);
  let common = 0;
  for (const r of bigger) {
    const before = byHkl.get(`${r.h},${r.k},${r.l}`);
    if (before === undefined) continue;
    common++;
    assert.ok(Math.abs(r.fullPhotons / before - 8) < 1e-9 * 8, 'photons grow with the crystal volume');
  }
  assert.ok(common > 20);
  const brighter = predictReflections(
    shotCrystal(recip, { bFactorA2: 0 }),
    { ...beam, fluencePhotonsPerUm2: 3e11 },
    options,
  );
  brighter.forEach((r, i) => {
    assert.ok(Math.abs(r.fullPhotons / flat[i].fullPhotons - 3) < 1e-9);
  });
});

/** The default detector with its modules tilted out of plane (fs and ss with z components). */
function tiltedGeometry(): Geometry {
  const text = defaultGeometryText
    .replace('q0/fs = +1.0x', 'q0/fs = +0.95x +0.312z')
    .replace('q2/ss = -1.0y', 'q2/ss = -0.97y -0.243z')
    .replace('q1/fs = -1.0y', 'q1/fs = -0.96y +0.05x +0.28z');
  assert.notEqual(text, defaultGeometryText);
  return parseGeometry(text, 'tilted');
}

/** Checks every spot of a few frames lands on its panel and points back along its scattered ray. */
function checkRoundTrip(geometry: Geometry, preset: string, clenM?: number): number {
  const setup = resolveSetup(
    geometry,
    parseSimulateOptions({ frames: 1, outPath: 'x', preset, hitRate: 1, clenM }),
  );
  const maps = computePixelMaps(geometry);
  const context = createPhysicsContext(setup, maps);
  let checked = 0;
  for (let frame = 0; frame < 2; frame++) {
    const physics = simulateFramePhysics(context, frame);
    assert.ok(physics.spots.length > 10, `${physics.spots.length} spots on ${geometry.sourcePath}`);
    const k = 1 / (12398.41984 / physics.conditions.photonEnergyEv);
    for (const spot of physics.spots) {
      const pixel = Math.round(spot.ss) * maps.fsSize + Math.round(spot.fs);
      assert.equal(maps.panelIndex[pixel], spot.panel, 'spot centre on a pixel of its panel');
      const lab = slabToLab(maps, spot.fs, spot.ss);
      assert.ok(lab !== null);
      assert.equal(lab.panel, spot.panel);
      const z = setup.panelClensM[spot.panel] + lab.zOffsetM;
      const r = physics.crystals[spot.crystal].reciprocalPerA;
      const q = [0, 1, 2].map((i) => spot.h * r[i] + spot.k * r[3 + i] + spot.l * r[6 + i]);
      const kOut = [q[0], q[1], q[2] + k];
      const kLen = Math.hypot(kOut[0], kOut[1], kOut[2]);
      const labLen = Math.hypot(lab.xM, lab.yM, z);
      const angle = Math.acos(
        Math.min(1, (kOut[0] * lab.xM + kOut[1] * lab.yM + kOut[2] * z) / (kLen * labLen)),
      );
      assert.ok(angle < 1e-6, `ray and pixel differ by ${angle} rad`);
      assert.ok(Math.abs(spot.dA - 1 / Math.hypot(q[0], q[1], q[2])) < 1e-9);
      assert.ok(spot.sigmaRadialPx > 0 && spot.sigmaTangentialPx > 0 && spot.photons >= 0);
      // The radial axis points away from the beam: a step along it moves the spot outwards.
      const step = slabToLab(
        maps,
        spot.fs + 0.3 * Math.cos(spot.radialAngleRad),
        spot.ss + 0.3 * Math.sin(spot.radialAngleRad),
      );
      if (step !== null && step.panel === spot.panel && Math.hypot(lab.xM, lab.yM) > 0.005)
        assert.ok(Math.hypot(step.xM, step.yM) > Math.hypot(lab.xM, lab.yM));
      checked++;
    }
  }
  return checked;
}

test('spots map back through the pixel maps to their scattering vector: embedded and tilted detectors', () => {
  assert.ok(checkRoundTrip(defaultGeometry(), 'lysozyme') > 50);
  assert.ok(checkRoundTrip(tiltedGeometry(), 'lysozyme') > 50);
});

test('spots map back on real geometries (rotated CSPAD modules, Jungfrau 4M)', needsShared, () => {
  assert.ok(
    checkRoundTrip(readGeometry(sharedPath('data/geometry/cspad-cxiformat.geom')), 'thermolysin') > 50,
  );
  assert.ok(checkRoundTrip(readGeometry(sharedPath('data/geometry/jungfrau4M.geom')), 'lysozyme') > 50);
});

test('the largest scattering angle, from panel corners, is the largest over every pixel', () => {
  const geometries = [defaultGeometry(), tiltedGeometry()];
  // With ../shared: rotated CSPAD modules, a Jungfrau 4M and the Eiger 16M too.
  if (haveShared)
    for (const name of ['cspad-cxiformat.geom', 'jungfrau4M.geom', 'Eiger16M-binning2-nativefiles.geom'])
      geometries.push(readGeometry(sharedPath(`data/geometry/${name}`)));
  for (const geometry of geometries) {
    const maps = computePixelMaps(geometry);
    for (const clenM of [0.05, 0.2]) {
      const clens = geometry.panels.map(() => clenM);
      let brute = 0;
      for (let i = 0; i < maps.panelIndex.length; i++) {
        const p = maps.panelIndex[i];
        if (p < 0) continue;
        brute = Math.max(brute, Math.atan2(Math.hypot(maps.xM[i], maps.yM[i]), clens[p] + maps.zOffsetM[i]));
      }
      assert.ok(Math.abs(maxTwoTheta(maps, clens) - brute) < 1e-12, `${geometry.sourcePath} at ${clenM} m`);
    }
  }
});

test('a frame depends only on (seed, frame index)', () => {
  const setup = resolveSetup(
    defaultGeometry(),
    parseSimulateOptions({ frames: 1, outPath: 'x', hitRate: 1 }),
  );
  const make = () => createPhysicsContext(setup);
  const a = make();
  const b = make();
  const late = simulateFramePhysics(a, 3);
  simulateFramePhysics(b, 0);
  const again = simulateFramePhysics(b, 3);
  assert.deepEqual(again.spots, late.spots);
  assert.notDeepEqual(simulateFramePhysics(a, 4).spots, late.spots);
  assert.notEqual(frameSeed(1, 3, 1), frameSeed(2, 3, 1));
  assert.notEqual(frameSeed(1, 3, 1), frameSeed(1, 3, 2));
});
