// Training's data side and distillation's teacher, on this machine:
// - the loader: batches of 8 panel tiles (256 x 256) cut from frames simulated on the fly, made in
//   this thread (what one loader worker does), against a training step of the shipped model's size;
// - the teacher's logits for one batch: computed by the teacher (the shipped size and two larger
//   ones; the cost does not depend on the weights) against read back from the gzip cache.
// Interleaved rounds after a warm-up; medians.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PREPROCESSING, modelFileInMemory } from '../src/infer/model-file.js';
import { buildPeakNet } from '../src/nn/models/registry.js';
import { createBatchMaker } from '../src/train/batches.js';
import { parseTrainConfig } from '../src/train/config.js';
import { createTeacher } from '../src/train/teacher.js';
import { Trainer } from '../src/train/trainer.js';
import { median } from '../src/util/stats.js';

const config = parseTrainConfig({
  steps: 1,
  batch: 8,
  data: {
    sources: [
      {
        kind: 'simulate',
        geometries: [
          'embedded',
          {
            kind: 'synthetic',
            panelRowsPx: [140, 1600],
            panelColsPx: [140, 1600],
            gridRows: [1, 6],
            gridCols: [1, 6],
            pixelUm: [50, 175],
            clenM: [0.08, 0.45],
            photonEnergyEv: [6000, 18000],
          },
        ],
      },
    ],
  },
});
const rounds = 5;
const time = async (f: () => Promise<unknown>) => {
  const t = performance.now();
  await f();
  return performance.now() - t;
};

const maker = await createBatchMaker(config);
const trainer = await Trainer.create({
  model: config.model,
  training: { batch: 8, heightPx: 256, widthPx: 256 },
});
const first = await maker.make(0);
await trainer.trainStep(first);
const makeMs: number[] = [];
const stepMs: number[] = [];
// 48 micro-steps: 384 tiles from 96 frames on 16 detectors, so detector set-up is in the figure.
for (let m = 1; m <= 48; m++) {
  let batch = first;
  makeMs.push(
    await time(async () => {
      batch = await maker.make(m);
    }),
  );
  if (m % 8 === 0) stepMs.push(await time(() => trainer.trainStep(batch)));
}
maker.close();
await trainer.release();

const dir = mkdtempSync(join(tmpdir(), 'bf-distill-bench-'));
const rows: string[] = [];
for (const name of ['peaknet-yocto-1x16-h16', 'peaknet-zepto-1x32-h32', 'peaknet-atto-1x32-h32']) {
  const model = buildPeakNet(name, {
    batch: 1,
    heightPx: 256,
    widthPx: 256,
    paramsAs: 'initializers',
    seed: 1,
  });
  const file = modelFileInMemory(model, {
    preprocessing: { ...DEFAULT_PREPROCESSING },
    tile: { heightPx: 256, widthPx: 256, overlapPx: 32 },
    decision: { marginLogit: 0, minPixels: 2 },
    provenance: { data: 'bench', steps: 0, wallSeconds: 0, date: '', braggflowVersion: '' },
  });
  const path = join(dir, `${name}.onnx`);
  writeFileSync(path, file.bytes);
  const tile = { heightPx: 256, widthPx: 256, overlapPx: 32 };
  const live = await createTeacher(path, { batch: 8, tile });
  const cached = await createTeacher(path, { batch: 8, tile, cacheDir: join(dir, name) });
  await live.logits(first.image, 0);
  await cached.logits(first.image, 0); // computes and writes the cache entry
  const computeMs: number[] = [];
  const readMs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    computeMs.push(await time(() => live.logits(first.image, 0)));
    readMs.push(await time(() => cached.logits(first.image, 0)));
  }
  await live.release();
  await cached.release();
  const c = median(computeMs);
  const d = median(readMs);
  rows.push(
    `| ${name} (${model.graph.paramCount().toLocaleString('en-US')} params) | ${c.toFixed(0)} | ${d.toFixed(1)} | ${(c / d).toFixed(1)}x |`,
  );
}
rmSync(dir, { recursive: true, force: true });

console.log('## Training data and distillation (batch 8 x 256 x 256 panel tiles)\n');
console.log('| what | ms per batch (median) |');
console.log('|---|---:|');
console.log(
  `| loader: simulate on the fly + cut, preprocess, augment 8 tiles (one thread) | ${median(makeMs).toFixed(0)} |`,
);
console.log(
  `| training step of ${config.model} (forward + backward + AdamW) | ${median(stepMs).toFixed(0)} |`,
);
console.log(
  "\nOne loader worker keeps up when its time per batch is below the step's (the two share 2 cores).\n",
);
console.log('| teacher | logits computed (ms) | read from the gzip cache (ms) | cache speed-up |');
console.log('|---|---:|---:|---:|');
for (const row of rows) console.log(row);
console.log(
  '\nThe cache holds float32 logits gzip level 1 (8.4 MB a batch before compression); reading means gunzip and a copy.',
);
