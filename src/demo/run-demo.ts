/**
 * `npm run demo` / `braggflow demo`: the main job on the embedded default detector, with nothing beside
 * the checkout, end to end:
 *
 *   geometry -> physics simulator (hits and misses, exact truth) streamed to CXI -> read back lazily
 *   -> split into training and held-out frames
 *   -> peakfinder8 with indexamajig's defaults, and tuned automatically on the first frames' truth
 *   -> the shipped PeakNet model file (models/peaknet-default.onnx), served per panel with no setting
 *      and no training on this run
 *   -> all three on the held-out frames, scored against the truth with `braggflow eval`'s matching,
 *      peaks written as CXI peak tables.
 *
 * Every number printed is computed in this run, and the run is seeded.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assemblyMap } from '../detector/assemble.js';
import { defaultGeometry, defaultGeometryText } from '../detector/default-geometry.js';
import { persistentHotPixels } from '../detector/hot-pixels.js';
import { geometryMask, pixelMapsFor, resolutionFor } from '../detector/index.js';
import { defaultEvalOptions, type EvalReport, evaluatePeaks } from '../engine/eval.js';
import { defaultModelPath } from '../infer/default-model.js';
import { type DecisionSpec, readModelFile } from '../infer/model-file.js';
import { createPeakNetFinder } from '../infer/peaknet-finder.js';
import { readPeakTable } from '../io/cxi-peaks.js';
import { createCxiWriter } from '../io/cxi-writer.js';
import type { PeakList } from '../peaks/peak-list.js';
import type { Pf8Params } from '../peaks/peakfinder8.js';
import { pf8ParamsToJson } from '../peaks/pf8-params.js';
import type { Pf8Grid } from '../peaks/tune.js';
import type { FrameResult } from '../pipeline/protocol.js';
import { runPipeline } from '../pipeline/run.js';
import { hitImagePng } from '../plot/hit-image.js';
import { median } from '../util/stats.js';
import { formatTable } from '../util/table.js';
import { runPf8Baseline } from './pf8-baseline.js';
import { simulateRun } from './simulated-run.js';

export interface DemoOptions {
  outDir: string;
  frames: number;
  seed: number;
  /** Simulator preset (crystal and beam). */
  preset: string;
  hitRate: number;
  /** Model file to serve (default: the shipped models/peaknet-default.onnx). */
  modelPath?: string;
  /** pf8 tuning grid; default demoPf8Grid. */
  pf8Grid?: Pf8Grid;
  /** Worker threads for simulating and tuning (0 or 1: this thread). */
  workers: number;
  log: (line: string) => void;
}

/** One method's result on the held-out frames. */
export interface MethodScore {
  method: string;
  precision: number;
  recall: number;
  f1: number;
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
  found: number;
  /** Median time per held-out frame, ms. */
  msPerFrame: number;
  peaksPath: string;
}

export interface DemoReport {
  detector: {
    name: string;
    panels: number;
    pixels: number;
    slabShape: [number, number];
    bestResolutionA: number;
  };
  /** Hot pixels found in the training frames and masked for both finders. */
  hotPixels: number;
  run: {
    path: string;
    streamPath: string;
    preset: string;
    frames: number;
    hits: number;
    truthPeaks: number;
    writeMs: number;
    readBackIdentical: boolean;
  };
  split: { trainFrames: number[]; heldOutFrames: number[]; heldOutHits: number; heldOutTruthPeaks: number };
  pf8: {
    defaults: Record<string, number | null>;
    tuned: Record<string, number | null>;
    paramsPath: string;
    tuning: {
      search: string;
      configurations: number;
      evaluations: number;
      seconds: number;
      workers: number;
      trainF1: number;
      rounds: { frames: number; configs: number; bestF1: number }[];
    };
  };
  /** The model file served, as its metadata describes it (nothing about it is fitted to this run). */
  model: {
    path: string;
    config: string;
    params: number;
    tile: { heightPx: number; widthPx: number; overlapPx: number };
    decision: DecisionSpec;
    trainingSteps: number;
    trainingWallSeconds: number;
  };
  inference: {
    frames: number[];
    /** Tiles per frame (per-panel tiling of this detector). */
    tiles: number;
    mpixPerS: number;
    found: number;
    truth: number;
    precision: number;
    recall: number;
    f1: number;
  };
  /** Held-out scores: pf8 defaults, pf8 tuned, the model (micro, radius `radiusPx`). */
  radiusPx: number;
  heldOut: MethodScore[];
  peaksPath: string;
  /** The whole run streamed through the in-process pipeline, served by the same model. */
  pipeline: {
    frames: number;
    hits: number;
    hitRate: number;
    peaksPerHit: number;
    framesPerSecond: number;
    latencyMs: { p50: number; p99: number };
    lost: number;
    rows: number;
    outputs: { cxi: string; lst: string; geom: string; summary: string; png: string };
    /** The hit drawn in the PNG: its frame and peak count. */
    pngFrame: number;
    pngPeaks: number;
  };
}

