import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { geometryMask } from '../../src/detector/mask.js';
import { exportModel } from '../../src/infer/export.js';
import { DEFAULT_PREPROCESSING, readModelFile } from '../../src/infer/model-file.js';
import { readSafetensors } from '../../src/nn/checkpoint.js';
import { createPeakList } from '../../src/peaks/peak-list.js';
import { createBatchLoader, createBatchMaker } from '../../src/train/batches.js';
import { parseTrainConfig, type TrainConfig } from '../../src/train/config.js';
import type { TrainingFrame } from '../../src/train/frame-source.js';
import { runTraining } from '../../src/train/run-training.js';
import { createTileSampler } from '../../src/train/tile-sampler.js';
import { Trainer } from '../../src/train/trainer.js';
import { UserError } from '../../src/util/errors.js';
import { seededRandom } from '../../src/util/random.js';
import { runCli } from '../helpers.js';
import { smallMaps } from '../peaks/pf8-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-train-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A config small enough for tests: 64 x 64 tiles of made-up detectors of a few panels. */
function tinyConfig(overrides: Record<string, unknown> = {}): TrainConfig {
  return parseTrainConfig({
    steps: 4,
    batch: 2,
    logEvery: 1,
    evalEvery: 2,
    checkpointEvery: 2,
    tile: { heightPx: 64, widthPx: 64, overlapPx: 16 },
    schedule: { peakLr: 2e-3, warmupSteps: 1, minLr: 1e-4 },
    validation: { framesPerSource: 1 },
    data: {
      sources: [
        {
          kind: 'simulate',
          geometries: [
            {
              kind: 'synthetic',
              panelRowsPx: [60, 100],
              panelColsPx: [60, 100],
              gridRows: [1, 2],
              gridCols: [1, 2],
              pixelUm: [100, 172],
              clenM: [0.1, 0.2],
              photonEnergyEv: [9000, 12000],
              maxPixels: 40000,
            },
          ],
          presets: ['lysozyme'],
          framesPerDetector: 2,
        },
      ],
      tilesPerFrame: 2,
    },
    ...overrides,
  });
}

test('train config: defaults filled in; a mistake names the file and the field', () => {
  const config = tinyConfig();
  assert.equal(config.model, 'peaknet-yocto-1x16-h16');
  assert.equal(config.augment.flips, true);
  const source = config.data.sources[0];
  assert.equal(source.kind, 'simulate');
  assert.deepEqual(source.kind === 'simulate' && source.gainAduPerPhoton, [1, 50]);
  const bad = (raw: unknown, field: RegExp, message: RegExp) => {
    try {
      parseTrainConfig(raw, 'c.json');
      assert.fail('accepted');
    } catch (error) {
      assert.ok(error instanceof UserError, String(error));
      assert.match(error.toLine(), /^c\.json: /);
      assert.match(error.where ?? '', field);
      assert.match(error.message, message);
    }
  };
  const data = { sources: [{ kind: 'simulate', geometries: ['embedded'] }] };
  bad({ data }, /^steps$/, /number/);
  bad(
    { steps: 5, data: { sources: [{ kind: 'simulate', geometries: ['embedded'], presets: ['lysozym'] }] } },
    /data\.sources\.0\.presets\.0/,
    /unknown preset 'lysozym'/,
  );
  bad({ steps: 5, data, tile: { heightPx: 100, widthPx: 64, overlapPx: 0 } }, /tile\.heightPx/, /multiple/);
  bad(
    { steps: 5, data: { sources: [{ kind: 'simulate', geometries: ['embedded'], fluenceScale: [3, 1] }] } },
    /fluenceScale/,
    /low <= high/,
  );
  bad({ steps: 5, model: 'peaknet-nope', data }, /^model$/, /nope/);
});

