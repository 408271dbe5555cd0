/**
 * The model file: one ONNX file that carries everything needed to serve it. Its `metadata_props`
 * hold, under the key `braggflow`, a JSON document (`ModelFileMeta`): the PeakNet config, the input
 * preprocessing, the tile the graph was built for, the decision rule that turns logits into peak
 * pixels, and provenance. The weights are the graph's initialisers; a safetensors checkpoint beside
 * the file (same name, `.safetensors`) keeps optimiser state for resuming, and is not needed to serve.
 *
 * The graph: input `image` float32 [batch, 1, tileH, tileW] (already preprocessed, see preprocess.ts),
 * output `logits` float32 [batch, 2, tileH, tileW] (class 0 background, class 1 peak). `batch` is a
 * symbolic dimension, so one session serves any number of tiles (files written before it was, with
 * batch 1, are served by rebuilding the graph per batch size from their weights).
 */
import { z } from 'zod';
import type { PeakNetConfig } from '../nn/models/config.js';
import type { PeakNetModel } from '../nn/models/registry.js';
import { resolveConfig } from '../nn/models/registry.js';
import { decodeModel, encodeModel, type WrittenModel, writeModel } from '../nn/onnx/emit.js';
import type { OnnxModelSpec } from '../nn/onnx/spec.js';
import { readUserFile, UserError } from '../util/errors.js';
import { BRAGGFLOW_VERSION } from '../util/version.js';

export const MODEL_FORMAT = 'braggflow-peaknet';
/** Bumped when a field's meaning changes; a reader refuses a newer format instead of guessing. */
export const MODEL_FORMAT_VERSION = 1;
/** The metadata_props key of the JSON document. */
export const MODEL_METADATA_KEY = 'braggflow';

const preprocessingSchema = z.object({
  /**
   * `robust-asinh`: per tile, masked pixels set aside, the background level and noise from
   * sigma-clipped statistics, then asinh((x - level) / noise). Gain and pedestal cancel: raw ADU of
   * any detector goes in as it is.
   */
  kind: z.literal('robust-asinh'),
  /** Clipping at this many sigmas, this many times. */
  clipSigma: z.number().positive(),
  clipIterations: z.number().int().min(0).max(20),
});
export type Preprocessing = z.infer<typeof preprocessingSchema>;

export const DEFAULT_PREPROCESSING: Readonly<Preprocessing> = Object.freeze({
  kind: 'robust-asinh',
  clipSigma: 3,
  clipIterations: 4,
});

const tileSchema = z.object({
  /** The graph's input [H, W] (multiples of 32); panels are padded or cut to it. */
  heightPx: z.number().int().positive().multipleOf(32),
  widthPx: z.number().int().positive().multipleOf(32),
  /** Overlap between neighbouring tiles on a panel larger than the tile, pixels. */
  overlapPx: z.number().int().min(0),
  /**
   * Panel-fitted serving, for models trained on tiles of several shapes (absent: every tile is the
   * graph's): each panel axis is served in one tile of its length rounded up to 32, up to this many
   * pixels, and an axis longer than that in overlapping tiles of this length (tiling.ts). The graph's
   * H and W are the training tile's; another shape runs the same weights in a graph built for it.
   */
  maxPx: z.number().int().positive().multipleOf(32).optional(),
});
export type TileSpec = z.infer<typeof tileSchema>;

const decisionSchema = z.object({
  /** A pixel is a peak pixel where logit(peak) - logit(background) > marginLogit (0 = argmax). */
  marginLogit: z.number(),
  /** Components of fewer pixels are dropped. */
  minPixels: z.number().int().min(1),
  /** How the rule was chosen (e.g. `validation F1 on 8 simulated frames`). */
  chosenBy: z.string().optional(),
});
export type DecisionSpec = z.infer<typeof decisionSchema>;

