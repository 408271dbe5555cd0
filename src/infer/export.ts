/**
 * `braggflow export`: a training checkpoint (safetensors) to a model file (model-file.ts), with the
 * tile, preprocessing and decision rule recorded. The rule (logit margin, smallest component) is the
 * one given, or, with calibration frames (a CXI run with its truth peak table, as `braggflow
 * simulate` writes it), the one with the best peak-level F1 on them (Hungarian within `radiusPx`, as
 * `braggflow eval`): the model's argmax is not calibrated after a short run, so the threshold is
 * chosen on data, as pf8's parameters are, and then travels inside the file.
 */

import { buildMask } from '../detector/mask-file.js';
import { computePixelMaps } from '../detector/pixel-maps.js';
import { readPeakTable } from '../io/cxi-peaks.js';
import { openFrameReader } from '../io/cxi-reader.js';
import { readGeometry } from '../io/geom.js';
import { readCheckpointInfo } from '../nn/checkpoint.js';
import type { PeakNetModel } from '../nn/models/registry.js';
import { loadPeakNetCheckpoint } from '../train/trainer.js';
import { UserError } from '../util/errors.js';
import { BRAGGFLOW_VERSION } from '../util/version.js';
import { createMarginRuleScorer } from './calibrate.js';
import {
  DEFAULT_PREPROCESSING,
  type DecisionSpec,
  type ModelFileMeta,
  type ModelFileMetaInput,
  readModelFile,
  type TileSpec,
  writeModelFile,
} from './model-file.js';
import { createPeakNetFinder, type DecisionRule } from './peaknet-finder.js';

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

export interface ExportOptions {
  checkpointPath: string;
  outPath: string;
  tile?: TileSpec;
  decision?: DecisionRule;
  calibration?: CalibrationInput;
  /** Provenance `data`, in words (default: from the checkpoint). */
  data?: string;
  wallSeconds?: number;
}

export interface ExportReport {
  out: string;
  meta: ModelFileMeta;
  calibration?: { frames: number; truthPeaks: number; f1: number; argmaxF1: number };
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
    steps: info.step,
    wallSeconds: given.wallSeconds ?? Number(info.metadata.wall_seconds ?? 0),
    date: new Date().toISOString(),
    braggflowVersion: BRAGGFLOW_VERSION,
  };
  return { model, meta: { preprocessing: { ...DEFAULT_PREPROCESSING }, tile: { ...tile }, provenance } };
}

export async function exportCheckpoint(options: ExportOptions): Promise<ExportReport> {
  const tile = options.tile ?? DEFAULT_TILE;
  const { model, meta } = checkpointForTile(options.checkpointPath, tile, {
    data: options.data,
    wallSeconds: options.wallSeconds,
  });
  const first: DecisionSpec = options.decision ?? { marginLogit: 0, minPixels: 2 };
  writeModelFile(options.outPath, model, { ...meta, decision: { ...first, chosenBy: 'given' } });
  if (options.calibration === undefined)
    return { out: options.outPath, meta: readModelFile(options.outPath).meta };
  const chosen = await calibrateDecision(options.outPath, options.calibration);
  writeModelFile(options.outPath, model, {
    ...meta,
    decision: {
      ...chosen.rule,
      chosenBy: `best peak F1 (${chosen.f1.toFixed(3)}, within ${options.calibration.radiusPx ?? 2} px) on ${chosen.frames} frames of ${options.calibration.cxiPath}`,
    },
  });
  return {
    out: options.outPath,
    meta: readModelFile(options.outPath).meta,
    calibration: {
      frames: chosen.frames,
      truthPeaks: chosen.truthPeaks,
      f1: chosen.f1,
      argmaxF1: chosen.argmaxF1,
    },
  };
}

/** The decision rule with the best micro F1 on labelled frames, for the model file at `modelPath`. */
export async function calibrateDecision(
  modelPath: string,
  input: CalibrationInput,
): Promise<{ rule: DecisionRule; f1: number; argmaxF1: number; frames: number; truthPeaks: number }> {
  const file = readModelFile(modelPath);
  const maps = computePixelMaps(readGeometry(input.geometryPath));
  const mask = await buildMask(maps, { dataFile: input.cxiPath });
  const truth = await readPeakTable(input.cxiPath, input.truthGroup ?? '/entry_1/truth_1');
  const reader = await openFrameReader(input.cxiPath, { expectedSlabShape: [maps.ssSize, maps.fsSize] });
  const [first, end] = input.frames ?? [0, reader.frameCount];
  if (end > reader.frameCount || first >= end)
    throw new UserError(
      `frames ${first}:${end} are not in the file (it holds ${reader.frameCount})`,
      input.cxiPath,
    );
  const finder = await createPeakNetFinder(file, maps, mask);
  const scorer = createMarginRuleScorer(input.radiusPx ?? 2);
  let truthPeaks = 0;
  try {
    for (let f = first; f < end; f++) {
      const image = reader.readFrame(f);
      truthPeaks += truth[f].count;
      scorer.addFrame(finder, await finder.margins(image), image, truth[f]);
    }
  } finally {
    await finder.release();
    reader.close();
  }
  const best = scorer.best();
  return { rule: best.rule, f1: best.f1, argmaxF1: best.argmaxF1, frames: end - first, truthPeaks };
}
