/**
 * Worker thread of `peaks --method peaknet --workers N`: reads the model file and builds its finder
 * once from workerData, then answers each frame with its peak list (the image moves in, the peak
 * columns move back).
 */
import { computePixelMaps } from '../detector/pixel-maps.js';
import { parseGeometry } from '../io/geom.js';
import { type PeakList, peakListBuffers } from '../peaks/peak-list.js';
import { serveWorkerTasks } from '../util/worker-pool.js';
import { readModelFile } from './model-file.js';
import { createPeakNetFinder, type PeakNetFinder, type PeakNetFinderOptions } from './peaknet-finder.js';

export interface PeakNetWorkerData {
  modelPath: string;
  geometryText: string;
  geometryPath?: string;
  mask: Uint8Array;
  options: PeakNetFinderOptions;
}

let finder: Promise<PeakNetFinder> | undefined;

serveWorkerTasks<{ image: Float32Array }, PeakList>(async (task, data) => {
  const d = data as PeakNetWorkerData;
  finder ??= createPeakNetFinder(
    readModelFile(d.modelPath),
    computePixelMaps(parseGeometry(d.geometryText, d.geometryPath)),
    d.mask,
    d.options,
  );
  return (await finder).find(task.image);
}, peakListBuffers);
