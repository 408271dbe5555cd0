import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { exportModel } from '../../src/infer/export.js';
import { readModelFile } from '../../src/infer/model-file.js';
import {
  calibrationTensors,
  float16Bits,
  float16Value,
  fp16Weights,
  quantizeQdq,
  quantizeWeightPerChannel,
  RangeCollector,
  uint8Params,
  withExtraOutputs,
} from '../../src/infer/precision.js';
import { readPeakTable } from '../../src/io/cxi-peaks.js';
import { decodeModel, encodeModel } from '../../src/nn/onnx/emit.js';
import { createSession, type Session } from '../../src/nn/runtime.js';
import { Trainer } from '../../src/train/trainer.js';
import { seededRandom } from '../../src/util/random.js';
import { runCli } from '../helpers.js';
import { smallGeometryText } from '../peaks/pf8-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-precision-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const TILE = 64;
const TILE_SPEC = { heightPx: TILE, widthPx: TILE, overlapPx: 16 };
const RULE = { marginLogit: 0, minPixels: 1 };

/** Tiles like preprocessed ones: unit noise and a few bright 2x2 spots. */
function tiles(batch: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  const x = new Float32Array(batch * TILE * TILE);
  for (let i = 0; i < x.length; i++) x[i] = 2 * random() - 1;
  for (let s = 0; s < 6 * batch; s++) {
    const c = Math.floor(random() * (x.length - TILE - 1));
    for (const d of [0, 1, TILE, TILE + 1]) x[c + d] = 3 + 4 * random();
  }
  return x;
}

async function logits(session: Session, x: Float32Array): Promise<Float32Array> {
  const out = await session.run({
    image: { dataType: 'float32', dims: [x.length / (TILE * TILE), 1, TILE, TILE], values: x },
  });
  return out.logits.values as Float32Array;
}

// A model with non-trivial weights: a few steps on spot tiles (a fresh net's GRN and fusion weights
// start at identities that quantisation would pass through trivially).
const ready = (async () => {
  const trainer = await Trainer.create({
    model: 'peaknet-yocto-1x16-h16',
    training: {
      batch: 2,
      heightPx: TILE,
      widthPx: TILE,
      schedule: { peakLr: 3e-3, warmupSteps: 0, totalSteps: 10, minLr: 3e-3 },
    },
  });
  const image = tiles(2, 1);
  const target = new Uint8Array(image.length / 1);
  for (let i = 0; i < image.length; i++) target[i] = image[i] > 2 ? 1 : 0;
  for (let step = 0; step < 4; step++) await trainer.trainStep({ image, target });
  const checkpoint = join(dir, 'model.safetensors');
  trainer.save(checkpoint);
  await trainer.release();
  const modelPath = join(dir, 'model.onnx');
  await exportModel({ checkpointPath: checkpoint, outPath: modelPath, tile: TILE_SPEC, decision: RULE });
  return { checkpoint, modelPath };
})();

test('float16 bits: exact values, rounding to nearest even, overflow, subnormals', () => {
  assert.equal(float16Bits(1), 0x3c00);
  assert.equal(float16Bits(-2), 0xc000);
  assert.equal(float16Bits(65504), 0x7bff);
  assert.equal(float16Bits(65520), 0x7c00); // halfway above the largest half: rounds to infinity
  assert.equal(float16Bits(2 ** -24), 0x0001);
  assert.equal(float16Bits(2 ** -26), 0);
  assert.equal(float16Bits(0.1), 0x2e66);
  // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10): ties go to the even mantissa.
  assert.equal(float16Bits(1 + 2 ** -11), 0x3c00);
  assert.equal(float16Bits(1 + 3 * 2 ** -11), 0x3c02);
  assert.ok(Number.isNaN(float16Value(float16Bits(Number.NaN))));
  const random = seededRandom(3);
  for (let i = 0; i < 2000; i++) {
    const v = (random() - 0.5) * 2 ** (Math.floor(random() * 30) - 14);
    const back = float16Value(float16Bits(v));
    assert.ok(Math.abs(back - v) <= Math.abs(v) * 2 ** -11 + 2 ** -25, `${v} -> ${back}`);
  }
});

