/**
 * `braggflow export`: a training checkpoint (safetensors) to a model file (model-file.ts), with the
 * tile, preprocessing and decision rule recorded. The rule (logit margin, smallest component) is the
 * one given, or, with calibration frames (a CXI run with its truth peak table, as `braggflow
 * simulate` writes it), the one with the best peak-level F1 on them (Hungarian within `radiusPx`, as
 * `braggflow eval`): the model's argmax is not calibrated after a short run, so the threshold is
 * chosen on data, as pf8's parameters are, and then travels inside the file.
 *
 * `--fp16` and `--int8` rewrite the fp32 graph (precision.ts); int8 takes its activation ranges from
 * the calibration frames, and the report gives both models' F1 and serving time on them.
 */

import { buildMask } from '../detector/mask-file.js';
import { computePixelMaps, type PixelMaps } from '../detector/pixel-maps.js';
import { readPeakTable } from '../io/cxi-peaks.js';
import { openFrameReader } from '../io/cxi-reader.js';
import { readGeometry } from '../io/geom.js';
import { readCheckpointInfo } from '../nn/checkpoint.js';
import type { PeakNetModel } from '../nn/models/registry.js';
import { decodeModel } from '../nn/onnx/emit.js';
import type { OnnxValueInfo } from '../nn/onnx/spec.js';
import type { PeakList } from '../peaks/peak-list.js';
import { loadPeakNetCheckpoint } from '../train/trainer.js';
import { UserError } from '../util/errors.js';
import { BRAGGFLOW_VERSION } from '../util/version.js';
import { createMarginRuleScorer } from './calibrate.js';
import {
  DEFAULT_PREPROCESSING,
  type DecisionSpec,
  type ModelFile,
  type ModelFileMeta,
  type ModelFileMetaInput,
  modelFileFromSpec,
  modelFileInMemory,
  readModelFile,
  type TileSpec,
  writeModelFileSpec,
} from './model-file.js';
import {
  createPeakNetFinder,
  type DecisionRule,
  type PeakNetFinder,
  type PeakNetFinderOptions,
  peakNetFromFile,
} from './peaknet-finder.js';
import {
  calibrationTensors,
  fp16Weights,
  quantisableConvs,
  quantizeQdq,
  RangeCollector,
  withExtraOutputs,
} from './precision.js';

export const DEFAULT_TILE: Readonly<TileSpec> = Object.freeze({ heightPx: 256, widthPx: 256, overlapPx: 32 });

export interface CalibrationInput {
  geometryPath: string;
  /** CXI with frames at /entry_1/data_1/data and a truth peak table. */
  cxiPath: string;
  truthGroup?: string;
  /** Frames [first, end) to use (default all). */
  frames?: [number, number];
  radiusPx?: number;
}

/** `fp16`: weights stored in float16; `int8`: static QDQ quantisation calibrated on frames. */
export type ExportPrecision = 'fp32' | 'fp16' | 'int8';

export interface ExportOptions {
  /** The source: a training checkpoint ... */
  checkpointPath?: string;
  /** ... or an fp32 model file (re-exported at another precision, keeping its metadata). */
  modelPath?: string;
  outPath: string;
  /** For a checkpoint (a model file keeps its own). */
  tile?: TileSpec;
  decision?: DecisionRule;
  /** Frames with truth: the decision rule is chosen on them; int8 also takes its ranges from them. */
  calibration?: CalibrationInput;
  precision?: ExportPrecision;
  /** Provenance `data`, in words (default: from the checkpoint). */
  data?: string;
  wallSeconds?: number;
}

/** A model scored on the calibration frames under its best rule. */
export interface CalibrationScore {
  f1: number;
  argmaxF1: number;
  /** Serving time per frame (tiles, preprocessing, model, margins), seconds. */
  secondsPerFrame: number;
}

export interface ExportReport {
  out: string;
  meta: ModelFileMeta;
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  bytes: number;
  calibration?: {
    frames: number;
    truthPeaks: number;
    /** The exported file's score; with --fp16/--int8 also the fp32 model's, on the same frames. */
    f1: number;
    argmaxF1: number;
    secondsPerFrame: number;
    fp32?: CalibrationScore;
    /** int8: calibration tiles and the activations given ranges. */
    quantised?: { tiles: number; convs: number; activations: number };
  };
}

/**
 * A checkpoint's network built for one tile, and the model-file metadata it implies besides the
 * decision rule: default preprocessing, the tile, provenance from the checkpoint (its data, steps and
 * wall time unless given). Used by `export` and by `distill` for a checkpoint teacher.
 */