/** Frames held out from tuning: the last third (at least one). */
export function heldOutCount(frames: number): number {
  return Math.max(1, Math.ceil(frames / 3));
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : word.endsWith('s') ? 'es' : 's'}`;

function paramsText(p: Pf8Params): string {
  return `--threshold=${p.adcThreshold} --min-snr=${p.minSnr} --min-pix-count=${p.minPixCount} --max-pix-count=${p.maxPixCount} --local-bg-radius=${p.localBgRadius}`;
}

async function writePeakTable(path: string, peaks: PeakList[], photonEnergyEv: number, clenM: number) {
  const writer = await createCxiWriter(path);
  for (const list of peaks) writer.appendFrame({ peaks: list, photonEnergyEv, clenM });
  writer.close();
  // Scored as written: what `braggflow eval` reads back.
  return readPeakTable(path);
}

export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const { log } = options;
  mkdirSync(options.outDir, { recursive: true });

  // 1. Detector.
  const geometry = defaultGeometry();
  const maps = pixelMapsFor(geometry);
  const goodPixels = geometryMask(maps);
  const resolution = resolutionFor(maps);
  let maxInvD = 0;
  for (let i = 0; i < resolution.length; i++) if (resolution[i] > maxInvD) maxInvD = resolution[i];
  const slabShape: [number, number] = [maps.ssSize, maps.fsSize];
  const [ssSize, fsSize] = slabShape;
  let pixels = 0;
  for (const panel of maps.panelIndex) if (panel >= 0) pixels++;
  log(
    `detector  ${geometry.sourcePath}: ${geometry.panels.length} panels, ${pixels} pixels, slab [${slabShape}], ` +
      `corner resolution ${(1e10 / maxInvD).toFixed(2)} A`,
  );

  // The model file first: its truth rule is the run's.
  const modelPath = options.modelPath ?? defaultModelPath();
  const file = readModelFile(modelPath);

  // 2. A run of the physics simulator with exact truth, streamed to CXI, read back frame by frame.
  const startSim = performance.now();
  const sim = await simulateRun({
    geometry,
    geometryText: defaultGeometryText,
    outDir: options.outDir,
    frames: options.frames,
    seed: options.seed,
    preset: options.preset,
    hitRate: options.hitRate,
    workers: options.workers,
    // True spots as the model was trained to report them (its file's truth rule); pf8 is tuned and
    // scored against the same truth.
    truthMinSnr: file.meta.truthMinSnr,
  });
  const writeMs = performance.now() - startSim;
  const { frames } = sim;
  const truthPeaks = frames.reduce((sum, f) => sum + f.truth.count, 0);
  const hits = sim.hits.filter(Boolean).length;
  const photonEnergyEv = sim.summary.photonEnergyEv;
  const clenM = sim.summary.clenM;
  log(
    `run       ${sim.cxiPath}: ${frames.length} ${options.preset} frames (${plural(hits, 'hit')}, ${plural(frames.length - hits, 'miss')}), ` +
      `${truthPeaks} true spots with their mask, simulated, written and read back in ${(writeMs / 1000).toFixed(1)} s: ` +
      `${sim.readBackIdentical ? 'identical' : 'DIFFERENT'}`,
  );

  // 3. Split: tune and train on the first frames, score everything on the rest.
  const nHeld = heldOutCount(frames.length);
  const nTrain = frames.length - nHeld;
  const trainFrames = Array.from({ length: nTrain }, (_, i) => i);
  const heldOutFrames = Array.from({ length: nHeld }, (_, i) => nTrain + i);
  const train = trainFrames.map((i) => frames[i]);
  const heldOut = heldOutFrames.map((i) => frames[i]);
  const heldTruth = heldOut.map((f) => f.truth);
  const heldOutTruthPeaks = heldTruth.reduce((sum, t) => sum + t.count, 0);
  const heldOutHits = heldOutFrames.filter((i) => sim.hits[i]).length;
  const range = (list: number[]) =>
    list.length === 1 ? `${list[0]}` : `${list[0]}-${list[list.length - 1]}`;
  log(
    `split     frames ${range(trainFrames)} to tune pf8, ${range(heldOutFrames)} held out ` +
      `(${plural(heldOutHits, 'hit')}, ${plural(nHeld - heldOutHits, 'miss')}, ${heldOutTruthPeaks} true spots)`,
  );

  // 4. The run's bad-pixel mask, as a beamline makes one: the geometry's bad regions plus the pixels
  // that are bright on most training frames (hot pixels). Both finders get it.
  const aduPerPhoton = geometry.panels[0]?.aduPerPhoton ?? 1;
  const hot = persistentHotPixels(
    train.map((f) => f.image),
    aduPerPhoton,
  );
  let hotPixels = 0;
  for (let i = 0; i < hot.length; i++) {
    if (hot[i] && goodPixels[i]) hotPixels++;
    if (hot[i]) goodPixels[i] = 0;
  }
  log(`mask      geometry bad regions + ${hotPixels} hot pixels (bright on most tuning frames)`);

  // 5. peakfinder8: defaults, and tuned against the truth of the training frames.
  const radiusPx = defaultEvalOptions.radiusPx;
  const pf8 = await runPf8Baseline({
    geometry,
    maps,
    mask: goodPixels,
    train,
    heldOut,
    radiusPx,
    grid: options.pf8Grid,
    workers: options.workers > 1 ? options.workers : 0,
    log,
  });
  const paramsPath = join(options.outDir, 'pf8-tuned.json');
  const tuned = pf8.tuned.params;
  writeFileSync(
    paramsPath,
    `${JSON.stringify({ method: 'pf8', params: pf8ParamsToJson(tuned), f1: pf8.tuning.best.f1 }, null, 2)}\n`,
  );
  log(
    `pf8       tuned on frames ${range(trainFrames)}: ${pf8.tuning.configurations} configurations, successive halving, ` +
      `${pf8.tuning.evaluations} runs in ${pf8.tuning.seconds.toFixed(1)} s; best ${paramsText(tuned)} ` +
      `(F1 ${pf8.tuning.best.f1.toFixed(3)} on the tuning frames) -> ${paramsPath}`,
  );

  // 6. The shipped model file, served per panel as `peaks --method peaknet` serves it: raw ADU in, its
  // own preprocessing, tile and decision rule, nothing chosen on this run.
  const finder = await createPeakNetFinder(file, maps, goodPixels, { batch: 8 });
  const modelPeaks: PeakList[] = [];
  const times: number[] = [];
  try {
    for (const frame of heldOut) {
      const start = performance.now();
      const found = await finder.find(frame.image);
      times.push(performance.now() - start);
      modelPeaks.push(found);
    }
  } finally {
    await finder.release();
  }
  const modelName = file.meta.config.name;
  const modelMs = median(times);
  const mpixPerS = (ssSize * fsSize) / 1e3 / modelMs;
  const d = file.meta.decision;
  log(
    `model     ${modelPath}: ${modelName} (${file.meta.params} params, ${file.meta.provenance.steps} training steps, ` +
      `${(file.meta.provenance.wallSeconds / 60).toFixed(0)} min); ${file.meta.tile.heightPx}x${file.meta.tile.widthPx} panel tiles; ` +
      `peak pixel where logit margin > ${d.marginLogit}, components >= ${d.minPixels} px`,
  );
  log(
    `infer     ${nHeld} held-out frame(s), ${finder.tiles} tiles each: ${((ssSize * fsSize) / 1e6).toFixed(2)} Mpix in ${modelMs.toFixed(0)} ms ` +
      `(median, ${mpixPerS.toFixed(2)} Mpix/s)`,
  );

  // 8. Score all three on the held-out frames as `braggflow eval` does, from the tables as written.
  const evalOptions = { ...defaultEvalOptions, radiusPx };
  const methods = [
    {
      method: 'pf8 defaults',
      file: 'pf8-defaults.cxi',
      peaks: pf8.defaults.peaks,
      ms: pf8.defaults.msPerFrame,
    },
    { method: 'pf8 tuned', file: 'pf8-tuned.cxi', peaks: pf8.tuned.peaks, ms: pf8.tuned.msPerFrame },
    { method: `peaknet (${modelName})`, file: 'peaks.cxi', peaks: modelPeaks, ms: modelMs },
  ];
  const heldOutScores: MethodScore[] = [];
  let modelEval: EvalReport | undefined;
  for (const m of methods) {
    const path = join(options.outDir, m.file);
    const written = await writePeakTable(path, m.peaks, photonEnergyEv, clenM);
    const report = evaluatePeaks(heldTruth, written, evalOptions);
    if (m.file === 'peaks.cxi') modelEval = report;
    heldOutScores.push({
      method: m.method,
      precision: report.micro.precision,
      recall: report.micro.recall,
      f1: report.micro.f1,
      truePositives: report.micro.truePositives,
      falsePositives: report.micro.falsePositives,
      falseNegatives: report.micro.falseNegatives,
      found: report.predictedPeaks,
      msPerFrame: m.ms,
      peaksPath: path,
    });
  }
  const f3 = (x: number) => x.toFixed(3);
  log(
    `held out  frames ${range(heldOutFrames)}, ${heldOutTruthPeaks} true spots, matched one-to-one within ${radiusPx} px (as braggflow eval):`,
  );
  for (const line of formatTable(
    [
      ['  method', 'precision', 'recall', 'F1', 'found', 'matched', 'ms/frame'],
      ...heldOutScores.map((s) => [
        `  ${s.method}`,
        // Nothing found: precision is undefined (eval's convention scores it 1), so show a dash.
        s.found === 0 ? '-' : f3(s.precision),
        f3(s.recall),
        f3(s.f1),
        String(s.found),
        String(s.truePositives),
        s.msPerFrame.toFixed(0),
      ]),
    ],
    'right',
  ).split('\n'))
    log(line);
  const peaksPath = join(options.outDir, 'peaks.cxi');
  log(
    `peaks     ${methods.map((m) => m.file).join(', ')} in ${options.outDir}; e.g. braggflow eval --truth ${sim.cxiPath} ` +
      `--truth-frames ${nTrain}:${frames.length} --pred ${peaksPath}`,
  );

  // 7. The whole run as a beamline would stream it: through the in-process pipeline, served by the
  //    same model, into a CXI that CrystFEL reads, with a picture of the richest hit.
  const geomPath = join(options.outDir, 'detector.geom');
  writeFileSync(geomPath, defaultGeometryText);
  const hitsPath = join(options.outDir, 'hits.cxi');
  const summaryPath = join(options.outDir, 'run-summary.json');
  let best: FrameResult | undefined;
  let letGoBest: (() => void) | undefined;
  const stream = await runPipeline({
    source: sim.cxiPath,
    geometryPath: geomPath,
    processor: { method: 'peaknet', modelPath, workers: 1 },
    outPath: hitsPath,
    summaryPath,
    onResult: (result) => {
      if (result.hit && (best === undefined || result.peaks.count > best.peaks.count)) {
        // Its pixels are drawn after the run: held, so the source does not reuse their memory.
        letGoBest?.();
        letGoBest = result.loan?.hold();
        best = result;
      }
    },
  });
  const pngPath = join(options.outDir, 'hit.png');
  const shown = best as FrameResult | undefined;
  if (shown?.pixels !== undefined)
    writeFileSync(pngPath, hitImagePng(maps, assemblyMap(maps), shown.pixels, shown.peaks).png);
  log(
    `pipeline  ${sim.cxiPath} through the in-process pipeline (${modelName}): ${stream.frames} frames, ${stream.hits} hits ` +
      `(${(100 * stream.hitRate).toFixed(1)} %), ${stream.peaksPerHit.toFixed(1)} peaks per hit, ${stream.framesPerSecond.toFixed(2)} frames/s, ` +
      `latency p50 ${stream.latencyMs.p50.toFixed(0)} ms; lost ${stream.lost}`,
  );
  log(
    `outputs   ${stream.outputs.cxi} (${stream.rows} rows), ${stream.outputs.lst}, ${stream.outputs.geom}, ${summaryPath}` +
      (shown === undefined
        ? ''
        : `, ${pngPath} (frame ${shown.id.event}, ${shown.peaks.count} peaks circled)`),
  );
  log(
    `index     indexamajig -i ${stream.outputs.lst} -g ${stream.outputs.geom} --peaks=cxi -o hits.stream ...`,
  );

  const model = modelEval as EvalReport;
  return {
    detector: {
      name: geometry.sourcePath ?? 'default',
      panels: geometry.panels.length,
      pixels,
      slabShape,
      bestResolutionA: 1e10 / maxInvD,
    },
    run: {
      path: sim.cxiPath,
      streamPath: sim.streamPath,
      preset: options.preset,
      frames: frames.length,
      hits,
      truthPeaks,
      writeMs,
      readBackIdentical: sim.readBackIdentical,
    },
    hotPixels,
    split: { trainFrames, heldOutFrames, heldOutHits, heldOutTruthPeaks },
    pf8: {
      defaults: pf8ParamsToJson(pf8.defaults.params),
      tuned: pf8ParamsToJson(tuned),
      paramsPath,
      tuning: {
        search: pf8.tuning.search,
        configurations: pf8.tuning.configurations,
        evaluations: pf8.tuning.evaluations,
        seconds: pf8.tuning.seconds,
        workers: pf8.tuning.workers,
        trainF1: pf8.tuning.best.f1,
        rounds: pf8.tuning.rounds,
      },
    },
    model: {
      path: modelPath,
      config: modelName,
      params: file.meta.params,
      tile: file.meta.tile,
      decision: file.meta.decision,
      trainingSteps: file.meta.provenance.steps,
      trainingWallSeconds: file.meta.provenance.wallSeconds,
    },
    inference: {
      frames: heldOutFrames,
      tiles: finder.tiles,
      mpixPerS,
      found: model.predictedPeaks,
      truth: model.truthPeaks,
      precision: model.micro.precision,
      recall: model.micro.recall,
      f1: model.micro.f1,
    },
    radiusPx,
    heldOut: heldOutScores,
    peaksPath,
    pipeline: {
      frames: stream.frames,
      hits: stream.hits,
      hitRate: stream.hitRate,
      peaksPerHit: stream.peaksPerHit,
      framesPerSecond: stream.framesPerSecond,
      latencyMs: stream.latencyMs,
      lost: stream.lost,
      rows: stream.rows,
      outputs: {
        cxi: stream.outputs.cxi,
        lst: stream.outputs.lst,
        geom: stream.outputs.geom,
        summary: summaryPath,
        png: pngPath,
      },
      pngFrame: shown?.id.event ?? -1,
      pngPeaks: shown?.peaks.count ?? 0,
    },
  };
}
