import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { computePixelMaps } from '../../src/detector/pixel-maps.js';
import { parseJsonPeakLists } from '../../src/engine/labels.js';
import { matchPeaks } from '../../src/engine/match.js';
import { defaultModelPath } from '../../src/infer/default-model.js';
import { exportModel } from '../../src/infer/export.js';
import {
  MODEL_METADATA_KEY,
  parseModelFileMeta,
  readModelFile,
  type TileSpec,
} from '../../src/infer/model-file.js';
import { createPeakNetFinder, groupTiles } from '../../src/infer/peaknet-finder.js';
import { componentPeaks } from '../../src/infer/peaks.js';
import { fastAsinh, preprocessTile, tileStatistics } from '../../src/infer/preprocess.js';
import { axisTileLength, axisTiles, planTiles } from '../../src/infer/tiling.js';
import { readPeakTable } from '../../src/io/cxi-peaks.js';
import { parseGeometry, readGeometry } from '../../src/io/geom.js';
import { buildPeakNet } from '../../src/nn/models/registry.js';
import { writeModel } from '../../src/nn/onnx/emit.js';
import { Trainer } from '../../src/train/trainer.js';
import { UserError } from '../../src/util/errors.js';
import { seededRandom } from '../../src/util/random.js';
import { needsShared, runCli, sharedPath } from '../helpers.js';
import { smallMaps } from '../peaks/pf8-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-infer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Every pixel of every panel owned by exactly one tile, and every tile inside its panel. */
function checkTiling(
  maps: ReturnType<typeof smallMaps>,
  tile: TileSpec = { heightPx: 64, widthPx: 64, overlapPx: 16 },
) {
  const owners = new Uint8Array(maps.ssSize * maps.fsSize);
  const plan = planTiles(maps, tile);
  for (const t of plan) {
    assert.ok(t.rows <= t.heightPx && t.cols <= t.widthPx);
    if (tile.maxPx === undefined) assert.deepEqual([t.heightPx, t.widthPx], [tile.heightPx, tile.widthPx]);
    else {
      // Panel-fitted: multiples of 32, at most maxPx, padding under 32 px on a panel that fits.
      for (const [side, used] of [
        [t.heightPx, t.rows],
        [t.widthPx, t.cols],
      ]) {
        assert.ok(side % 32 === 0 && side <= tile.maxPx, `tile side ${side}`);
        assert.ok(side - used < 32 || side === tile.maxPx, `${side - used} px of padding`);
      }
    }
    for (let r = 0; r < t.rows; r++)
      for (let c = 0; c < t.cols; c++)
        assert.equal(maps.panelIndex[(t.ss0 + r) * maps.fsSize + t.fs0 + c], t.panel, 'tile crosses a seam');
    assert.ok(
      t.ownSs0 >= t.ss0 && t.ownSs1 <= t.ss0 + t.rows && t.ownFs0 >= t.fs0 && t.ownFs1 <= t.fs0 + t.cols,
    );
    for (let ss = t.ownSs0; ss < t.ownSs1; ss++)
      for (let fs = t.ownFs0; fs < t.ownFs1; fs++) owners[ss * maps.fsSize + fs]++;
  }
  for (let i = 0; i < owners.length; i++)
    assert.equal(owners[i], maps.panelIndex[i] >= 0 ? 1 : 0, `pixel ${i}`);
}

/** The pixel maps of a detector of one panel of `rows` x `cols`. */
function onePanelMaps(rows: number, cols: number) {
  const text = [
    'res = 10000',
    'clen = 0.1',
    'photon_energy = 9000',
    'dim0 = %',
    'dim1 = ss',
    'dim2 = fs',
    'data = /entry_1/data_1/data',
    ...[`p/min_fs = 0`, `p/max_fs = ${cols - 1}`, `p/min_ss = 0`, `p/max_ss = ${rows - 1}`],
    ...['p/fs = x', 'p/ss = y', 'p/corner_x = 0', 'p/corner_y = 0'],
  ].join('\n');
  return computePixelMaps(parseGeometry(text, `panel-${rows}x${cols}.geom`));
}

