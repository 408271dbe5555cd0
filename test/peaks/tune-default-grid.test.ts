/**
 * `braggflow tune` with no --grid searches where the detector's signal is: thresholds from the frames'
 * own background noise to above their strongest background (and whole photons where the geometry says
 * what a photon is). The same search works on a photon-counting Pilatus and on a CSPAD in raw ADU.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { defaultGeometryText } from '../../src/detector/default-geometry.js';
import { parseGeometry } from '../../src/io/geom.js';
import { readPeakParamsFile } from '../../src/peaks/params-file.js';
import { backgroundBasis, defaultGridFor, gridToSpec, parseGrid } from '../../src/peaks/tune.js';
import { runSimulation } from '../../src/simulate/run.js';
import { seededRandom } from '../../src/util/random.js';
import { needsShared, runCli, sharedPath } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-tune-grid-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Poisson counts of mean `mu` (Knuth; mu small). */
function poisson(mu: number, random: () => number): number {
  const limit = Math.exp(-mu);
  let k = 0;
  let p = 1;
  do {
    k++;
    p *= random();
  } while (p > limit);
  return k - 1;
}

describe('the default search space', () => {
  const n = 200 * 200;
  const maps = {
    radiusPx: Float32Array.from({ length: n }, (_, i) =>
      Math.hypot((i % 200) - 100, Math.floor(i / 200) - 100),
    ),
  };
  const mask = new Uint8Array(n).fill(1);
  const random = seededRandom(5);
  const counts = Float32Array.from({ length: n }, () => poisson(9, random));

  test('background noise and level from the frames, in their own units; thresholds scale with the gain', () => {
    const one = backgroundBasis([counts], maps, mask, 1);
    // Poisson(9): sigma 3 (the MAD estimate of an integer distribution lands within a photon).
    assert.ok(one.noiseAdu >= 2.5 && one.noiseAdu <= 4.5, `noise ${one.noiseAdu}`);
    assert.ok(one.backgroundP99Adu >= 14 && one.backgroundP99Adu <= 19, `p99 ${one.backgroundP99Adu}`);
    const scaled = backgroundBasis([counts.map((v) => 25 * v)], maps, mask, 25);
    assert.ok(Math.abs(scaled.noiseAdu / one.noiseAdu - 25) < 1e-9);
    assert.equal(scaled.backgroundP99Adu, 25 * one.backgroundP99Adu);
    const lo = defaultGridFor(one).adcThreshold!;
    const hi = defaultGridFor(scaled).adcThreshold!;
    assert.equal(hi.length, lo.length);
    // Each threshold 25x (to the two significant figures they are rounded to).
    for (const [i, t] of lo.entries())
      assert.ok(Math.abs(hi[i] / (25 * t) - 1) < 0.06, `${hi[i]} vs 25 x ${t}`);
    // From twice the noise to above the strongest background, with 3, 5 and 10 photons' worth.
    assert.ok(lo[0] <= 2 * one.noiseAdu * 1.05 && lo.at(-1)! >= 4 * one.backgroundP99Adu * 0.95);
    for (const photons of [3, 5, 10]) assert.ok(lo.includes(photons), `${photons} photons`);
    // Thresholds of a photon-counting detector sit far below indexamajig's 800.
    assert.ok(lo.at(-1)! < 200);
    // The grid prints as --grid reads it.
    assert.deepEqual(parseGrid(gridToSpec(defaultGridFor(one))), defaultGridFor(one));
  });

  test('an empty background (photon counting, no scatter) still gets a grid from the value quantum', () => {
    const empty = new Float32Array(n);
    for (let i = 0; i < n; i += 97) empty[i] = 1;
    const basis = backgroundBasis([empty], maps, mask);
    assert.equal(basis.noiseAdu, 1);
    const grid = defaultGridFor(basis);
    assert.ok(grid.adcThreshold![0] === 2 && grid.adcThreshold!.every((t) => t > 0 && Number.isFinite(t)));
  });
});

