// The numbers of models/README.md (the shipped model's card), every one computed in the run:
//   node --import tsx scripts/model-card.ts [--model M.onnx] [--shared DIR] [--frames N]
//        [--parts real,sim,speed] [--truth-min-snr X] [--json OUT.json]
// - real: the shared real frames (LCLS CSPAD thermolysin, raw ADU; DLS Pilatus thaumatin, photon
//   counting) against DIALS' expert spots within 2 px: the model with no setting, pf8 with
//   indexamajig's defaults, and pf8 tuned on that very frame against those very spots (an expert's
//   best case, not a held-out score).
// - sim: held-out simulated runs of every preset on the CSPAD, Jungfrau 4M, ePix10k2M, Rayonix,
//   Pilatus and Eiger geometries of ../shared: pf8 tuned on N frames of the run (halving search over a
//   grid scaled to the detector's ADU per photon), then all three scored on N other frames. A spot is
//   true when its expected integrated SNR reaches --truth-min-snr (default: the model file's own
//   truth rule, 8 for the shipped model; the simulator's default, 3, counts spots expert finders do
//   not report).
// - speed: Mpixel/s of detector pixels served (tiling, preprocessing, model, components) on the real
//   CSPAD frame and a 4.19-Mpixel Jungfrau 4M layout, median of 5 after a warm-up.
// Prints markdown tables; --json writes every figure.
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { geometryMask } from '../src/detector/mask.js';
import { buildMask } from '../src/detector/mask-file.js';
import { computePixelMaps, type PixelMaps } from '../src/detector/pixel-maps.js';
import { parseJsonPeakLists } from '../src/engine/labels.js';
import { matchPeaks, type PointSet, scoresFromCounts } from '../src/engine/match.js';
import type { RuleScore } from '../src/infer/calibrate.js';
import { defaultModelPath } from '../src/infer/default-model.js';
import { readModelFile } from '../src/infer/model-file.js';
import { createPeakNetFinder } from '../src/infer/peaknet-finder.js';
import { openFrameReader } from '../src/io/cxi-reader.js';
import { type Geometry, parseGeometry, readGeometry } from '../src/io/geom.js';
import type { PeakList } from '../src/peaks/peak-list.js';
import { createPf8Context, defaultPf8Params, type Pf8Params, peakfinder8 } from '../src/peaks/peakfinder8.js';
import { createPf8Scorer, expandGrid, type Pf8Grid, tunePf8 } from '../src/peaks/tune.js';
import { panelAduPerPhoton } from '../src/simulate/detector.js';
import { createFrameContext, simulateFrame } from '../src/simulate/frame.js';
import { parseSimulateOptions } from '../src/simulate/options.js';
import { resolveSetup } from '../src/simulate/run.js';
import { median } from '../src/util/stats.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: defaultModelPath() },
    shared: { type: 'string', default: join(import.meta.dirname, '..', '..', 'shared') },
    frames: { type: 'string', default: '4' },
    parts: { type: 'string', default: 'real,sim,speed' },
    presets: { type: 'string', default: 'lysozyme,thermolysin,photosystem' },
    geometries: {
      type: 'string',
      default: 'cspad-cxiformat,jungfrau4M,epix10k2M,rayonix,pilatus,Eiger16M-binning2-nativefiles',
    },
    json: { type: 'string' },
    /** The simulated runs' truth rule (render.ts): spots of at least this integrated SNR are true. */
    'truth-min-snr': { type: 'string' },
  },
});
const shared = resolve(args.shared);
const parts = new Set(args.parts.split(','));
const file = readModelFile(args.model);
const radiusPx = 2;
// The simulated runs' truth: the model's own rule unless given (the simulator's default, 3, else).
const truthMinSnr = Number(args['truth-min-snr'] ?? file.meta.truthMinSnr ?? 3);
const log = (line: string) => process.stderr.write(`${line}\n`);
const out: Record<string, unknown> = {
  model: {
    path: args.model,
    config: file.meta.config.name,
    params: file.meta.params,
    decision: file.meta.decision,
    provenance: file.meta.provenance,
  },
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, load: loadavg()[0], date: new Date().toISOString() },
};

type Score = Omit<RuleScore, 'rule'>;

function score(found: PeakList[], truth: PointSet[]): Score {
  let matched = 0;
  let nFound = 0;
  let reference = 0;
  found.forEach((list, f) => {
    const m = matchPeaks(list, truth[f], radiusPx);
    matched += m.matched;
    nFound += m.found;
    reference += m.reference;
  });
  return { ...scoresFromCounts(matched, nFound, reference), found: nFound, matched, reference };
}