test('axisTiles: one padded tile for a short axis; overlapping tiles own disjoint, covering ranges', () => {
  assert.deepEqual(axisTiles(50, 64, 16), [{ start: 0, own0: 0, own1: 50 }]);
  for (const length of [65, 100, 194, 388, 1030, 3840]) {
    const tiles = axisTiles(length, 64, 16);
    assert.equal(tiles[0].start, 0);
    assert.equal(tiles[tiles.length - 1].start + 64, length);
    for (let i = 1; i < tiles.length; i++) {
      assert.ok(tiles[i - 1].start + 64 - tiles[i].start >= 16, 'overlap at least 16 px');
      assert.equal(tiles[i].own0, tiles[i - 1].own1);
    }
    assert.equal(tiles[tiles.length - 1].own1, length);
  }
});

test('planTiles covers every panel pixel once and never crosses a seam (small, CSPAD, Pilatus)', {
  ...needsShared,
}, () => {
  checkTiling(smallMaps());
  checkTiling(smallMaps(), { heightPx: 32, widthPx: 32, overlapPx: 8 });
  for (const name of ['cspad-thermolysin.geom', 'pilatus-thaumatin.geom'])
    checkTiling(computePixelMaps(readGeometry(sharedPath('data', 'real', name))), {
      heightPx: 256,
      widthPx: 256,
      overlapPx: 32,
    });
});

test('panel-fitted tiles (maxPx): each panel in one tile of its own shape, long panels in overlapping maxPx tiles', () => {
  const fitted = { heightPx: 256, widthPx: 256, overlapPx: 32, maxPx: 1024 };
  assert.equal(axisTileLength(185, 256), 256, 'fixed tiles without maxPx');
  assert.equal(axisTileLength(185, 256, 1024), 192);
  assert.equal(axisTileLength(194, 256, 1024), 224);
  assert.equal(axisTileLength(1024, 256, 1024), 1024);
  assert.equal(axisTileLength(3840, 256, 1024), 1024);
  // Two 64 x 64 panels (smallMaps) and a 1500 x 700 module.
  checkTiling(smallMaps(), fitted);
  const maps = onePanelMaps(1500, 700);
  checkTiling(maps, fitted);
  const plan = planTiles(maps, fitted);
  assert.deepEqual(
    plan.map((t) => [t.heightPx, t.widthPx]),
    [
      [1024, 704],
      [1024, 704],
    ],
  );
  // One model run per shape, up to the batch's pixels.
  const groups = groupTiles(planTiles(smallMaps(), fitted), 2 * 64 * 64);
  for (const g of groups) {
    assert.ok(g.tiles.every((t) => t.heightPx === g.heightPx && t.widthPx === g.widthPx));
    assert.ok(g.tiles.length === 1 || g.tiles.length * g.heightPx * g.widthPx <= 2 * 64 * 64);
  }
  assert.equal(
    groups.reduce((n, g) => n + g.tiles.length, 0),
    planTiles(smallMaps(), fitted).length,
  );
});

test('preprocessing: gain and pedestal cancel; masked pixels read 0', () => {
  const random = seededRandom(3);
  const n = 64 * 64;
  const photons = new Float32Array(n);
  for (let i = 0; i < n; i++) photons[i] = Math.round(-Math.log(1 - random()) * 0.3) + (i === 500 ? 80 : 0);
  const valid = new Uint8Array(n).fill(1);
  valid[7] = 0;
  const a = photons.slice();
  preprocessTile(a, valid, n, { kind: 'robust-asinh', clipSigma: 3, clipIterations: 4 });
  const b = photons.map((v) => 25 * v + 1000);
  preprocessTile(b, valid, n, { kind: 'robust-asinh', clipSigma: 3, clipIterations: 4 });
  for (let i = 0; i < n; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-4, `pixel ${i}: ${a[i]} vs ${b[i]}`);
  assert.equal(a[7], 0);
  // The spot stands far above the photon-counting background, which is not blown up.
  assert.ok(a[500] > 4, `spot ${a[500]}`);
  let sum = 0;
  for (let i = 0; i < n; i++) if (i !== 500) sum += Math.abs(a[i]);
  assert.ok(sum / n < 1.5, `background ${sum / n}`);
});