describe('tune with no --grid on real frames, against DIALS spots', () => {
  const real = (name: string) => sharedPath('data', 'real', name);
  for (const name of ['pilatus-thaumatin', 'cspad-thermolysin']) {
    test(`${name}: F1 >= 0.85 with the search space from the frame`, needsShared, () => {
      const out = join(dir, `${name}.json`);
      const run = runCli([
        'tune',
        '--method',
        'pf8',
        '--geom',
        real(`${name}.geom`),
        '--in',
        real(`${name}.cxi`),
        '--labels',
        real(`${name}.dials-spots.json`),
        '--out',
        out,
        '--workers',
        '2',
        '--json',
      ]);
      assert.equal(run.code, 0, run.stderr);
      const report = JSON.parse(run.stdout);
      assert.ok(report.f1 >= 0.85, `F1 ${report.f1}`);
      assert.equal(report.tuning.gridFrom, 'the frames');
      assert.equal(
        report.configurations,
        report.tuning.grid.split(';').reduce((n: number, axis: string) => n * axis.split(',').length, 1),
      );
      // The params file records the grid searched, and `peaks --params` still reads it.
      const file = JSON.parse(readFileSync(out, 'utf8'));
      assert.equal(file.tuning.grid, report.tuning.grid);
      assert.ok(file.tuning.basis.noiseAdu > 0);
      const file2 = readPeakParamsFile(out);
      assert.equal(file2.method === 'pf8' && file2.params.adcThreshold, report.params.adcThreshold);
    });
  }

  test(
    "peaks with indexamajig's defaults on the photon-counting frame warns, naming tune",
    needsShared,
    () => {
      const run = runCli([
        'peaks',
        '--method',
        'pf8',
        '--geom',
        real('pilatus-thaumatin.geom'),
        '--in',
        real('pilatus-thaumatin.cxi'),
        '--out',
        join(dir, 'pilatus-defaults.cxi'),
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(
        run.stderr,
        /^braggflow: warning: no peaks: the threshold \(800 ADU, indexamajig's default\) is far above these frames' signal \(background noise [\d.]+ ADU, 99th percentile [\d.]+ ADU\); `braggflow tune` finds parameters for this detector$/m,
      );
    },
  );
});

describe('the same search at 1 and at 25 ADU per photon', () => {
  test('tuned F1 within 0.05; a default-threshold peaks run on the photon-counting one warns', async () => {
    const f1: number[] = [];
    for (const gain of [1, 25]) {
      const text = defaultGeometryText.replace(/^adu_per_photon = .*$/m, `adu_per_photon = ${gain}`);
      const geom = join(dir, `gain${gain}.geom`);
      writeFileSync(geom, text);
      const cxi = join(dir, `gain${gain}.cxi`);
      await runSimulation({
        geometry: parseGeometry(text, geom),
        geometryText: text,
        frames: 3,
        seed: 8,
        outPath: cxi,
        streamPath: join(dir, `gain${gain}.stream`),
        preset: 'lysozyme',
        hitRate: 1,
      });
      const run = runCli([
        'tune',
        '--method',
        'pf8',
        '--geom',
        geom,
        '--in',
        cxi,
        '--labels',
        cxi,
        '--label-group',
        '/entry_1/truth_1',
        '--out',
        join(dir, `gain${gain}.json`),
        '--workers',
        '2',
        '--json',
      ]);
      assert.equal(run.code, 0, run.stderr);
      const report = JSON.parse(run.stdout);
      f1.push(report.f1);
      assert.ok(
        report.f1 > report.defaults.f1,
        `gain ${gain}: tuned ${report.f1}, defaults ${report.defaults.f1}`,
      );
      if (gain === 1) {
        const peaks = runCli([
          'peaks',
          '--method',
          'pf8',
          '--geom',
          geom,
          '--in',
          cxi,
          '--out',
          join(dir, 'p1.cxi'),
        ]);
        assert.equal(peaks.code, 0, peaks.stderr);
        assert.match(
          peaks.stderr,
          /warning: no peaks: the threshold \(800 ADU, indexamajig's default\).*braggflow tune/,
        );
      }
    }
    assert.ok(f1[0] > 0.5, `F1 ${f1[0]}`);
    assert.ok(Math.abs(f1[0] - f1[1]) < 0.05, `F1 at 1 ADU/photon ${f1[0]}, at 25 ${f1[1]}`);
  });
});