function markdownTable(header: string[], rows: string[][]): string {
  return [header, header.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

const cell = (s: Score) => `${s.precision.toFixed(2)} / ${s.recall.toFixed(2)} / **${s.f1.toFixed(2)}**`;

async function modelPeaks(
  maps: PixelMaps,
  mask: Uint8Array,
  frames: Float32Array[],
): Promise<{ peaks: PeakList[]; ms: number[] }> {
  const finder = await createPeakNetFinder(file, maps, mask);
  const peaks: PeakList[] = [];
  const ms: number[] = [];
  try {
    for (const frame of frames) {
      const t = performance.now();
      const found = await finder.find(frame);
      ms.push(performance.now() - t);
      // The finder reuses its buffers: keep a copy.
      peaks.push({ ...found, fs: found.fs.slice(0, found.count), ss: found.ss.slice(0, found.count) });
    }
  } finally {
    await finder.release();
  }
  return { peaks, ms };
}

/** pf8 tuned against labels on `frames` (halving over `grid`); returns the best parameters and F1. */
async function tuneOn(
  geometry: Geometry,
  mask: Uint8Array,
  frames: Float32Array[],
  labels: PointSet[],
  grid: Pf8Grid,
) {
  const scorer = createPf8Scorer({ geometry, mask, frames, labels, radiusPx, workers: 2 });
  try {
    const result = await tunePf8(scorer, { configs: expandGrid(grid, defaultPf8Params), search: 'halving' });
    return { params: result.best.params, f1: result.best.f1 };
  } finally {
    await scorer.close();
  }
}

/** A grid on the detector's own scale: thresholds in photons times its ADU per photon. */
function gridFor(aduPerPhoton: number): Pf8Grid {
  return {
    adcThreshold: [3, 5, 10, 20, 40, 80, 160].map((p) => Number((p * aduPerPhoton).toPrecision(3))),
    minSnr: [3, 4, 5, 6, 8],
    minPixCount: [1, 2, 3],
    localBgRadius: [2, 3, 4],
  };
}

const pf8Text = (p: Pf8Params) =>
  `threshold ${p.adcThreshold}, min-snr ${p.minSnr}, min-pix ${p.minPixCount}, bg-radius ${p.localBgRadius}`;

if (parts.has('real')) {
  const rows: string[][] = [];
  const real: Record<string, unknown> = {};
  for (const name of ['cspad-thermolysin', 'pilatus-thaumatin']) {
    const dir = join(shared, 'data', 'real');
    const geometry = readGeometry(join(dir, `${name}.geom`));
    const maps = computePixelMaps(geometry);
    const framePath = join(dir, `${name}.cxi`);
    const mask = await buildMask(maps, { dataFile: framePath });
    const reader = await openFrameReader(framePath, { expectedSlabShape: [maps.ssSize, maps.fsSize] });
    const frame = reader.readFrame(0);
    reader.close();
    const labelsPath = join(dir, `${name}.dials-spots.json`);
    const labels = parseJsonPeakLists(readFileSync(labelsPath, 'utf8'), labelsPath);
    const model = await modelPeaks(maps, mask, [frame]);
    const context = createPf8Context(maps, mask);
    const defaults = peakfinder8(frame, context, { ...defaultPf8Params });
    // The expert's best case: a wide grid (both detectors' scales), tuned on this frame's own spots.
    const grid: Pf8Grid = {
      ...gridFor(1),
      adcThreshold: [3, 5, 10, 20, 40, 80, 100, 150, 200, 300, 400, 800],
    };
    const tuned = await tuneOn(geometry, mask, [frame], labels, grid);
    const tunedPeaks = peakfinder8(frame, context, tuned.params);
    const scores = {
      model: score(model.peaks, labels),
      pf8Defaults: score([defaults], labels),
      pf8TunedOnFrame: score([tunedPeaks], labels),
    };
    real[name] = {
      dialsSpots: labels[0].count,
      ...scores,
      pf8TunedParams: tuned.params,
      modelMs: model.ms[0],
      pixels: maps.ssSize * maps.fsSize,
    };
    rows.push([
      name,
      String(labels[0].count),
      cell(scores.model),
      String(scores.model.found),
      cell(scores.pf8Defaults),
      cell(scores.pf8TunedOnFrame),
      pf8Text(tuned.params),
    ]);
    log(`real ${name}: model ${cell(scores.model)}`);
  }
  out.real = real;
  console.log("\n### Real frames against DIALS' spots (within 2 px): precision / recall / F1\n");
  console.log(
    markdownTable(
      [
        'frame',
        'DIALS spots',
        'model',
        'model found',
        'pf8 defaults',
        'pf8 tuned on this frame',
        'its parameters',
      ],
      rows,
    ),
  );
}

if (parts.has('sim')) {
  const n = Number(args.frames);
  const rows: string[][] = [];
  const sim: Record<string, unknown>[] = [];
  for (const geomName of args.geometries.split(',')) {
    const geometry = readGeometry(join(shared, 'data', 'geometry', `${geomName}.geom`));
    const maps = computePixelMaps(geometry);
    const mask = geometryMask(maps);
    for (const [pi, preset] of args.presets.split(',').entries()) {
      const started = performance.now();
      const options = parseSimulateOptions({
        frames: 2 * n,
        outPath: '-',
        seed: 4242 + 17 * pi,
        preset,
        hitRate: 0.8,
      });
      const setup = resolveSetup(geometry, options);
      setup.imaging = { ...setup.imaging, truthMinSnr };
      const context = createFrameContext(setup, maps);
      const frames = Array.from({ length: 2 * n }, (_, f) => simulateFrame(context, f).rendered);
      const gain = panelAduPerPhoton(maps, setup.imaging, setup.photonEnergyEv)[0];
      const tuneFrames = frames.slice(0, n);
      const held = frames.slice(n);
      const truth = held.map((f) => f.truth);
      const tuned = await tuneOn(
        geometry,
        mask,
        tuneFrames.map((f) => f.imageAdu),
        tuneFrames.map((f) => f.truth),
        gridFor(gain),
      );
      const pf8Context = createPf8Context(maps, mask);
      const defaults = score(
        held.map((f) => peakfinder8(f.imageAdu, pf8Context, { ...defaultPf8Params })),
        truth,
      );
      const tunedScore = score(
        held.map((f) => peakfinder8(f.imageAdu, pf8Context, tuned.params)),
        truth,
      );
      const model = await modelPeaks(
        maps,
        mask,
        held.map((f) => f.imageAdu),
      );
      const modelScore = score(model.peaks, truth);
      const row = {
        geometry: geomName,
        preset,
        truthPeaks: modelScore.reference,
        gainAduPerPhoton: gain,
        model: modelScore,
        pf8Defaults: defaults,
        pf8Tuned: tunedScore,
        pf8TunedParams: tuned.params,
        modelMsPerFrame: median(model.ms),
      };
      sim.push(row);
      rows.push([
        geomName,
        preset,
        String(modelScore.reference),
        cell(modelScore),
        cell(defaults),
        cell(tunedScore),
        modelScore.f1 >= tunedScore.f1 ? 'yes' : 'no',
      ]);
      log(
        `sim ${geomName} ${preset}: model ${modelScore.f1.toFixed(3)} pf8 tuned ${tunedScore.f1.toFixed(3)} (${((performance.now() - started) / 1000).toFixed(0)} s)`,
      );
    }
  }
  out.sim = sim;
  console.log(
    `\n### Held-out simulated runs (${n} frames tuned on, ${n} other frames scored; hit rate 0.8; true spots: integrated SNR >= ${truthMinSnr}): precision / recall / F1\n`,
  );
  console.log(
    markdownTable(
      ['geometry', 'preset', 'true spots', 'model', 'pf8 defaults', 'pf8 tuned on the run', 'model >= tuned'],
      rows,
    ),
  );
}

if (parts.has('speed')) {
  const speed: Record<string, unknown> = {};
  const rows: string[][] = [];
  const layouts: [string, Geometry][] = [
    [
      'cspad-thermolysin (2.3 Mpix, 64 ASICs)',
      readGeometry(join(shared, 'data', 'real', 'cspad-thermolysin.geom')),
    ],
  ];
  try {
    const { jungfrau4MGeometryText } = await import('../bench/detectors.js');
    layouts.push([
      'Jungfrau 4M (4.19 Mpix, 8 modules)',
      parseGeometry(jungfrau4MGeometryText(), 'jungfrau4M (bench)'),
    ]);
  } catch (error) {
    log(`speed: no Jungfrau 4M layout (${(error as Error).message})`);
  }
  for (const [label, geometry] of layouts) {
    const maps = computePixelMaps(geometry);
    const mask = geometryMask(maps);
    const frame = new Float32Array(maps.ssSize * maps.fsSize);
    for (let i = 0; i < frame.length; i++) frame[i] = (i * 2654435761) % 7;
    for (const batch of [1, 8]) {
      const finder = await createPeakNetFinder(file, maps, mask, { batch });
      await finder.find(frame);
      const ms: number[] = [];
      for (let k = 0; k < 5; k++) {
        const t = performance.now();
        await finder.find(frame);
        ms.push(performance.now() - t);
      }
      await finder.release();
      const mpix = (maps.ssSize * maps.fsSize) / 1e6;
      const m = median(ms);
      speed[`${label} batch ${batch}`] = { msPerFrame: m, mpixPerS: mpix / (m / 1000), tiles: finder.tiles };
      rows.push([label, String(batch), String(finder.tiles), m.toFixed(0), (mpix / (m / 1000)).toFixed(2)]);
    }
  }
  out.speed = speed;
  console.log(
    `\n### Speed, fp32, onnxruntime CPU (${cpus().length} cores, ${cpus()[0]?.model}; load ${loadavg()[0].toFixed(1)} at start)\n`,
  );
  console.log(markdownTable(['detector', 'batch', 'tiles', 'ms/frame', 'Mpixel/s'], rows));
}

if (args.json) writeFileSync(args.json, `${JSON.stringify(out, null, 1)}\n`);
