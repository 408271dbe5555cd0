/**
 * Worker thread for `braggflow peaks --workers N`: builds the finder once from its workerData
 * (geometry text, mask, finder spec) and answers each frame with its peak list; the image comes in and
 * the peak columns go back as transferred buffers, not copies.
 */
import { computePixelMaps } from '../detector/pixel-maps.js';
import { parseGeometry } from '../io/geom.js';
import { serveWorkerTasks } from '../util/worker-pool.js';
import { createPeakFinder, type PeakFinder, type PeakFinderSpec } from './finder.js';
import { type PeakList, peakListBuffers } from './peak-list.js';

export interface PeaksWorkerData {
  geometryText: string;
  geometryPath?: string;
  mask: Uint8Array;
  spec: PeakFinderSpec;
}

export interface PeaksTask {
  image: Float32Array;
}

let finder: PeakFinder | undefined;

serveWorkerTasks<PeaksTask, PeakList>((task, data) => {
  if (finder === undefined) {
    const { geometryText, geometryPath, mask, spec } = data as PeaksWorkerData;
    const maps = computePixelMaps(parseGeometry(geometryText, geometryPath));
    finder = createPeakFinder(maps, mask, spec);
  }
  return finder(task.image);
}, peakListBuffers);
