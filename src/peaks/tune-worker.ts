/**
 * Worker thread of `braggflow tune`: holds the frames (shared memory) and labels given at start, builds
 * the peakfinder8 context once, and answers each task (parameter sets x frames) with integer match
 * counts.
 */
import { serveWorkerTasks } from '../util/worker-pool.js';
import { createTaskEvaluator, type TuneTask, type TuneWorkerData } from './tune.js';

let evaluate: ((task: TuneTask) => Int32Array) | undefined;

serveWorkerTasks<TuneTask, Int32Array>(
  (task, data) => {
    evaluate ??= createTaskEvaluator(data as TuneWorkerData);
    return evaluate(task);
  },
  (result) => [result.buffer as ArrayBuffer],
);
