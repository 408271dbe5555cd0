/**
 * Worker thread of `braggflow simulate --workers N`: builds the run's frame context once from the
 * setup it is given and answers frame tasks with whole frames (image buffers moved, not copied),
 * rendered into the buffers a task lends when it lends some.
 */
import { serveWorkerTasks } from '../util/worker-pool.js';
import {
  createFrameContext,
  type FrameContext,
  type FrameTask,
  frameTransferables,
  type SimulatedFrame,
  type SimulationSetup,
  simulateFrame,
} from './frame.js';

let context: FrameContext | undefined;

serveWorkerTasks<FrameTask, SimulatedFrame>((task, data) => {
  context ??= createFrameContext(data as SimulationSetup);
  return simulateFrame(context, task.frameIndex, task.reuse);
}, frameTransferables);
