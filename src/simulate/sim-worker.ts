/**
 * Worker thread of `braggflow simulate --workers N`: builds the run's frame context once from the
 * setup it is given and answers frame indices with whole frames (image buffers moved, not copied).
 */
import { serveWorkerTasks } from '../util/worker-pool.js';
import {
  createFrameContext,
  type FrameContext,
  frameTransferables,
  type SimulatedFrame,
  type SimulationSetup,
  simulateFrame,
} from './frame.js';

let context: FrameContext | undefined;

serveWorkerTasks<number, SimulatedFrame>((frameIndex, data) => {
  context ??= createFrameContext(data as SimulationSetup);
  return simulateFrame(context, frameIndex);
}, frameTransferables);