test('fastAsinh: within one float32 step of Math.asinh, odd, exact at 0', () => {
  const random = seededRandom(11);
  const f32 = new Float32Array(2);
  let differ = 0;
  const n = 200_000;
  for (let i = 0; i < n; i++) {
    // Every scale the input meets: background (|a| < 8, the table), spots (up to 1e6 sigmas), tiny.
    const a = (random() - 0.5) * 10 ** (random() * 14 - 8);
    f32[0] = fastAsinh(a);
    f32[1] = Math.asinh(a);
    if (f32[0] !== f32[1]) {
      differ++;
      const ulp = Math.abs(f32[1]) * 2 ** -23 + 1e-45;
      assert.ok(Math.abs(f32[0] - f32[1]) <= ulp * 1.01, `asinh(${a}): ${f32[0]} vs ${f32[1]}`);
    }
    assert.equal(fastAsinh(-a), -fastAsinh(a));
  }
  assert.equal(fastAsinh(0), 0);
  // Rounding may differ now and then, never by more than a step.
  assert.ok(differ < n * 0.01, `${differ} of ${n} differ`);
});

/** The statistics as first specified: every good pixel, one accumulator, the quantum from a sorted sample. */
function referenceStatistics(values: Float32Array, valid: Uint8Array, clipSigma: number, iterations: number) {
  const good = [...values].filter((_, i) => valid[i]);
  let lo = Number.NEGATIVE_INFINITY;
  let hi = Number.POSITIVE_INFINITY;
  let level = 0;
  let noise = 0;
  let kept = good.length;
  for (let it = 0; it <= iterations; it++) {
    const inside = good.filter((v) => v >= lo && v <= hi);
    if (inside.length === 0) break;
    kept = inside.length;
    level = inside.reduce((a, b) => a + b, 0) / inside.length;
    noise = Math.sqrt(Math.max(0, inside.reduce((a, b) => a + b * b, 0) / inside.length - level * level));
    lo = level - clipSigma * noise;
    hi = level + clipSigma * noise;
  }
  const stride = Math.max(1, Math.floor(kept / 4096));
  const sample = good.filter((_, k) => k % stride === 0).sort((a, b) => a - b);
  let quantum = Number.POSITIVE_INFINITY;
  for (let i = 1; i < sample.length; i++) {
    const step = sample[i] - sample[i - 1];
    if (step > 0 && step < quantum) quantum = step;
  }
  if (!Number.isFinite(quantum)) quantum = 0;
  noise = Math.max(noise, quantum / 2);
  return { level, noise: noise > 0 ? noise : 1 };
}

test('tile statistics equal the plain definition: continuous values, counts above and below half a count of noise', () => {
  const random = seededRandom(5);
  const n = 128 * 96;
  const cases: [string, () => number][] = [
    ['CSPAD-like floats', () => 30 + 6 * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(6.283 * random())],
    ['photon counts at 0.05 per pixel', () => (random() < 0.05 ? 1 : 0) + (random() < 0.001 ? 40 : 0)],
    [
      'integer ADU, noise 3',
      () => Math.round(100 + 3 * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(6.283 * random())),
    ],
    ['a constant tile', () => 7],
  ];
  for (const [label, draw] of cases) {
    const values = Float32Array.from({ length: n }, draw);
    const valid = Uint8Array.from({ length: n }, () => (random() < 0.9 ? 1 : 0));
    const expected = referenceStatistics(values, valid, 3, 4);
    const got = tileStatistics(values, valid, n, { clipSigma: 3, clipIterations: 4 });
    assert.ok(
      Math.abs(got.level - expected.level) <= 1e-9 * Math.max(1, Math.abs(expected.level)),
      `${label}: level ${got.level} vs ${expected.level}`,
    );
    assert.ok(
      Math.abs(got.noise - expected.noise) <= 1e-9 * expected.noise,
      `${label}: noise ${got.noise} vs ${expected.noise}`,
    );
  }
});