/** Two 32 x 64 panels stacked in the slab: panel 0 reads 10 + noise, panel 1 is all peak in the mask. */
function twoPanelFrame(gain = 1, pedestal = 0): TrainingFrame {
  const maps = smallMaps();
  const n = maps.ssSize * maps.fsSize;
  const random = seededRandom(5);
  const image = new Float32Array(n);
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const photons = Math.round(3 + 2 * random()) + (maps.panelIndex[i] === 1 ? 40 : 0);
    image[i] = photons * gain + pedestal;
    mask[i] = maps.panelIndex[i] === 1 ? 1 : 0;
  }
  return {
    image,
    mask,
    truth: createPeakList(),
    maps,
    goodPixels: geometryMask(maps),
    aduPerPhoton: gain,
    label: 'test',
  };
}

const noAugment: TrainConfig['augment'] = {
  flips: false,
  rot90: false,
  gainScale: [1, 1],
  pedestalNoise: [0, 0],
  renoise: 0,
  maskedRegion: 0,
  hotPixels: 0,
  outliers: 0,
};

test('tile sampler: one panel per tile, padding after it, as serving cuts; gain and pedestal cancel', () => {
  const frame = twoPanelFrame();
  const H = 64;
  const W = 96;
  const sample = (augment: TrainConfig['augment'], f: TrainingFrame, seed: number) => {
    const sampler = createTileSampler({
      tile: { heightPx: H, widthPx: W },
      preprocessing: DEFAULT_PREPROCESSING,
      spotTileFraction: 0,
      smallPanelFraction: 0.5,
      augment,
    });
    const values = new Float32Array(H * W);
    const target = new Uint8Array(H * W);
    sampler.sample(f, seededRandom(seed), values, target);
    return { values, target };
  };
  const panels = frame.maps.geometry.panels;
  let sawSmall = false;
  for (let seed = 1; seed <= 40; seed++) {
    const augment = { ...noAugment, flips: true, rot90: true };
    const { values, target } = sample(augment, frame, seed);
    // Non-padding pixels (nonzero input: no pixel of this frame preprocesses to exactly 0 for long)
    // form a rectangle at the origin no larger than a panel.
    let rows = 0;
    let cols = 0;
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W; c++)
        if (values[r * W + c] !== 0 || target[r * W + c] !== 0) {
          rows = Math.max(rows, r + 1);
          cols = Math.max(cols, c + 1);
        }
    const panelRows = panels[0].maxSs - panels[0].minSs + 1;
    const panelCols = panels[0].maxFs - panels[0].minFs + 1;
    assert.ok(
      rows <= Math.max(panelRows, panelCols) && cols <= Math.max(panelRows, panelCols),
      `seed ${seed}`,
    );
    if (rows < panelRows) sawSmall = true;
    // Never both panels: the target is all peak or all background inside the window.
    let peak = 0;
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) peak += target[r * W + c];
    assert.ok(
      peak === 0 || peak === rows * cols,
      `seed ${seed}: the tile mixes panels (${peak} of ${rows * cols})`,
    );
  }
  assert.ok(sawSmall, 'small-panel windows are drawn');
  // The same tile choices on a detector 25x the gain with a 1000 ADU pedestal: the same model input.
  const scaled = twoPanelFrame(25, 1000);
  for (const seed of [3, 7, 11]) {
    const a = sample(noAugment, frame, seed);
    const b = sample(noAugment, scaled, seed);
    assert.deepEqual(b.target, a.target);
    for (let i = 0; i < a.values.length; i++)
      assert.ok(Math.abs(a.values[i] - b.values[i]) < 1e-4, `pixel ${i}`);
  }
});