export function checkpointForTile(
  checkpointPath: string,
  tile: TileSpec,
  given: { data?: string; wallSeconds?: number } = {},
): { model: PeakNetModel; meta: Omit<ModelFileMetaInput, 'decision'> } {
  const info = readCheckpointInfo(checkpointPath);
  const model = loadPeakNetCheckpoint(checkpointPath, {
    batch: 1,
    heightPx: tile.heightPx,
    widthPx: tile.widthPx,
  });
  const provenance = {
    data: given.data ?? info.metadata.data ?? `checkpoint ${checkpointPath}`,
    steps: Number(info.metadata.lineage_steps ?? info.step),
    wallSeconds:
      given.wallSeconds ?? Number(info.metadata.lineage_seconds ?? info.metadata.wall_seconds ?? 0),
    date: new Date().toISOString(),
    braggflowVersion: BRAGGFLOW_VERSION,
  };
  const truth = info.metadata.truth_min_snr;
  return {
    model,
    meta: {
      preprocessing: { ...DEFAULT_PREPROCESSING },
      tile: { ...tile },
      provenance,
      ...(truth === undefined ? {} : { truthMinSnr: Number(truth) }),
    },
  };
}

/**
 * The graph's tile alone: an fp16 or int8 graph cannot be rebuilt for other shapes, so such a file is
 * served on fixed tiles (its model saw them in training too).
 */
function fixedTiles(tile: ModelFileMeta['tile']): ModelFileMeta['tile'] {
  const { maxPx: _fitted, ...fixed } = tile;
  return fixed;
}

/** An fp32 model file with a symbolic batch axis, from a checkpoint or an fp32 model file. */
function fp32Source(options: ExportOptions): ModelFile {
  if ((options.checkpointPath === undefined) === (options.modelPath === undefined))
    throw new UserError('give a checkpoint or a model file to export, not both or neither');
  if (options.modelPath !== undefined) {
    const file = readModelFile(options.modelPath);
    const precision = file.meta.precision ?? 'fp32';
    if (precision !== 'fp32')
      throw new UserError(`is a ${precision} model file; export from its fp32 file or checkpoint`, file.path);
    const meta =
      options.decision === undefined
        ? file.meta
        : { ...file.meta, decision: { ...options.decision, chosenBy: 'given' } };
    // Always rebuilt from the file's weights: an older file gets this version's graph (its lowering
    // for onnxruntime, a symbolic batch axis) with its weights and metadata unchanged.
    return modelFileInMemory(peakNetFromFile(file, file.meta.tile), meta, file.path);
  }
  const tile = options.tile ?? DEFAULT_TILE;
  const { model, meta } = checkpointForTile(options.checkpointPath as string, tile, {
    data: options.data,
    wallSeconds: options.wallSeconds,
  });
  const decision: DecisionSpec = {
    ...(options.decision ?? { marginLogit: 0, minPixels: 2 }),
    chosenBy: 'given',
  };
  return modelFileInMemory(model, { ...meta, decision }, options.checkpointPath);
}

export async function exportModel(options: ExportOptions): Promise<ExportReport> {
  const precision = options.precision ?? 'fp32';
  if (precision === 'int8' && options.calibration === undefined)
    throw new UserError(
      '--int8 needs calibration frames (--calibrate RUN.cxi --geom G)',
      undefined,
      '--int8',
    );
  const base = fp32Source(options);
  const baseSpec = decodeModel(base.bytes, base.path);
  let spec = baseSpec;
  let meta: ModelFileMeta = base.meta;
  let quantised: { tiles: number; convs: number; activations: number } | undefined;
  let fp32: CalibrationScore | undefined;
  const calibrationData =
    options.calibration === undefined ? undefined : await loadCalibration(options.calibration);
  if (calibrationData !== undefined && precision !== 'fp32') {
    const scored = await calibrateDecision(base, calibrationData);
    fp32 = { f1: scored.f1, argmaxF1: scored.argmaxF1, secondsPerFrame: scored.secondsPerFrame };
  }
  if (precision === 'fp16') {
    spec = fp16Weights(baseSpec);
    meta = { ...meta, precision: 'fp16-weights', tile: fixedTiles(meta.tile) };
  } else if (precision === 'int8') {
    const names = calibrationTensors(baseSpec);
    const instrumented = modelFileFromSpec(withExtraOutputs(baseSpec, names), meta, base.path);
    const collector = new RangeCollector();
    let tiles = 0;
    await forEachCalibrationFrame(instrumented, calibrationData as CalibrationData, {
      observe(outputs, count) {
        tiles += count;
        for (const name of names) collector.add(name, outputs[name].values as Float32Array);
      },
    });
    spec = quantizeQdq(baseSpec, collector.ranges);
    meta = { ...meta, precision: 'int8-qdq', tile: fixedTiles(meta.tile) };
    quantised = { tiles, convs: quantisableConvs(baseSpec).length, activations: names.length };
  }
  let calibration: ExportReport['calibration'];
  if (calibrationData !== undefined) {
    const scored = await calibrateDecision(modelFileFromSpec(spec, meta, options.outPath), calibrationData);
    meta = {
      ...meta,
      decision: {
        ...scored.rule,
        chosenBy: `best peak F1 (${scored.f1.toFixed(3)}, within ${calibrationData.input.radiusPx ?? 2} px) on ${scored.frames} frames of ${calibrationData.input.cxiPath}`,
      },
    };
    calibration = {
      frames: scored.frames,
      truthPeaks: scored.truthPeaks,
      f1: scored.f1,
      argmaxF1: scored.argmaxF1,
      secondsPerFrame: scored.secondsPerFrame,
      fp32,
      quantised,
    };
  }
  const written = writeModelFileSpec(options.outPath, spec, meta);
  const file = readModelFile(options.outPath);
  return {
    out: options.outPath,
    meta: file.meta,
    inputs: spec.inputs.map((i) => ({ ...i, dims: [...i.dims] })),
    outputs: spec.outputs.map((o) => ({ ...o, dims: [...o.dims] })),
    bytes: written.modelBytes,
    calibration,
  };
}

