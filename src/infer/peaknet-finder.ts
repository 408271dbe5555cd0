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
import { BATCH_DIM, type DecisionSpec, type ModelFile } from './model-file.js';

export type DecisionRule = Pick<DecisionSpec, 'marginLogit' | 'minPixels'>;

import { componentPeaks } from './peaks.js';
import { preprocessTile } from './preprocess.js';
import { cutTile, planTiles, type Tile } from './tiling.js';

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
 * batch is 1, and the tile is the file's; else the graph rebuilt from the file's weights, with a
 * symbolic batch axis when `batch` is 0.
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
  const model = peakNetFromFile(file, { batch: Math.max(1, batch), ...size });
  const metadata = decodeModel(file.bytes, file.path).metadata;
  return encodeModel(model.toOnnx(metadata, batch === 0 ? { batchDim: BATCH_DIM } : undefined));
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
  const { decision, preprocessing } = file.meta;
  // Longer tiles run the file's weights in a graph rebuilt for their shape: fp32 files only.
  const tileSpec =
    (file.meta.precision ?? 'fp32') === 'fp32' ? file.meta.tile : { ...file.meta.tile, maxPx: undefined };
  const tiles = planTiles(maps, tileSpec);
  // A model run takes tiles of one shape, up to `batch` file tiles' worth of pixels (at least one).
  const batch = Math.max(1, options.batch ?? 8);
  const batchPixels = batch * tileSpec.heightPx * tileSpec.widthPx;
  const groups = groupTiles(tiles, batchPixels);
  const sessions = new Map<string, Session>();
  const sessionFor = async (group: TileGroup): Promise<Session> => {
    const sameTile = group.heightPx === tileSpec.heightPx && group.widthPx === tileSpec.widthPx;
    // One session serves every batch of a shape whose graph has a symbolic batch axis (the file's
    // own, or one rebuilt for a longer tile); files written without it rebuild per batch size.
    const symbolic = !sameTile || file.dynamicBatch;
    const key = `${group.heightPx}x${group.widthPx}${symbolic ? '' : `x${group.tiles.length}`}`;
    let session = sessions.get(key);
    if (session === undefined) {
      // The file's own graph (its batch, or any where symbolic), else one rebuilt with a symbolic batch.
      const bytes = modelBytesForBatch(file, sameTile ? group.tiles.length : 0, group);
      session = await createSession(bytes, {
        executionProvider: options.provider,
        intraOpThreads: options.intraOpThreads,
      });
      sessions.set(key, session);
    }
    return session;
  };
  const largestGroup = Math.max(...groups.map((g) => g.tiles.length * g.heightPx * g.widthPx));
  const input = new Float32Array(largestGroup);
  const valid = new Uint8Array(largestGroup);
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
    for (const group of groups) {
      const session = await sessionFor(group);
      const tilePixels = group.heightPx * group.widthPx;
      const n = group.tiles.length;
      group.tiles.forEach((tile, b) => {
        const values = input.subarray(b * tilePixels, (b + 1) * tilePixels);
        const tileValid = valid.subarray(b * tilePixels, (b + 1) * tilePixels);
        cutTile(image, maps, goodPixels, tile, values, tileValid);
        preprocessTile(values, tileValid, tilePixels, preprocessing);
      });
      const out = await session.run({
        image: {
          dataType: 'float32',
          dims: [n, 1, group.heightPx, group.widthPx],
          values: input.subarray(0, n * tilePixels),
        },
      });
      options.observe?.(out, n);
      const logits = out[session.outputNames[0]].values as Float32Array;
      group.tiles.forEach((tile, b) => {
        const base = b * 2 * tilePixels;
        const validBase = b * tilePixels;
        for (let ss = tile.ownSs0; ss < tile.ownSs1; ss++) {
          const r = ss - tile.ss0;
          for (let fs = tile.ownFs0; fs < tile.ownFs1; fs++) {
            const t = r * group.widthPx + (fs - tile.fs0);
            if (valid[validBase + t])
              margins[ss * fsSize + fs] = logits[base + tilePixels + t] - logits[base + t];
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

/** Tiles of one shape that run through the model together. */
interface TileGroup {
  heightPx: number;
  widthPx: number;
  tiles: Tile[];
}

/**
 * The plan's tiles by shape (shapes in order of first appearance, tiles in plan order within one),
 * cut into model runs of at most `batchPixels` of input (at least one tile each): a frame's tiles
 * are prepared, run and decided group by group.
 */
export function groupTiles(tiles: readonly Tile[], batchPixels: number): TileGroup[] {
  const byShape = new Map<string, Tile[]>();
  for (const tile of tiles) {
    const key = `${tile.heightPx}x${tile.widthPx}`;
    const list = byShape.get(key);
    if (list === undefined) byShape.set(key, [tile]);
    else list.push(tile);
  }
  const groups: TileGroup[] = [];
  for (const list of byShape.values()) {
    const { heightPx, widthPx } = list[0];
    const perRun = Math.max(1, Math.floor(batchPixels / (heightPx * widthPx)));
    for (let i = 0; i < list.length; i += perRun)
      groups.push({ heightPx, widthPx, tiles: list.slice(i, i + perRun) });
  }
  return groups;
}