test('outliers augmentation: bright 1-3 pixel clusters in the background, never labelled', () => {
  const frame = twoPanelFrame();
  const H = 64;
  const W = 96;
  const sample = (outliers: number, seed: number) => {
    const sampler = createTileSampler({
      tile: { heightPx: H, widthPx: W },
      preprocessing: DEFAULT_PREPROCESSING,
      spotTileFraction: 0,
      smallPanelFraction: 0,
      augment: { ...noAugment, outliers },
    });
    const values = new Float32Array(H * W);
    const target = new Uint8Array(H * W);
    sampler.sample(frame, seededRandom(seed), values, target);
    return { values, target };
  };
  let background = 0;
  for (let seed = 1; seed <= 12; seed++) {
    const plain = sample(0, seed);
    const heavy = sample(1, seed);
    assert.deepEqual(heavy.target, plain.target, `seed ${seed}: labels unchanged`);
    if (plain.target.some((t) => t === 1)) continue;
    background++;
    // Counting noise of 3-5 photons never reaches asinh(4); the clusters do, on a few pixels.
    const bright = (v: Float32Array) => v.filter((x) => x > Math.asinh(4)).length;
    assert.equal(bright(plain.values), 0, `seed ${seed}`);
    const n = bright(heavy.values);
    assert.ok(n > 0 && n < 0.1 * H * W, `seed ${seed}: ${n} bright pixels`);
  }
  assert.ok(background > 0, 'background tiles drawn');
});

test('batches are a function of the step: in this thread and on a worker, fresh makers agree', async () => {
  const config = tinyConfig();
  const a = await createBatchMaker(config);
  const b = await createBatchMaker(config);
  const late = await b.make(5);
  await b.make(0);
  const again = await a.make(5);
  assert.deepEqual(again.image, late.image);
  assert.deepEqual(again.target, late.target);
  const other = await a.make(6);
  assert.notDeepEqual(other.image, late.image);
  a.close();
  b.close();
  const loader = await createBatchLoader(config, 5, { workers: 1, ahead: 2 });
  try {
    const fromWorker = await loader.next();
    assert.deepEqual(fromWorker.image, late.image);
    assert.deepEqual(fromWorker.target, late.target);
    assert.deepEqual((await loader.next()).image, other.image);
  } finally {
    await loader.close();
  }
});

test('gradient accumulation: 2 runs of batch 2 make the update of one run of batch 4', async () => {
  const config = tinyConfig();
  const maker = await createBatchMaker(config);
  const [x, y] = [await maker.make(0), await maker.make(1)];
  maker.close();
  const training = {
    heightPx: 64,
    widthPx: 64,
    seed: 3,
    schedule: { peakLr: 1e-3, warmupSteps: 0, totalSteps: 10, minLr: 1e-3 },
  };
  const accumulated = await Trainer.create({
    model: config.model,
    training: { ...training, batch: 2, accumulation: 2 },
  });
  const whole = await Trainer.create({ model: config.model, training: { ...training, batch: 4 } });
  try {
    const first = await accumulated.trainStep(x);
    assert.equal(first.updated, false);
    assert.equal(accumulated.step, 0);
    assert.throws(() => accumulated.save(join(dir, 'mid.safetensors')), /unfinished accumulation/);
    const second = await accumulated.trainStep(y);
    assert.equal(second.updated, true);
    assert.equal(accumulated.step, 1);
    const joined = {
      image: Float32Array.from([...x.image, ...y.image]),
      target: Uint8Array.from([...x.target, ...y.target]),
    };
    await whole.trainStep(joined);
    let largest = 0;
    accumulated.weights.forEach((p, k) => {
      const q = whole.weights[k].values;
      for (let i = 0; i < p.values.length; i++) largest = Math.max(largest, Math.abs(p.values[i] - q[i]));
    });
    assert.ok(largest < 2e-5, `weights differ by ${largest}`);
  } finally {
    await accumulated.release();
    await whole.release();
  }
});

