/** Worker thread of the training loader (batches.ts): answers micro-step numbers with batches. */
import { serveWorkerTasks } from '../util/worker-pool.js';
import { type BatchMaker, createBatchMaker, type TileBatch } from './batches.js';
import type { TrainConfig } from './config.js';

let maker: Promise<BatchMaker> | undefined;

serveWorkerTasks<number, TileBatch>(
  async (microStep, data) => {
    maker ??= createBatchMaker(data as TrainConfig);
    return (await maker).make(microStep);
  },
  (batch) => [batch.image.buffer as ArrayBuffer, batch.target.buffer as ArrayBuffer],
);