test('componentPeaks: a spot on a panel seam stays two peaks; background-subtracted centroid', () => {
  const maps = smallMaps();
  const { ssSize, fsSize } = maps;
  const image = new Float32Array(ssSize * fsSize).fill(10);
  const marks = new Uint8Array(ssSize * fsSize);
  // Rows 62..65 straddle the seam between panel a (ss 0..63) and b (ss 64..127).
  for (let ss = 62; ss <= 65; ss++)
    for (let fs = 20; fs <= 22; fs++) {
      marks[ss * fsSize + fs] = 1;
      image[ss * fsSize + fs] = fs === 22 ? 110 : 20;
    }
  const peaks = componentPeaks(marks, image, ssSize, fsSize, maps.panelIndex, undefined, {
    minPixels: 1,
    maxPeaks: 10,
  });
  assert.equal(peaks.count, 2);
  for (let k = 0; k < 2; k++) {
    assert.equal(peaks.nPixels[k], 6);
    // Above the ring's level of 10: 10, 10, 100 per row -> centroid fs = (20*10+21*10+22*100)/120.
    assert.ok(Math.abs(peaks.fs[k] - (20 * 10 + 21 * 10 + 22 * 100) / 120) < 1e-4);
    assert.equal(peaks.totalIntensity[k], 2 * 120);
  }
  assert.ok(Math.abs(peaks.ss[0] - 62.5) < 1e-4 && Math.abs(peaks.ss[1] - 64.5) < 1e-4);
});

// A tiny model: trained a few steps, saved, exported, served.
const ready = (async () => {
  const trainer = await Trainer.create({
    model: 'peaknet-yocto-1x16-h16',
    training: { batch: 2, heightPx: 64, widthPx: 64, seed: 1 },
  });
  const image = new Float32Array(2 * 64 * 64);
  const target = new Uint8Array(2 * 64 * 64);
  const random = seededRandom(5);
  for (let i = 0; i < image.length; i++) image[i] = random();
  for (const centre of [300, 4096 + 2000]) {
    image[centre] = 50;
    target[centre] = 1;
  }
  for (let step = 0; step < 3; step++) await trainer.trainStep({ image, target });
  const checkpoint = join(dir, 'tiny.safetensors');
  trainer.save(checkpoint);
  await trainer.release();
  const modelPath = join(dir, 'tiny.onnx');
  await exportModel({
    checkpointPath: checkpoint,
    outPath: modelPath,
    tile: { heightPx: 64, widthPx: 64, overlapPx: 16 },
    decision: { marginLogit: 0, minPixels: 1 },
    data: 'three steps on noise',
  });
  return { checkpoint, modelPath };
})();