/** The calibration run's geometry, mask, truth and frame range: read once for every pass over it. */
interface CalibrationData {
  input: CalibrationInput;
  maps: PixelMaps;
  mask: Uint8Array;
  truth: PeakList[];
  first: number;
  end: number;
}

async function loadCalibration(input: CalibrationInput): Promise<CalibrationData> {
  const maps = computePixelMaps(readGeometry(input.geometryPath));
  const mask = await buildMask(maps, { dataFile: input.cxiPath });
  const truth = await readPeakTable(input.cxiPath, input.truthGroup ?? '/entry_1/truth_1');
  const reader = await openFrameReader(input.cxiPath, { expectedSlabShape: [maps.ssSize, maps.fsSize] });
  const frameCount = reader.frameCount;
  reader.close();
  const [first, end] = input.frames ?? [0, frameCount];
  if (end > frameCount || first >= end)
    throw new UserError(`frames ${first}:${end} are not in the file (it holds ${frameCount})`, input.cxiPath);
  return { input, maps, mask, truth, first, end };
}

/** Serves `file` on each calibration frame (frame, truth peaks); options reach the finder. */
async function forEachCalibrationFrame(
  file: ModelFile,
  data: CalibrationData,
  finderOptions: PeakNetFinderOptions,
  onFrame?: (finder: PeakNetFinder, image: Float32Array, truth: PeakList) => Promise<void>,
): Promise<{ frames: number; truthPeaks: number }> {
  const { maps, truth, first, end } = data;
  const reader = await openFrameReader(data.input.cxiPath, { expectedSlabShape: [maps.ssSize, maps.fsSize] });
  const finder = await createPeakNetFinder(file, maps, data.mask, finderOptions);
  let truthPeaks = 0;
  try {
    for (let f = first; f < end; f++) {
      const image = reader.readFrame(f);
      truthPeaks += truth[f].count;
      if (onFrame === undefined) await finder.margins(image);
      else await onFrame(finder, image, truth[f]);
    }
  } finally {
    await finder.release();
    reader.close();
  }
  return { frames: end - first, truthPeaks };
}

/** The decision rule with the best micro F1 on labelled frames, for `file`. */
async function calibrateDecision(
  file: ModelFile,
  data: CalibrationData,
): Promise<{
  rule: DecisionRule;
  f1: number;
  argmaxF1: number;
  frames: number;
  truthPeaks: number;
  secondsPerFrame: number;
}> {
  const scorer = createMarginRuleScorer(data.input.radiusPx ?? 2);
  let margins = 0;
  const run = await forEachCalibrationFrame(file, data, {}, async (finder, image, truth) => {
    const start = performance.now();
    const map = await finder.margins(image);
    margins += (performance.now() - start) / 1000;
    scorer.addFrame(finder, map, image, truth);
  });
  const best = scorer.best();
  return {
    rule: best.rule,
    f1: best.f1,
    argmaxF1: best.argmaxF1,
    frames: run.frames,
    truthPeaks: run.truthPeaks,
    secondsPerFrame: margins / run.frames,
  };
}