test('train: metrics, curves, model file; a run stopped and resumed ends bit-identical to one that was not', async () => {
  const config = tinyConfig();
  const quiet = () => {};
  const straight = await runTraining({ config, outDir: join(dir, 'straight'), log: quiet, workers: 0 });
  assert.equal(straight.finished, true);
  assert.equal(straight.step, 4);
  // maxSeconds 0: save and stop after the first update; then go on.
  const first = await runTraining({
    config,
    outDir: join(dir, 'chunked'),
    log: quiet,
    workers: 0,
    maxSeconds: 0,
  });
  assert.equal(first.finished, false);
  assert.equal(first.step, 1);
  assert.equal(first.modelPath, undefined);
  const rest = await runTraining({ config, outDir: join(dir, 'chunked'), log: quiet, workers: 1 });
  assert.equal(rest.startStep, 1);
  assert.equal(rest.finished, true);
  const weights = (name: string) => readSafetensors(join(dir, name, 'checkpoint.safetensors')).tensors;
  const a = weights('straight');
  const b = weights('chunked');
  assert.ok(a.size > 0);
  assert.deepEqual([...b.keys()], [...a.keys()]);
  for (const [name, t] of a) assert.deepEqual(b.get(name)?.data, t.data, name);
  // Metrics: a row per step (logEvery 1) and a validation at steps 2 and 4.
  const rows = readFileSync(join(dir, 'straight', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    rows.filter((r) => r.loss !== undefined).map((r) => r.step),
    [1, 2, 3, 4],
  );
  const evals = rows.filter((r) => r.validation !== undefined);
  assert.deepEqual(
    evals.map((r) => r.step),
    [2, 4],
  );
  for (const { validation } of evals) {
    assert.ok(validation.f1 >= 0 && validation.f1 <= 1);
    assert.ok(validation.pixelIou >= 0 && validation.pixelIou <= 1);
    assert.ok(validation.truthPeaks > 0, 'validation frames hold spots');
  }
  const svg = readFileSync(join(dir, 'straight', 'curves.svg'), 'utf8');
  assert.match(svg, /^<svg/);
  assert.match(svg, /held-out peak F1/);
  const file = readModelFile(straight.modelPath as string);
  assert.equal(file.meta.provenance.steps, 4);
  assert.equal(file.meta.truthMinSnr, 3, 'the truth rule of its simulated labels');
  assert.deepEqual(file.meta.tile, { heightPx: 64, widthPx: 64, overlapPx: 16 });
  assert.match(file.meta.decision.chosenBy ?? '', /held-out simulated frames/);
  assert.deepEqual(
    { marginLogit: file.meta.decision.marginLogit, minPixels: file.meta.decision.minPixels },
    straight.validation?.rule,
  );
});

test('train with init: a fine-tuning phase starts from the weights of another run and counts its steps', async () => {
  const quiet = () => {};
  const base = await runTraining({
    config: tinyConfig({ steps: 2, evalEvery: 2, checkpointEvery: 2 }),
    outDir: join(dir, 'base'),
    log: quiet,
    workers: 0,
  });
  const init = join(dir, 'base', 'checkpoint.safetensors');
  const lines: string[] = [];
  const tuned = await runTraining({
    config: { ...tinyConfig({ steps: 1, evalEvery: 1, checkpointEvery: 1 }), init },
    outDir: join(dir, 'tuned'),
    log: (line) => lines.push(line),
    workers: 0,
  });
  assert.ok(
    lines.some((line) => line.startsWith('init ')),
    lines.join('\n'),
  );
  const meta = readModelFile(tuned.modelPath as string).meta;
  assert.equal(meta.provenance.steps, base.step + 1);
  assert.match(meta.provenance.data, /fine-tuned from base\/checkpoint\.safetensors/);
  // A phase fine-tuned from a fine-tuned phase counts the whole lineage, and so does export.
  const third = await runTraining({
    config: {
      ...tinyConfig({ steps: 1, evalEvery: 1, checkpointEvery: 1 }),
      init: join(dir, 'tuned', 'checkpoint.safetensors'),
    },
    outDir: join(dir, 'third'),
    log: quiet,
    workers: 0,
  });
  assert.equal(readModelFile(third.modelPath as string).meta.provenance.steps, base.step + 2);
  const exported = await exportModel({
    checkpointPath: join(dir, 'third', 'checkpoint.safetensors'),
    outPath: join(dir, 'third-export.onnx'),
    tile: { heightPx: 64, widthPx: 64, overlapPx: 16 },
    decision: { marginLogit: 0, minPixels: 2 },
  });
  assert.equal(exported.meta.provenance.steps, base.step + 2);
  assert.equal(exported.meta.truthMinSnr, 3);
  // One small update away from the weights it started from (a fresh start is far from them).
  const before = readSafetensors(init).tensors;
  let largest = 0;
  for (const [name, t] of readSafetensors(join(dir, 'tuned', 'checkpoint.safetensors')).tensors) {
    if (name.startsWith('optimizer.') || !before.has(name)) continue;
    const a = t.data as Float32Array;
    const b = before.get(name)?.data as Float32Array;
    for (let i = 0; i < a.length; i++) largest = Math.max(largest, Math.abs(a[i] - b[i]));
  }
  assert.ok(largest > 0 && largest < 0.02, `largest change ${largest}`);
  const wrong = { ...tinyConfig(), model: 'peaknet-zepto-1x32-h32', init };
  await assert.rejects(
    runTraining({ config: wrong, outDir: join(dir, 'wrong'), log: quiet, workers: 0 }),
    (error: unknown) => error instanceof UserError && /holds peaknet-yocto-1x16-h16/.test(error.message),
  );
});

test('braggflow train: a bad config is one line naming the file and the field', () => {
  const path = join(dir, 'bad.json');
  writeFileSync(
    path,
    JSON.stringify({ steps: 0, data: { sources: [{ kind: 'simulate', geometries: ['embedded'] }] } }),
  );
  const cli = runCli(['train', '--config', path, '--out', join(dir, 'never')]);
  assert.equal(cli.code, 2, cli.stderr);
  assert.equal(cli.stderr.trim().split('\n').length, 1);
  assert.match(cli.stderr, /bad\.json: steps: /);
  const missing = runCli(['train', '--config', join(dir, 'absent.json'), '--out', join(dir, 'never')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /absent\.json: no such file/);
});

test('distill: a student learns from a teacher file or checkpoint; cached logits give the same run; both are validated', async () => {
  const config = tinyConfig({ steps: 2, evalEvery: 2, checkpointEvery: 2 });
  const quiet = () => {};
  const teacherRun = await runTraining({ config, outDir: join(dir, 'teacher'), log: quiet, workers: 0 });
  const teacherPath = teacherRun.modelPath as string;
  const cacheDir = join(dir, 'teacher-cache');
  const student = { ...config, model: 'peaknet-yocto-1x16-h16' };
  const first = await runTraining({
    config: student,
    outDir: join(dir, 'student-a'),
    log: quiet,
    workers: 0,
    distill: { teacher: teacherPath, cacheDir },
  });
  assert.equal(first.finished, true);
  assert.equal(first.teacher?.computedMicroSteps, 2);
  assert.equal(first.teacher?.cachedMicroSteps, 0);
  // The teacher scored on the same held-out frames as the student.
  assert.equal(first.teacher?.validation.truthPeaks, first.validation?.truthPeaks);
  assert.ok(Number.isFinite(first.lastLoss) && first.lastLoss > 0);
  const second = await runTraining({
    config: student,
    outDir: join(dir, 'student-b'),
    log: quiet,
    workers: 0,
    distill: { teacher: teacherPath, cacheDir },
  });
  assert.equal(second.teacher?.cachedMicroSteps, 2);
  assert.equal(second.teacher?.computedMicroSteps, 0);
  const weights = (name: string) => readSafetensors(join(dir, name, 'checkpoint.safetensors')).tensors;
  for (const [name, t] of weights('student-a'))
    assert.deepEqual(weights('student-b').get(name)?.data, t.data, name);
  // A checkpoint serves as a teacher too (default preprocessing), without the cache: same logits.
  const fromCheckpoint = await runTraining({
    config: student,
    outDir: join(dir, 'student-c'),
    log: quiet,
    workers: 0,
    distill: { teacher: join(dir, 'teacher', 'checkpoint.safetensors') },
  });
  assert.equal(fromCheckpoint.teacher?.computedMicroSteps, 2);
  for (const [name, t] of weights('student-a')) {
    const c = weights('student-c').get(name)?.data as Float32Array;
    for (let i = 0; i < t.data.length; i++) assert.ok(Math.abs(c[i] - (t.data[i] as number)) < 1e-5, name);
  }
  // A distilled run goes on only as a distillation.
  await assert.rejects(
    runTraining({ config: { ...student, steps: 3 }, outDir: join(dir, 'student-a'), log: quiet, workers: 0 }),
    (error: unknown) => error instanceof UserError && /was distilled from a teacher/.test(error.message),
  );
});

test('tile shapes: update u trains on shape u mod (1 + n), each from its own stream; a resumed loader gets the same batches', async () => {
  const config = tinyConfig({
    shapes: [
      { heightPx: 96, widthPx: 64, batch: 1 },
      { heightPx: 32, widthPx: 64, batch: 3 },
    ],
  });
  const straight = await createBatchLoader(config, 0, { workers: 0 });
  const batches = [];
  try {
    for (let m = 0; m < 6; m++) batches.push(await straight.next());
  } finally {
    await straight.close();
  }
  assert.deepEqual(
    batches.map((b) =>
      b.shape === undefined ? 'tile' : `${b.shape.batch}x${b.shape.heightPx}x${b.shape.widthPx}`,
    ),
    ['tile', '1x96x64', '3x32x64', 'tile', '1x96x64', '3x32x64'],
  );
  assert.equal(batches[1].image.length, 96 * 64);
  assert.equal(batches[2].image.length, 3 * 32 * 64);
  // Shape 0 is the plain config's stream: its second batch is micro-step 1 of a loader without shapes.
  const plain = await createBatchMaker(tinyConfig());
  assert.deepEqual((await plain.make(1)).image, batches[3].image);
  plain.close();
  const resumed = await createBatchLoader(config, 4, { workers: 1 });
  try {
    assert.deepEqual((await resumed.next()).image, batches[4].image);
    assert.deepEqual((await resumed.next()).image, batches[5].image);
  } finally {
    await resumed.close();
  }
});

test('Trainer.addShape: steps of another tile shape update the same weights; an unknown shape is refused', async () => {
  const trainer = await Trainer.create({
    model: 'peaknet-yocto-1x16-h16',
    training: { batch: 2, heightPx: 64, widthPx: 64, seed: 3 },
  });
  try {
    const shape = { batch: 1, heightPx: 96, widthPx: 64 };
    await trainer.addShape(shape);
    const before = trainer.weights.map((w) => w.values.slice());
    const image = Float32Array.from({ length: 96 * 64 }, (_, i) => (i === 3000 ? 40 : (i * 7919) % 3));
    const target = new Uint8Array(96 * 64);
    target[3000] = 1;
    const result = await trainer.trainStep({ image, target, shape });
    assert.equal(result.updated, true);
    assert.ok(Number.isFinite(result.loss));
    const moved = trainer.weights.filter((w, i) => w.values.some((v, j) => v !== before[i][j])).length;
    assert.ok(moved > trainer.weights.length / 2, `${moved} of ${trainer.weights.length} params moved`);
    await assert.rejects(
      trainer.trainStep({ image, target, shape: { batch: 1, heightPx: 32, widthPx: 32 } }),
      /no training graph/,
    );
  } finally {
    await trainer.release();
  }
});

test('train with tile shapes and panel-fitted serving: the model file says maxPx, its validation serves it so', async () => {
  const config = tinyConfig({
    tile: { heightPx: 64, widthPx: 64, overlapPx: 16, maxPx: 128 },
    shapes: [{ heightPx: 96, widthPx: 128, batch: 1 }],
  });
  const report = await runTraining({ config, outDir: join(dir, 'shapes'), log: () => {}, workers: 0 });
  assert.equal(report.finished, true);
  const file = readModelFile(report.modelPath as string);
  assert.deepEqual(file.meta.tile, { heightPx: 64, widthPx: 64, overlapPx: 16, maxPx: 128 });
  const rows = readFileSync(join(dir, 'shapes', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n');
  assert.ok(rows.some((r) => JSON.parse(r).validation?.truthPeaks > 0));
});
