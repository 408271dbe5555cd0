/**
 * Training batches as a function of the step: micro-batch m holds tiles m x batch ... m x batch +
 * batch - 1 of one endless tile stream, tile t cut from frame floor(t / tilesPerFrame) with choices
 * drawn from (seed, t). A resumed run therefore trains on exactly the batches the uninterrupted run
 * would have, and a batch does not depend on which thread makes it.
 *
 * The loader runs the frame source and the tile cutting on a worker thread and keeps a few batches
 * ahead of the trainer, so onnxruntime's step and the simulator overlap on two cores.
 */
import { DEFAULT_PREPROCESSING } from '../infer/model-file.js';
import { frameSeed } from '../simulate/frame.js';
import { seededRandom } from '../util/random.js';
import { createWorkerPool, type WorkerPool, workerScriptUrl } from '../util/worker-pool.js';
import type { TrainConfig } from './config.js';
import { type FrameSource, openMixedSource, type TrainingFrame } from './frame-source.js';
import { createTileSampler } from './tile-sampler.js';
import type { TileShape } from './trainer.js';

export interface TileBatch {
  /** [B, 1, H, W] model input. */
  image: Float32Array;
  /** [B, H, W] 0/1. */
  target: Uint8Array;
  /** Peak pixels in the batch. */
  peakPixels: number;
  /** B, H, W where they are one of the config's further `shapes` (absent: its tile and batch). */
  shape?: TileShape;
}

export interface BatchMaker {
  make(microStep: number): Promise<TileBatch>;
  close(): void;
}

/** Makes batches in this thread (the worker runs the same code). */
export async function createBatchMaker(config: ShapeConfig): Promise<BatchMaker> {
  const source: FrameSource = await openMixedSource(config.data.sources, config.seed);
  const sampler = createTileSampler({
    tile: config.tile,
    preprocessing: DEFAULT_PREPROCESSING,
    spotTileFraction: config.data.spotTileFraction,
    smallPanelFraction: config.data.smallPanelFraction,
    augment: config.augment,
    preferFittingPanels: config.preferFittingPanels,
  });
  const { batch } = config;
  const tilePixels = config.tile.heightPx * config.tile.widthPx;
  let cached: { index: number; frame: TrainingFrame } | undefined;
  return {
    async make(microStep) {
      const image = new Float32Array(batch * tilePixels);
      const target = new Uint8Array(batch * tilePixels);
      let peakPixels = 0;
      for (let b = 0; b < batch; b++) {
        const t = microStep * batch + b;
        const index = Math.floor(t / config.data.tilesPerFrame);
        if (cached?.index !== index) cached = { index, frame: await source.frame(index) };
        // frameSeed takes a 32-bit index: tile numbers wrap after 2^31 - 1 tiles, far past any run.
        const random = seededRandom(frameSeed(config.seed, t % 0x7fffffff, 21));
        peakPixels += sampler.sample(
          cached.frame,
          random,
          image.subarray(b * tilePixels, (b + 1) * tilePixels),
          target.subarray(b * tilePixels, (b + 1) * tilePixels),
        );
      }
      return { image, target, peakPixels };
    },
    close() {
      source.close();
    },
  };
}

export interface BatchLoader {
  /** The batch of micro-step `m`; call with consecutive steps. */
  next(): Promise<TileBatch>;
  close(): Promise<void>;
}

/** A config as one tile shape's batch maker sees it. */
type ShapeConfig = TrainConfig & { preferFittingPanels?: boolean };

/**
 * Batches from `firstMicroStep` on, `ahead` in flight on a worker thread (`workers` 0: this thread,
 * for tests and debugging). With further tile `shapes`, update u takes shape u mod (1 + n) (its
 * accumulated runs too), each shape's batches the consecutive micro-steps of its own stream: the
 * config's tile and batch are shape 0 with the config's seed, shape k > 0 draws its frames with seed
 * + k and, where it is not the tile's shape, prefers panels its tile fits (a panel served whole in
 * a tile of that shape). Listing the tile's own shape again gives it more of the updates. A resumed run
 * gets exactly the batches the uninterrupted one would have.
 */
export async function createBatchLoader(
  config: TrainConfig,
  firstMicroStep: number,
  options: { workers?: number; ahead?: number } = {},
): Promise<BatchLoader> {
  if (config.shapes.length === 0) return createShapeLoader(config, firstMicroStep, options);
  const shapes: TileShape[] = [
    { batch: config.batch, heightPx: config.tile.heightPx, widthPx: config.tile.widthPx },
    ...config.shapes,
  ];
  const accumulation = config.accumulation;
  const shapeOf = (m: number) => Math.floor(m / accumulation) % shapes.length;
  const streamIndex = (m: number) =>
    Math.floor(Math.floor(m / accumulation) / shapes.length) * accumulation + (m % accumulation);
  const loaders = await Promise.all(
    shapes.map((shape, k) => {
      let first = firstMicroStep;
      while (shapeOf(first) !== k) first++;
      const shapeConfig: ShapeConfig =
        k === 0
          ? config
          : {
              ...config,
              tile: { ...config.tile, heightPx: shape.heightPx, widthPx: shape.widthPx },
              batch: shape.batch,
              seed: config.seed + k,
              shapes: [],
              preferFittingPanels:
                shape.heightPx !== config.tile.heightPx || shape.widthPx !== config.tile.widthPx,
            };
      return createShapeLoader(shapeConfig, streamIndex(first), options);
    }),
  );
  let microStep = firstMicroStep;
  return {
    async next() {
      const k = shapeOf(microStep++);
      const batch = await loaders[k].next();
      return k === 0 ? batch : { ...batch, shape: shapes[k] };
    },
    async close() {
      await Promise.all(loaders.map((l) => l.close()));
    },
  };
}

/**
 * Batches from `firstMicroStep` on, `ahead` in flight on a worker thread (`workers` 0: this thread,
 * for tests and debugging).
 */
async function createShapeLoader(
  config: ShapeConfig,
  firstMicroStep: number,
  options: { workers?: number; ahead?: number },
): Promise<BatchLoader> {
  const workers = options.workers ?? 1;
  const ahead = Math.max(1, options.ahead ?? 3);
  let make: (m: number) => Promise<TileBatch>;
  let closeMaker: () => Promise<void>;
  if (workers === 0) {
    const maker = await createBatchMaker(config);
    make = (m) => maker.make(m);
    closeMaker = async () => maker.close();
  } else {
    const pool: WorkerPool<number, TileBatch> = createWorkerPool(
      workerScriptUrl(import.meta.url, 'batch-worker'),
      workers,
      config,
    );
    make = (m) => pool.run(m);
    closeMaker = () => pool.close();
  }
  let nextToQueue = firstMicroStep;
  const queue: Promise<TileBatch>[] = [];
  const fill = () => {
    while (queue.length < ahead) {
      const promise = make(nextToQueue++);
      // A rejection is handled by whoever awaits it; keep node from flagging it as unhandled meanwhile.
      promise.catch(() => {});
      queue.push(promise);
    }
  };
  return {
    async next() {
      fill();
      const batch = await (queue.shift() as Promise<TileBatch>);
      fill();
      return batch;
    },
    async close() {
      queue.length = 0;
      await closeMaker();
    },
  };
}
