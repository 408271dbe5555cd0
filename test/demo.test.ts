import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { defaultGeometryText } from '../src/detector/default-geometry.js';
import { persistentHotPixels } from '../src/detector/hot-pixels.js';
import { computePixelMaps } from '../src/detector/pixel-maps.js';
import { evaluatePeaks } from '../src/engine/eval.js';
import { defaultModelPath } from '../src/infer/default-model.js';
import { readModelFile } from '../src/infer/model-file.js';
import { planTiles } from '../src/infer/tiling.js';
import { readPeakTable } from '../src/io/cxi-peaks.js';
import { openFrameReader } from '../src/io/cxi-reader.js';
import { parseGeometry } from '../src/io/geom.js';
import { runCli } from './helpers.js';

test('braggflow demo simulates, tunes pf8, serves the shipped model and scores all three on held-out frames', async () => {
  const out = mkdtempSync(join(tmpdir(), 'bf-demo-'));
  const result = runCli([
    'demo',
    '--out',
    out,
    '--frames',
    '3',
    '--hit-rate',
    '1',
    '--grid',
    'threshold=10,800;min-snr=4,5',
    '--workers',
    '1',
    '--json',
  ]);
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.equal(report.detector.panels, 4);
  assert.deepEqual(report.detector.slabShape, [2048, 512]);

  // The physics simulator's run, with its truth, read back identical.
  assert.equal(report.run.frames, 3);
  assert.equal(report.run.hits, 3);
  assert.equal(report.run.preset, 'thermolysin');
  assert.equal(report.run.readBackIdentical, true);
  assert.ok(existsSync(report.run.streamPath));
  const truth = await readPeakTable(report.run.path, '/entry_1/truth_1');
  assert.equal(truth.length, 3);
  assert.equal(
    truth.reduce((sum, t) => sum + t.count, 0),
    report.run.truthPeaks,
  );
  assert.ok(report.run.truthPeaks > 0);
  const masks = await openFrameReader(report.run.path, { dataPath: '/entry_1/truth_1/mask' });
  assert.equal(masks.frameCount, 3);
  masks.close();

  // The simulator's detector has hot pixels (fixed per run): found on the training frames, masked.
  assert.ok(Number.isInteger(report.hotPixels) && report.hotPixels > 0);

  // The last third is held out from tuning.
  assert.deepEqual(report.split.trainFrames, [0, 1]);
  assert.deepEqual(report.split.heldOutFrames, [2]);
  assert.equal(report.split.heldOutTruthPeaks, truth[2].count);

  // pf8: the defaults are indexamajig's; the tuned set comes from the grid given, written for peaks --params.
  assert.equal(report.pf8.defaults.adcThreshold, 800);
  assert.equal(report.pf8.tuning.configurations, 4);
  assert.ok([10, 800].includes(report.pf8.tuned.adcThreshold));
  const paramsFile = JSON.parse(readFileSync(report.pf8.paramsPath, 'utf8'));
  assert.equal(paramsFile.method, 'pf8');
  assert.deepEqual(paramsFile.params, report.pf8.tuned);

  // The shipped model file, as its metadata says; served per panel (4 modules of 512 x 512).
  const shipped = readModelFile(defaultModelPath());
  assert.equal(report.model.path, defaultModelPath());
  assert.equal(report.model.config, shipped.meta.config.name);
  assert.deepEqual(report.model.decision, shipped.meta.decision);
  assert.ok(report.model.trainingSteps > 0);
  assert.equal(
    report.inference.tiles,
    planTiles(computePixelMaps(parseGeometry(defaultGeometryText, 'embedded')), shipped.meta.tile).length,
  );
  assert.ok(report.inference.mpixPerS > 0);
  assert.deepEqual(report.inference.frames, [2]);

  // Three methods on the held-out frames, each scored as braggflow eval scores the table it wrote.
  assert.deepEqual(
    report.heldOut.map((s: { method: string }) => s.method),
    ['pf8 defaults', 'pf8 tuned', `peaknet (${shipped.meta.config.name})`],
  );
  for (const score of report.heldOut) {
    const written = await readPeakTable(score.peaksPath);
    assert.equal(written.length, 1);
    assert.equal(written[0].count, score.found);
    const again = evaluatePeaks([truth[2]], written, { radiusPx: report.radiusPx, minPeaks: 15 });
    assert.equal(again.micro.truePositives, score.truePositives);
    assert.equal(again.micro.f1, score.f1);
    assert.ok(score.precision >= 0 && score.precision <= 1 && score.recall >= 0 && score.recall <= 1);
  }
  const [defaults, tuned, model] = report.heldOut;
  assert.equal(model.peaksPath, report.peaksPath);
  assert.equal(model.f1, report.inference.f1);
  // On this detector (1 ADU per photon) 800 ADU misses most spots; a threshold tuned on the
  // training frames' truth finds them on the held-out frame too.
  assert.ok(tuned.recall > defaults.recall, `tuned recall ${tuned.recall} vs defaults ${defaults.recall}`);

  // The whole run through the in-process pipeline: every frame accounted for, the hits in a CXI
  // with its list and geometry, and a PNG of the richest hit.
  const stream = report.pipeline;
  assert.equal(stream.frames, 3);
  assert.equal(stream.lost, 0);
  assert.equal(stream.rows, stream.hits);
  assert.equal((await readPeakTable(stream.outputs.cxi)).length, stream.rows);
  assert.equal(
    readFileSync(stream.outputs.lst, 'utf8')
      .trim()
      .split('\n')
      .filter((l: string) => l !== '').length,
    stream.rows,
  );
  assert.match(readFileSync(stream.outputs.geom, 'utf8'), /^peak_list = \/entry_1\/result_1$/m);
  assert.equal(JSON.parse(readFileSync(stream.outputs.summary, 'utf8')).frames, 3);
  if (stream.hits > 0) {
    assert.deepEqual([...readFileSync(stream.outputs.png).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    assert.ok(stream.pngPeaks >= 10);
  }
  assert.match(result.stderr, /^pipeline {2}.*through the in-process pipeline/m);

  // Progress and the side-by-side table go to stderr with --json, so stdout stays machine-readable.
  assert.match(result.stderr, /^model {5}.*peaknet-default\.onnx/m);
  assert.match(result.stderr, /method\s+precision\s+recall\s+F1/);
  assert.match(result.stderr, /pf8 tuned\s+\d\.\d{3}\s+\d\.\d{3}\s+\d\.\d{3}/);
});

test('persistentHotPixels flags pixels bright on most frames, not a spot that moves', () => {
  const frames = [0, 1, 2, 3].map((f) => {
    const image = new Float32Array(16).fill(3);
    image[5] = 2000; // hot on every frame
    image[6 + (f % 2)] = f < 3 ? 500 : 3; // bright on 2 of 4 frames at pixel 6, 1 at pixel 7
    image[10] = f < 3 ? 150 : 3; // bright on 3 of 4
    return image;
  });
  const hot = persistentHotPixels(frames, 1);
  assert.deepEqual(
    [...hot.keys()].filter((i) => hot[i]),
    [5, 10],
  );
  // 100 photons' worth at 10 ADU per photon is 1000 ADU: only pixel 5.
  const hot10 = persistentHotPixels(frames, 10);
  assert.deepEqual(
    [...hot10.keys()].filter((i) => hot10[i]),
    [5],
  );
});

test('braggflow demo rejects a bad option with one line', () => {
  for (const [args, message] of [
    [['--frames', 'many'], /--frames must be a positive integer/],
    [['--preset', 'insulin'], /unknown preset 'insulin'/],
    [['--model', '/nonexistent/m.onnx'], /\/nonexistent\/m\.onnx: no such file/],
  ] as const) {
    const result = runCli(['demo', ...args]);
    assert.equal(result.code, 2);
    assert.equal(result.stderr.trim().split('\n').length, 1);
    assert.match(result.stderr, message);
  }
});