/**
 * How the weights and arithmetic are stored: `fp32`; `fp16-weights` (initialisers in float16, cast to
 * float32 when the session loads: half the file, the same fp32 arithmetic); `int8-qdq` (static
 * quantisation: convolutions' inputs, weights and outputs through QuantizeLinear/DequantizeLinear
 * pairs calibrated on frames, which onnxruntime fuses into integer convolutions).
 */
export const MODEL_PRECISIONS = ['fp32', 'fp16-weights', 'int8-qdq'] as const;
export type ModelPrecision = (typeof MODEL_PRECISIONS)[number];

const provenanceSchema = z.object({
  /** What the model was trained on, in words and numbers. */
  data: z.string(),
  steps: z.number().int().min(0),
  wallSeconds: z.number().min(0),
  /** ISO 8601. */
  date: z.string(),
  braggflowVersion: z.string(),
  /** Free extras (teacher, validation scores, ...). */
  notes: z.record(z.string(), z.unknown()).optional(),
});
export type Provenance = z.infer<typeof provenanceSchema>;

const metaSchema = z.object({
  format: z.literal(MODEL_FORMAT),
  formatVersion: z.number().int().min(1),
  /** PeakNet structure (validated again by the registry on load). */
  config: z.record(z.string(), z.unknown()),
  params: z.number().int().min(0),
  preprocessing: preprocessingSchema,
  tile: tileSchema,
  decision: decisionSchema,
  provenance: provenanceSchema,
  /** Absent in files written before precisions existed: fp32. */
  precision: z.enum(MODEL_PRECISIONS).optional(),
  /**
   * The truth rule its simulated training labels followed: spots of at least this expected integrated
   * SNR (simulate --truth-min-snr). What the model calls a spot; absent where unknown.
   */
  truthMinSnr: z.number().positive().optional(),
});

export interface ModelFileMeta {
  format: typeof MODEL_FORMAT;
  formatVersion: number;
  config: PeakNetConfig;
  params: number;
  preprocessing: Preprocessing;
  tile: TileSpec;
  decision: DecisionSpec;
  provenance: Provenance;
  precision?: ModelPrecision;
  truthMinSnr?: number;
}

export interface ModelFile {
  path: string;
  meta: ModelFileMeta;
  /** The ONNX bytes, ready for an onnxruntime session. */
  bytes: Uint8Array;
  /** Whether the graph's batch axis is symbolic (one session for any batch). */
  dynamicBatch: boolean;
}

export type ModelFileMetaInput = Omit<ModelFileMeta, 'format' | 'formatVersion' | 'params' | 'config'>;

/** The symbolic batch axis of model files' graphs. */
export const BATCH_DIM = 'batch';

/**
 * The ONNX description of `model` (built with its weights as initialisers, at any batch) as a model
 * file: a symbolic batch axis and the metadata. The tile of `meta` must be the graph's input size.
 */
export function modelFileSpec(model: PeakNetModel, meta: ModelFileMetaInput): OnnxModelSpec {
  const full = fullMeta(model, meta);
  return model.toOnnx({ [MODEL_METADATA_KEY]: JSON.stringify(full) }, { batchDim: BATCH_DIM });
}

/** Writes `model` with the metadata to `path` (see modelFileSpec). */
export function writeModelFile(path: string, model: PeakNetModel, meta: ModelFileMetaInput): WrittenModel {
  return writeModel(modelFileSpec(model, meta), path, { externalData: 'never' });
}

/** Writes an ONNX description whose metadata is a model file's (export's precisions). */
export function writeModelFileSpec(path: string, spec: OnnxModelSpec, meta: ModelFileMeta): WrittenModel {
  return writeModel(
    { ...spec, metadata: { ...spec.metadata, [MODEL_METADATA_KEY]: JSON.stringify(meta) } },
    path,
    {
      externalData: 'never',
    },
  );
}