test('train -> export -> model file: metadata reads back; model info prints it', async () => {
  const { modelPath } = await ready;
  const { meta } = readModelFile(modelPath);
  assert.equal(meta.config.name, 'peaknet-yocto-1x16-h16');
  assert.equal(meta.params, 293127);
  assert.deepEqual(meta.tile, { heightPx: 64, widthPx: 64, overlapPx: 16 });
  assert.equal(meta.provenance.steps, 3);
  assert.equal(meta.provenance.data, 'three steps on noise');
  assert.equal(meta.decision.marginLogit, 0);
  const cli = runCli(['model', 'info', modelPath, '--json']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(JSON.parse(cli.stdout).tile.overlapPx, 16);
});

test('serving: batch sizes agree; masked pixels are never peak pixels; components stay on their panel', async () => {
  const { modelPath } = await ready;
  const file = readModelFile(modelPath);
  const maps = smallMaps();
  const n = maps.ssSize * maps.fsSize;
  const random = seededRandom(9);
  const image = new Float32Array(n);
  for (let i = 0; i < n; i++) image[i] = 5 * random();
  const mask = new Uint8Array(n).fill(1);
  for (let ss = 10; ss < 20; ss++) for (let fs = 0; fs < 64; fs++) mask[ss * 64 + fs] = 0;
  image[5 * 64 + 5] = Number.NaN;
  const one = await createPeakNetFinder(file, maps, mask, { batch: 1 });
  const three = await createPeakNetFinder(file, maps, mask, { batch: 3 });
  try {
    const m1 = (await one.margins(image)).slice();
    const m3 = await three.margins(image);
    for (let i = 0; i < n; i++) {
      if (!mask[i] || Number.isNaN(image[i]))
        assert.equal(m1[i], Number.NEGATIVE_INFINITY, `masked pixel ${i}`);
      else assert.ok(Math.abs(m1[i] - m3[i]) < 1e-3, `pixel ${i}`);
    }
    // A rule that makes every decided pixel a peak pixel: one component per panel, of exactly its
    // good pixels (the masked band splits nothing: it spans the panel's width, leaving two parts on a).
    const all = one.peaksFromMargins(m1, image, { marginLogit: -1e30, minPixels: 1 });
    assert.deepEqual(
      Array.from(all.nPixels.subarray(0, all.count)).sort((a, b) => a - b),
      [10 * 64 - 1, 44 * 64, 64 * 64],
    );
  } finally {
    await one.release();
    await three.release();
  }
});

test('panel-fitted serving: every good pixel decided once, masked ones never, the same answers per batch', async () => {
  const { modelPath } = await ready;
  const base = readModelFile(modelPath);
  const file = { ...base, meta: { ...base.meta, tile: { ...base.meta.tile, maxPx: 128 } } };
  // A 100 x 150 panel: one 128-row tile along ss, two overlapping 128-column tiles along fs.
  const maps = onePanelMaps(100, 150);
  const n = maps.ssSize * maps.fsSize;
  const random = seededRandom(4);
  const image = Float32Array.from({ length: n }, () => 5 * random());
  const mask = new Uint8Array(n).fill(1);
  for (let fs = 0; fs < 150; fs++) mask[50 * 150 + fs] = 0;
  const one = await createPeakNetFinder(file, maps, mask, { batch: 1 });
  const many = await createPeakNetFinder(file, maps, mask, { batch: 8 });
  try {
    assert.equal(one.tiles, 2);
    const m1 = (await one.margins(image)).slice();
    const m8 = await many.margins(image);
    for (let i = 0; i < n; i++) {
      if (!mask[i]) assert.equal(m1[i], Number.NEGATIVE_INFINITY, `masked pixel ${i}`);
      else {
        assert.ok(Number.isFinite(m1[i]), `pixel ${i} decided`);
        assert.ok(Math.abs(m1[i] - m8[i]) < 1e-3, `pixel ${i}`);
      }
    }
  } finally {
    await one.release();
    await many.release();
  }
});

test('a corrupt, foreign or newer model file is a one-line error naming the file', async () => {
  const garbage = join(dir, 'garbage.onnx');
  writeFileSync(garbage, Buffer.from('not a model at all, just text'));
  assert.throws(
    () => readModelFile(garbage),
    (e: unknown) => e instanceof UserError && /garbage\.onnx/.test(e.toLine()),
  );
  const foreign = join(dir, 'foreign.onnx');
  writeModel(
    buildPeakNet('peaknet-yocto-1x16-h16', { heightPx: 64, widthPx: 64, paramsAs: 'initializers' }).toOnnx(),
    foreign,
  );
  assert.throws(() => readModelFile(foreign), /without braggflow metadata/);
  const { modelPath } = await ready;
  const meta = JSON.parse(JSON.stringify(readModelFile(modelPath).meta));
  assert.throws(
    () =>
      parseModelFileMeta({ [MODEL_METADATA_KEY]: JSON.stringify({ ...meta, formatVersion: 99 }) }, 'm.onnx'),
    /model format 99/,
  );
  const truncated = join(dir, 'truncated.onnx');
  writeFileSync(truncated, readFileSync(modelPath).subarray(0, 5000));
  const cli = runCli([
    'peaks',
    '--method',
    'peaknet',
    '--model',
    truncated,
    '--geom',
    'x.geom',
    '--in',
    'x.cxi',
    '--out',
    join(dir, 'o.cxi'),
  ]);
  assert.equal(cli.code, 2);
  assert.equal(cli.stderr.trim().split('\n').length, 1, cli.stderr);
  assert.match(cli.stderr, /truncated\.onnx/);
});

test('peaks --method peaknet on the shared CSPAD frame writes one CXI row', { ...needsShared }, async () => {
  const { modelPath } = await ready;
  const out = join(dir, 'cspad-peaks.cxi');
  const cli = runCli([
    'peaks',
    '--method',
    'peaknet',
    '--model',
    modelPath,
    '--geom',
    sharedPath('data', 'real', 'cspad-thermolysin.geom'),
    '--in',
    sharedPath('data', 'real', 'cspad-thermolysin.cxi'),
    '--out',
    out,
    '--json',
  ]);
  assert.equal(cli.code, 0, cli.stderr);
  const report = JSON.parse(cli.stdout);
  assert.equal(report.frameCount, 1);
  const table = await readPeakTable(out);
  assert.equal(table.length, 1);
  assert.equal(table[0].count, Math.min(report.peakCount, 2048));
  const pf8Flag = runCli([
    'peaks',
    '--method',
    'peaknet',
    '--model',
    modelPath,
    '--threshold',
    '5',
    '--geom',
    'g',
    '--in',
    'i',
    '--out',
    'o',
  ]);
  assert.equal(pf8Flag.code, 2);
  assert.match(pf8Flag.stderr, /--threshold/);
});

test(
  "peaks --method peaknet with no --model serves the shipped model: peaks on the real CSPAD frame near DIALS' spots",
  needsShared,
  async () => {
    const out = join(dir, 'cspad-shipped.cxi');
    const cli = runCli([
      'peaks',
      '--method',
      'peaknet',
      '--geom',
      sharedPath('data', 'real', 'cspad-thermolysin.geom'),
      '--in',
      sharedPath('data', 'real', 'cspad-thermolysin.cxi'),
      '--out',
      out,
      '--json',
    ]);
    assert.equal(cli.code, 0, cli.stderr);
    const report = JSON.parse(cli.stdout);
    assert.equal(report.model, defaultModelPath());
    const [found] = await readPeakTable(out);
    assert.equal(found.count, report.peakCount);
    const dialsPath = sharedPath('data', 'real', 'cspad-thermolysin.dials-spots.json');
    const [dials] = parseJsonPeakLists(readFileSync(dialsPath, 'utf8'), dialsPath);
    const match = matchPeaks(found, dials, 2);
    // No setting was given; the model card has these figures (P 0.58, R 0.62 for the shipped model):
    // a regression guard, well below the goals (P >= 0.80, R >= 0.85) the model does not meet yet.
    assert.ok(found.count >= 50, `${found.count} peaks`);
    assert.ok(match.matched / found.count >= 0.5, `precision ${match.matched / found.count}`);
    assert.ok(match.matched / dials.count >= 0.5, `recall ${match.matched / dials.count}`);
  },
);

test(
  'peaks --method peaknet --workers 2: frames in parallel, the same peaks in input order',
  needsShared,
  async () => {
    const frame = sharedPath('data', 'real', 'cspad-thermolysin.cxi');
    const cbf = sharedPath('data', 'real', 'cspad-thermolysin.cbf');
    const tables = [];
    for (const workers of ['1', '2']) {
      const out = join(dir, `workers-${workers}.cxi`);
      const geom = sharedPath('data', 'real', 'cspad-thermolysin.geom');
      const cli = runCli([
        'peaks',
        '--method',
        'peaknet',
        '--geom',
        geom,
        '--in',
        frame,
        cbf,
        frame,
        '--out',
        out,
        '--workers',
        workers,
      ]);
      assert.equal(cli.code, 0, cli.stderr);
      tables.push(await readPeakTable(out));
    }
    const [one, two] = tables;
    assert.equal(two.length, 3);
    for (let f = 0; f < 3; f++) {
      assert.equal(two[f].count, one[f].count, `frame ${f}`);
      for (let k = 0; k < one[f].count; k++) {
        assert.ok(
          Math.abs(two[f].fs[k] - one[f].fs[k]) < 0.01 && Math.abs(two[f].ss[k] - one[f].ss[k]) < 0.01,
        );
      }
    }
    assert.ok(one[0].count > 0);
  },
);

// Debian's python3-onnx (the system python, not a pyenv one); .ci/run installs it.
const pythonOnnx = spawnSync('/usr/bin/python3', ['-c', 'import onnx'], { encoding: 'utf8' });
const needsPythonOnnx = pythonOnnx.status === 0 ? {} : { skip: 'Debian python3-onnx is not installed' };

test(
  "the exported model file passes the onnx package's full checker, metadata intact",
  needsPythonOnnx,
  async () => {
    const { modelPath } = await ready;
    const check = spawnSync(
      '/usr/bin/python3',
      [
        '-c',
        'import json, sys, onnx\nm = onnx.load(sys.argv[1])\nonnx.checker.check_model(m, full_check=True)\nprint(json.loads({p.key: p.value for p in m.metadata_props}["braggflow"])["tile"]["heightPx"])',
        modelPath,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(check.status, 0, check.stderr);
    assert.equal(check.stdout.trim(), '64');
  },
);