test('int8 helpers: per-channel weights within half a step; uint8 ranges keep zero exact', () => {
  const values = Float32Array.from([0.5, -0.25, 0.1, 0, 3, -6, 1.5, 0.001]);
  const { tensor, scales } = quantizeWeightPerChannel({
    name: 'w',
    dataType: 'float32',
    dims: [2, 4],
    values,
  });
  assert.equal(scales[0], Math.fround(0.5 / 127));
  assert.equal(scales[1], Math.fround(6 / 127));
  const q = tensor.values as Int8Array;
  assert.equal(q[0], 127);
  assert.equal(q[5], -127);
  for (let i = 0; i < values.length; i++)
    assert.ok(Math.abs(q[i] * scales[i >> 2] - values[i]) <= scales[i >> 2] / 2 + 1e-9, `weight ${i}`);
  const { scale, zeroPoint } = uint8Params({ min: -1, max: 3 });
  assert.equal(zeroPoint, Math.round(1 / scale));
  assert.ok(Math.abs(zeroPoint * scale - 1) < scale / 2);
  // A range that excludes zero is widened to include it (padding pixels are exactly 0).
  assert.equal(uint8Params({ min: 2, max: 5 }).zeroPoint, 0);
});

test('model files have a symbolic batch: one session serves batches of 1 and 3 alike', async () => {
  const { modelPath } = await ready;
  const file = readModelFile(modelPath);
  assert.equal(file.dynamicBatch, true);
  const spec = decodeModel(file.bytes, modelPath);
  assert.deepEqual(spec.inputs[0].dims, ['batch', 1, TILE, TILE]);
  assert.deepEqual(spec.outputs[0].dims, ['batch', 2, TILE, TILE]);
  const session = await createSession(file.bytes, { intraOpThreads: 1 });
  try {
    const x = tiles(3, 7);
    const three = await logits(session, x);
    for (let b = 0; b < 3; b++) {
      const one = await logits(session, x.subarray(b * TILE * TILE, (b + 1) * TILE * TILE));
      const part = three.subarray(b * one.length, (b + 1) * one.length);
      for (let i = 0; i < one.length; i++)
        assert.ok(Math.abs(one[i] - part[i]) < 1e-4, `tile ${b} value ${i}`);
    }
  } finally {
    await session.release();
  }
});

