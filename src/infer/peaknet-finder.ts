/**
 * `peaks --method peaknet`: a model file served on a geometry. Per frame: every panel tile is cut out
 * (tiling.ts), preprocessed on its own good pixels (preprocess.ts), run through the model in batches
 * of tiles, and the decision rule of the file marks peak pixels on the pixels each tile owns; then
 * components per panel become peaks (peaks.ts). Masked pixels (bad regions, mask files, NaN) are
 * zero at the model's input and never peak pixels.
 *
 * A file's graph has a symbolic batch axis: one session serves every batch of tiles. Files written
 * before that (batch 1) run a graph rebuilt for [N, 1, H, W] from their own weights.
 */
import type { PixelMaps } from '../detector/pixel-maps.js';
import { buildPeakNet, type PeakNetModel } from '../nn/models/registry.js';
import { decodeModel, encodeModel } from '../nn/onnx/emit.js';
import { createSession, type ExecutionProvider, type HostTensor, type Session } from '../nn/runtime.js';
import type { PeakList } from '../peaks/peak-list.js';
import { UserError } from '../util/errors.js';
import type { DecisionSpec, ModelFile } from './model-file.js';

export type DecisionRule = Pick<DecisionSpec, 'marginLogit' | 'minPixels'>;

import { componentPeaks } from './peaks.js';
import { preprocessTile } from './preprocess.js';
import { cutTile, planTiles } from './tiling.js';

export interface PeakNetFinderOptions {
  provider?: ExecutionProvider;
  /** Tiles per model run (default 8). */
  batch?: number;
  /** onnxruntime threads per op (default: onnxruntime's choice). */
  intraOpThreads?: number;
  maxPeaks?: number;
  /**
   * Called with every model run's outputs (all of the graph's, tiles first along axis 0) and the
   * number of tiles in it: export's int8 calibration reads activation ranges this way.
   */
  observe?: (outputs: Readonly<Record<string, HostTensor>>, tiles: number) => void;
}

export interface PeakNetFinder {
  /** The frame's peaks under the model file's decision rule. */
  find(image: ArrayLike<number>): Promise<PeakList>;
  /**
   * logit(peak) - logit(background) per slab pixel (-Infinity where no tile decides); the returned
   * array is reused by the next call.
   */
  margins(image: ArrayLike<number>): Promise<Float32Array>;
  /** Peaks of a margin map under any rule (for choosing the rule on validation frames). */
  peaksFromMargins(margins: Float32Array, image: ArrayLike<number>, rule: DecisionRule): PeakList;
  /** Tiles per frame on this geometry. */
  readonly tiles: number;
  release(): Promise<void>;
}

/**
 * The ONNX bytes of `file`'s network for a batch of `batch` tiles of `size` (default the file's tile;
 * the weights do not depend on either): the file's own bytes when its batch axis is symbolic or the
 * batch is 1, and the tile is the file's.
 */
export function modelBytesForBatch(
  file: ModelFile,
  batch: number,
  size: { heightPx: number; widthPx: number } = file.meta.tile,
): Uint8Array {
  const sameTile = size.heightPx === file.meta.tile.heightPx && size.widthPx === file.meta.tile.widthPx;
  if (sameTile && (batch === 1 || file.dynamicBatch)) return file.bytes;
  const precision = file.meta.precision ?? 'fp32';
  if (precision !== 'fp32')
    throw new UserError(
      `is a ${precision} model for ${file.meta.tile.heightPx}x${file.meta.tile.widthPx} tiles; it cannot be rebuilt for ${size.heightPx}x${size.widthPx} (export an fp32 file for that tile)`,
      file.path,
    );
  const model = peakNetFromFile(file, { batch, ...size });
  return encodeModel(model.toOnnx(decodeModel(file.bytes, file.path).metadata));
}