/** The model file of `model` without writing it (training's validation serves it as it would be shipped). */
export function modelFileInMemory(
  model: PeakNetModel,
  meta: ModelFileMetaInput,
  path = '(in memory)',
): ModelFile {
  return {
    path,
    meta: fullMeta(model, meta),
    bytes: encodeModel(modelFileSpec(model, meta)),
    dynamicBatch: true,
  };
}

/** A model file from an ONNX description with model-file metadata (quantised and fp16 variants). */
export function modelFileFromSpec(spec: OnnxModelSpec, meta: ModelFileMeta, path = '(in memory)'): ModelFile {
  const withMeta = { ...spec, metadata: { ...spec.metadata, [MODEL_METADATA_KEY]: JSON.stringify(meta) } };
  return {
    path,
    meta,
    bytes: encodeModel(withMeta),
    dynamicBatch: typeof spec.inputs[0]?.dims[0] === 'string',
  };
}

function fullMeta(model: PeakNetModel, meta: ModelFileMetaInput): ModelFileMeta {
  const [, , h, w] = model.image.shape;
  if (h !== meta.tile.heightPx || w !== meta.tile.widthPx)
    throw new Error(
      `model graph is built for ${h}x${w}, the metadata's tile is ${meta.tile.heightPx}x${meta.tile.widthPx}`,
    );
  return {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    config: model.config,
    params: model.graph.paramCount(),
    ...meta,
    precision: meta.precision ?? 'fp32',
  };
}

/** Reads and checks a model file's metadata; a file that is not one is a one-line UserError. */
export function parseModelFileMeta(metadata: Readonly<Record<string, string>>, path: string): ModelFileMeta {
  const text = metadata[MODEL_METADATA_KEY];
  if (text === undefined)
    throw new UserError(
      `is an ONNX model without braggflow metadata (no metadata_props key '${MODEL_METADATA_KEY}'); export one with \`braggflow export\``,
      path,
    );
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new UserError('is not JSON', path, `metadata_props.${MODEL_METADATA_KEY}`);
  }
  const version = (raw as { formatVersion?: unknown })?.formatVersion;
  if (typeof version === 'number' && version > MODEL_FORMAT_VERSION)
    throw new UserError(
      `was written in model format ${version}; this braggflow (${BRAGGFLOW_VERSION}) reads format ${MODEL_FORMAT_VERSION} and older`,
      path,
      `metadata_props.${MODEL_METADATA_KEY}.formatVersion`,
    );
  const parsed = metaSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError(issue.message, path, `metadata_props.${MODEL_METADATA_KEY}.${issue.path.join('.')}`);
  }
  let config: PeakNetConfig;
  try {
    config = resolveConfig(parsed.data.config as unknown as PeakNetConfig);
  } catch (error) {
    throw new UserError((error as Error).message, path, `metadata_props.${MODEL_METADATA_KEY}.config`);
  }
  return { ...parsed.data, format: MODEL_FORMAT, config };
}

/** Reads a model file: bytes and checked metadata. */
export function readModelFile(path: string): ModelFile {
  const bytes: Uint8Array = readUserFile(path);
  let metadata: Record<string, string>;
  let inputs: { name: string; dims: (number | string)[] }[];
  try {
    const spec = decodeModel(bytes, path);
    metadata = { ...(spec.metadata ?? {}) };
    inputs = spec.inputs.map((i) => ({ name: i.name, dims: [...i.dims] }));
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`is not an ONNX model (${(error as Error).message.split('\n')[0]})`, path);
  }
  const meta = parseModelFileMeta(metadata, path);
  const image = inputs.find((i) => i.name === 'image');
  if (image === undefined || image.dims[2] !== meta.tile.heightPx || image.dims[3] !== meta.tile.widthPx)
    throw new UserError(
      `graph input 'image' is [${image?.dims.join(', ') ?? 'missing'}], the metadata's tile is ${meta.tile.heightPx}x${meta.tile.widthPx}`,
      path,
      'graph.input',
    );
  return { path, meta, bytes, dynamicBatch: typeof image.dims[0] === 'string' };
}