test('fp16 weights and int8 QDQ: the same interface, logits close to fp32, every conv quantised', async () => {
  const { modelPath } = await ready;
  const spec = decodeModel(readModelFile(modelPath).bytes, modelPath);
  const names = calibrationTensors(spec);
  const probe = await createSession(encodeModel(withExtraOutputs(spec, names)), { intraOpThreads: 1 });
  const collector = new RangeCollector();
  for (const seed of [11, 12]) {
    const out = await probe.run({
      image: { dataType: 'float32', dims: [4, 1, TILE, TILE], values: tiles(4, seed) },
    });
    for (const n of names) collector.add(n, out[n].values as Float32Array);
  }
  await probe.release();
  const int8 = quantizeQdq(spec, collector.ranges);
  // Every conv reads its weight through a DequantizeLinear of an int8 initialiser; no float conv
  // weight is left, and the convs' float outputs feed only their QuantizeLinear (or the graph output).
  const init = new Map(int8.initializers.map((t) => [t.name, t]));
  const producer = new Map(int8.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const convs = int8.nodes.filter((n) => n.opType === 'Conv');
  assert.equal(convs.length, 44);
  for (const conv of convs) {
    const dq = producer.get(conv.inputs[1]);
    assert.equal(dq?.opType, 'DequantizeLinear', conv.name);
    assert.equal(init.get(dq?.inputs[0] ?? '')?.dataType, 'int8');
    assert.equal(producer.get(conv.inputs[0])?.opType, 'DequantizeLinear');
    const consumers = int8.nodes.filter((n) => n.inputs.includes(conv.outputs[0]));
    if (conv.outputs[0] !== 'logits')
      assert.deepEqual(
        consumers.map((n) => n.opType),
        ['QuantizeLinear'],
      );
  }
  const sessions = await Promise.all(
    [spec, fp16Weights(spec), int8].map((s) => createSession(encodeModel(s), { intraOpThreads: 1 })),
  );
  try {
    const x = tiles(2, 21);
    const [base, half, quant] = await Promise.all(sessions.map((s) => logits(s, x)));
    let spread = 0;
    let halfError = 0;
    let quantError = 0;
    for (let i = 0; i < base.length; i++) {
      spread += base[i] * base[i];
      halfError = Math.max(halfError, Math.abs(half[i] - base[i]));
      quantError += (quant[i] - base[i]) ** 2;
    }
    const rms = Math.sqrt(spread / base.length);
    assert.ok(halfError < 0.01 * rms + 1e-3, `fp16 weights: max error ${halfError}, logit rms ${rms}`);
    const quantRms = Math.sqrt(quantError / base.length);
    // Measured here: error 10 % of the logits' rms, margins correlated at 0.988 (a 4-step model).
    const corr = correlation(margins(base), margins(quant));
    assert.ok(quantRms < 0.15 * rms, `int8: error rms ${quantRms}, logit rms ${rms}`);
    assert.ok(corr > 0.97, `int8: margins correlate with fp32's at ${corr}`);
    assert.ok(quantRms > 0, 'int8 changes the arithmetic');
  } finally {
    for (const s of sessions) await s.release();
  }
});

test('export --int8 / --fp16 from a model file: calibrated, reported, served by peaks, accepted by onnx', async () => {
  const { modelPath } = await ready;
  const geom = join(dir, 'small.geom');
  writeFileSync(geom, smallGeometryText);
  const run = join(dir, 'run.cxi');
  const sim = runCli([
    'simulate',
    '--geom',
    geom,
    '--out',
    run,
    '--frames',
    '3',
    '--hit-rate',
    '1',
    '--preset',
    'lysozyme',
  ]);
  assert.equal(sim.code, 0, sim.stderr);
  // --int8 needs frames: a one-line error naming the flag.
  const bare = runCli(['export', '--model', modelPath, '--out', join(dir, 'x.onnx'), '--int8']);
  assert.equal(bare.code, 2);
  assert.match(bare.stderr.trim(), /^braggflow: --int8: needs calibration frames/);
  assert.equal(bare.stderr.trim().split('\n').length, 1);
  const outs: Record<string, string> = {};
  for (const flag of ['--int8', '--fp16']) {
    const out = join(dir, `model${flag}.onnx`);
    const cli = runCli([
      'export',
      '--model',
      modelPath,
      '--out',
      out,
      flag,
      '--calibrate',
      run,
      '--geom',
      geom,
      '--json',
    ]);
    assert.equal(cli.code, 0, cli.stderr);
    const report = JSON.parse(cli.stdout);
    assert.equal(report.metadata.precision, flag === '--int8' ? 'int8-qdq' : 'fp16-weights');
    assert.deepEqual(report.inputs[0].dims, ['batch', 1, TILE, TILE]);
    assert.equal(report.calibration.frames, 3);
    for (const key of ['f1', 'secondsPerFrame']) {
      assert.equal(typeof report.calibration[key], 'number');
      assert.equal(typeof report.calibration.fp32[key], 'number');
    }
    if (flag === '--int8') assert.equal(report.calibration.quantised.convs, 44);
    assert.match(report.metadata.decision.chosenBy, /best peak F1/);
    assert.ok(statSync(out).size < 0.6 * statSync(modelPath).size, `${flag}: ${statSync(out).size} bytes`);
    outs[flag] = out;
    // Served as any model file; a quantised file refuses to be re-exported.
    const peaks = join(dir, `peaks${flag}.cxi`);
    const served = runCli([
      'peaks',
      '--method',
      'peaknet',
      '--model',
      out,
      '--geom',
      geom,
      '--in',
      run,
      '--out',
      peaks,
    ]);
    assert.equal(served.code, 0, served.stderr);
    assert.equal((await readPeakTable(peaks)).length, 3);
  }
  const again = runCli(['export', '--model', outs['--int8'], '--out', join(dir, 'y.onnx'), '--fp16']);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /is a int8-qdq model file; export from its fp32 file or checkpoint/);
  const python = spawnSync('/usr/bin/python3', ['-c', 'import onnx'], { encoding: 'utf8' });
  if (python.status !== 0) return; // the checker half needs Debian's python3-onnx (.ci/run installs it)
  for (const out of Object.values(outs)) {
    const check = spawnSync(
      '/usr/bin/python3',
      ['-c', 'import sys, onnx\nonnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)', out],
      { encoding: 'utf8' },
    );
    assert.equal(check.status, 0, check.stderr);
  }
});

function margins(logits: Float32Array): Float64Array {
  const n = TILE * TILE;
  const out = new Float64Array(logits.length / 2);
  for (let b = 0; b < out.length / n; b++)
    for (let i = 0; i < n; i++) out[b * n + i] = logits[(2 * b + 1) * n + i] - logits[2 * b * n + i];
  return out;
}
function correlation(x: Float64Array, y: Float64Array): number {
  let mx = 0;
  let my = 0;
  for (let i = 0; i < x.length; i++) {
    mx += x[i] / x.length;
    my += y[i] / y.length;
  }
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < x.length; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}