/** The network of an fp32 model file, rebuilt for `batch` tiles of a size, with the file's weights. */
export function peakNetFromFile(
  file: ModelFile,
  shape: { batch?: number; heightPx: number; widthPx: number },
): PeakNetModel {
  const spec = decodeModel(file.bytes, file.path);
  const weights = new Map(spec.initializers.map((t) => [t.name, t.values]));
  const model = buildPeakNet(file.meta.config, { ...shape, paramsAs: 'initializers' });
  for (const param of model.graph.params()) {
    const values = weights.get(param.name);
    if (values === undefined) throw new Error(`${file.path}: initializer ${param.name} is missing`);
    model.graph.getParam(param.name).set(values as Float32Array);
  }
  return model;
}

export async function createPeakNetFinder(
  file: ModelFile,
  maps: PixelMaps,
  goodPixels: Uint8Array | undefined,
  options: PeakNetFinderOptions = {},
): Promise<PeakNetFinder> {
  const { tile: tileSpec, decision, preprocessing } = file.meta;
  const tiles = planTiles(maps, tileSpec);
  const batch = Math.max(1, Math.min(options.batch ?? 8, tiles.length));
  const tilePixels = tileSpec.heightPx * tileSpec.widthPx;
  const sessions = new Map<number, Session>();
  const sessionFor = async (size: number): Promise<Session> => {
    // One session serves every batch size of a file with a symbolic batch axis.
    if (file.dynamicBatch) size = batch;
    let session = sessions.get(size);
    if (session === undefined) {
      session = await createSession(modelBytesForBatch(file, size), {
        executionProvider: options.provider,
        intraOpThreads: options.intraOpThreads,
      });
      sessions.set(size, session);
    }
    return session;
  };
  const input = new Float32Array(batch * tilePixels);
  const valids = Array.from({ length: batch }, () => new Uint8Array(tilePixels));
  const { ssSize, fsSize, panelIndex } = maps;
  const peakPixels = new Uint8Array(ssSize * fsSize);
  const maxPeaks = options.maxPeaks ?? 2048;
  const margins = new Float32Array(ssSize * fsSize);
  const peaksFromMargins = (marginMap: Float32Array, image: ArrayLike<number>, rule: DecisionRule) => {
    for (let i = 0; i < marginMap.length; i++) peakPixels[i] = marginMap[i] > rule.marginLogit ? 1 : 0;
    return componentPeaks(peakPixels, image, ssSize, fsSize, panelIndex, goodPixels, {
      minPixels: rule.minPixels,
      maxPeaks,
    });
  };
  const marginsOf = async (image: ArrayLike<number>): Promise<Float32Array> => {
    // -Infinity where no tile decides (masked, off-panel): never a peak pixel under any rule.
    margins.fill(Number.NEGATIVE_INFINITY);
    for (let first = 0; first < tiles.length; first += batch) {
      const group = tiles.slice(first, first + batch);
      // The last, shorter group runs a graph of its own size (built once, then reused).
      const session = await sessionFor(group.length);
      group.forEach((tile, b) => {
        const values = input.subarray(b * tilePixels, (b + 1) * tilePixels);
        cutTile(image, maps, goodPixels, tile, tileSpec, values, valids[b]);
        preprocessTile(values, valids[b], tilePixels, preprocessing);
      });
      const out = await session.run({
        image: {
          dataType: 'float32',
          dims: [group.length, 1, tileSpec.heightPx, tileSpec.widthPx],
          values: group.length === batch ? input : input.subarray(0, group.length * tilePixels),
        },
      });
      options.observe?.(out, group.length);
      const logits = out[session.outputNames[0]].values as Float32Array;
      group.forEach((tile, b) => {
        const base = b * 2 * tilePixels;
        const tileValid = valids[b];
        for (let ss = tile.ownSs0; ss < tile.ownSs1; ss++) {
          const r = ss - tile.ss0;
          for (let fs = tile.ownFs0; fs < tile.ownFs1; fs++) {
            const t = r * tileSpec.widthPx + (fs - tile.fs0);
            if (tileValid[t]) margins[ss * fsSize + fs] = logits[base + tilePixels + t] - logits[base + t];
          }
        }
      });
    }
    return margins;
  };
  return {
    tiles: tiles.length,
    margins: marginsOf,
    peaksFromMargins,
    async find(image) {
      return peaksFromMargins(await marginsOf(image), image, decision);
    },
    async release() {
      for (const session of sessions.values()) await session.release();
      sessions.clear();
    },
  };
}
