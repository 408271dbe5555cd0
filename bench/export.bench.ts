// The model run alone (no tiling or preprocessing), per precision `export` writes: fp32, fp16
// weights, int8 QDQ; batches of 8 tiles of 256 x 256, two onnxruntime threads, for the shipped size
// and larger ones (the cost does not depend on the weights, so the larger ones are untrained and
// their int8 ranges come from their own activations on inputs like preprocessed tiles: mostly
// standard-normal noise with a few bright spots). Interleaved rounds after a warm-up; medians.

import { DEFAULT_PREPROCESSING, modelFileInMemory } from '../src/infer/model-file.js';
import {
  calibrationTensors,
  fp16Weights,
  quantizeQdq,
  RangeCollector,
  withExtraOutputs,
} from '../src/infer/precision.js';
import { buildPeakNet } from '../src/nn/models/registry.js';
import { decodeModel, encodeModel } from '../src/nn/onnx/emit.js';
import { createSession, type Session } from '../src/nn/runtime.js';
import { seededRandom } from '../src/util/random.js';
import { median } from '../src/util/stats.js';

const BATCH = 8;
const SIZE = 256;
const ROUNDS = 7;
const names = process.env.BENCH_MODELS?.split(',') ?? [
  'peaknet-yocto-1x16-h16',
  'peaknet-zepto-1x32-h32',
  'peaknet-atto-1x64-h64',
];

function tiles(seed: number): Float32Array {
  const random = seededRandom(seed);
  const x = new Float32Array(BATCH * SIZE * SIZE);
  for (let i = 0; i < x.length; i += 2) {
    // Box-Muller pairs.
    const r = Math.sqrt(-2 * Math.log(1 - random()));
    const a = 2 * Math.PI * random();
    x[i] = r * Math.cos(a);
    x[i + 1] = r * Math.sin(a);
  }
  for (let s = 0; s < 40 * BATCH; s++) {
    const c = Math.floor(random() * x.length);
    for (const d of [0, 1, SIZE, SIZE + 1]) if (c + d < x.length) x[c + d] = Math.asinh(50 + 500 * random());
  }
  return x;
}

const input = { dataType: 'float32' as const, dims: [BATCH, 1, SIZE, SIZE], values: tiles(1) };
const rows: string[] = [];
for (const name of names) {
  const model = buildPeakNet(name, { heightPx: SIZE, widthPx: SIZE });
  const file = modelFileInMemory(model, {
    preprocessing: { ...DEFAULT_PREPROCESSING },
    tile: { heightPx: SIZE, widthPx: SIZE, overlapPx: 32 },
    decision: { marginLogit: 0, minPixels: 2 },
    provenance: { data: 'untrained', steps: 0, wallSeconds: 0, date: '', braggflowVersion: '' },
  });
  const spec = decodeModel(file.bytes, file.path);
  const wanted = calibrationTensors(spec);
  const probe = await createSession(encodeModel(withExtraOutputs(spec, wanted)), { intraOpThreads: 2 });
  const collector = new RangeCollector();
  for (const seed of [2, 3]) {
    const out = await probe.run({ image: { ...input, values: tiles(seed) } });
    for (const t of wanted) collector.add(t, out[t].values as Float32Array);
  }
  await probe.release();
  const variants: [string, Uint8Array][] = [
    ['fp32', file.bytes],
    ['fp16 weights', encodeModel(fp16Weights(spec))],
    ['int8 QDQ', encodeModel(quantizeQdq(spec, collector.ranges))],
  ];
  const sessions: Session[] = [];
  for (const [, bytes] of variants)
    sessions.push(await createSession(bytes, { intraOpThreads: 2, spinning: false }));
  const ms: number[][] = variants.map(() => []);
  for (let round = -1; round < ROUNDS; round++) {
    for (const [k, session] of sessions.entries()) {
      const t = performance.now();
      await session.run({ image: input });
      if (round >= 0) ms[k].push(performance.now() - t);
    }
  }
  const base = median(ms[0]);
  for (const [k, [label, bytes]] of variants.entries()) {
    const m = median(ms[k]);
    const mpix = (BATCH * SIZE * SIZE) / (m / 1000) / 1e6;
    rows.push(
      `| ${name} | ${label} | ${(bytes.length / 1e6).toFixed(2)} | ${m.toFixed(1)} | ${mpix.toFixed(1)} | ${(base / m).toFixed(2)} |`,
    );
  }
  for (const s of sessions) await s.release();
}

process.stdout.write(`
## Model precisions (\`export --fp16 / --int8\`): the model run alone

Batches of ${BATCH} tiles of ${SIZE} x ${SIZE}, two onnxruntime threads, median of ${ROUNDS} interleaved
rounds; tiling and preprocessing not included (a frame's serving time adds them). Speed-up is
against fp32 of the same size in the same run.

| model | precision | file MB | ms per batch | Mpixel/s | speed-up |
|---|---|---:|---:|---:|---:|
${rows.join('\n')}

`);
