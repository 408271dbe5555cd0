/**
 * Peak finder throughput: peakfinder8 and the dispersion finder on the real CSPAD frame (2.3 Mpix)
 * and on generated Jungfrau 4M frames, on one thread and on one / two worker threads (frames in
 * parallel, results in input order, images in shared memory). Prints markdown; skips without ../shared.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { geometryMask } from '../src/detector/mask.js';
import { computePixelMaps, type PixelMaps } from '../src/detector/pixel-maps.js';
import { openFrameReader } from '../src/io/cxi-reader.js';
import { parseGeometry } from '../src/io/geom.js';
import { defaultDispersionParams } from '../src/peaks/dispersion.js';
import { createPeakFinder, type PeakFinderSpec } from '../src/peaks/finder.js';
import type { PeakList } from '../src/peaks/peak-list.js';
import { defaultPf8Params } from '../src/peaks/peakfinder8.js';
import type { PeaksTask, PeaksWorkerData } from '../src/peaks/peaks-worker.js';
import { generateSpotFrame } from '../src/simulate/spots.js';
import { seededRandom } from '../src/util/random.js';
import { createWorkerPool, workerScriptUrl } from '../src/util/worker-pool.js';
import { jungfrau4MGeometryText } from './detectors.js';

const shared = resolve('..', 'shared', 'data');
if (!existsSync(shared)) {
  console.log(
    '## Peak finders\n\nSkipped: ../shared (geometries, the real CSPAD frame) is not beside the repo.',
  );
  process.exit(0);
}

interface Detector {
  name: string;
  geometryPath: string;
  geometryText: string;
  maps: PixelMaps;
  mask: Uint8Array;
  frames: Float32Array[];
}

function load(name: string, geometryPath: string, text?: string): Omit<Detector, 'frames'> {
  const geometryText = text ?? readFileSync(geometryPath, 'utf8');
  const maps = computePixelMaps(parseGeometry(geometryText, geometryPath));
  return { name, geometryPath, geometryText, maps, mask: geometryMask(maps) };
}

const cspad = load('CSPAD (real frame)', resolve(shared, 'real/cspad-thermolysin.geom'));
const reader = await openFrameReader(resolve(shared, 'real/cspad-thermolysin.cxi'));
const cspadFrame = new Float32Array(reader.readFrame(0));
reader.close();
const jungfrau = load('Jungfrau 4M, 8 x 1024 x 512 (generated)', 'jungfrau4M', jungfrau4MGeometryText());
const sharedJungfrau = load(
  '../shared jungfrau4M.geom, 64 panels (generated)',
  resolve(shared, 'geometry/jungfrau4M.geom'),
);
const random = seededRandom(7);
const generatedFrames = (maps: PixelMaps) =>
  [0, 1, 2].map(() => {
    const frame = generateSpotFrame(maps, random, {
      minSpots: 50,
      maxSpots: 150,
      spotSigmaPx: 1,
      minSpotPhotons: 300,
      maxSpotPhotons: 5000,
      backgroundPhotons: 8,
      backgroundScalePx: 600,
      gain: 10,
    }).image;
    return frame;
  });
const detectors: Detector[] = [
  { ...cspad, frames: [cspadFrame] },
  { ...jungfrau, frames: generatedFrames(jungfrau.maps) },
  { ...sharedJungfrau, frames: generatedFrames(sharedJungfrau.maps) },
];

const pf8Spec = (name: string): PeakFinderSpec => ({
  method: 'pf8',
  params: name.startsWith('CSPAD')
    ? { ...defaultPf8Params }
    : { ...defaultPf8Params, adcThreshold: 200, minSnr: 5 },
});
const dispersionSpec = (name: string): PeakFinderSpec => ({
  method: 'dispersion',
  params: name.startsWith('CSPAD')
    ? { ...defaultDispersionParams, gain: 25, globalThreshold: 100 }
    : { ...defaultDispersionParams, gain: 10, globalThreshold: 50 },
});

/** Median seconds per frame on this thread. */
function timeInline(detector: Detector, spec: PeakFinderSpec): { seconds: number; peaks: number } {
  const find = createPeakFinder(detector.maps, detector.mask, spec);
  let peaks = 0;
  for (let k = 0; k < 8; k++) peaks = find(detector.frames[k % detector.frames.length]).count; // warm up (JIT)
  const samples: number[] = [];
  const start = performance.now();
  let k = 0;
  while (samples.length < 10 || (performance.now() - start < 3000 && samples.length < 200)) {
    const t = performance.now();
    find(detector.frames[k++ % detector.frames.length]);
    samples.push((performance.now() - t) / 1000);
  }
  samples.sort((a, b) => a - b);
  return { seconds: samples[Math.floor(samples.length / 2)], peaks };
}

/** Frames per second through a pool of `workers` threads (images shared, output in order). */
async function timePool(
  detector: Detector,
  spec: PeakFinderSpec,
  workers: number,
  frames: number,
): Promise<number> {
  const data: PeaksWorkerData = {
    geometryText: detector.geometryText,
    geometryPath: detector.geometryPath,
    mask: detector.mask,
    spec,
  };
  const pool = createWorkerPool<PeaksTask, PeakList>(
    workerScriptUrl(new URL('../src/peaks/finder.ts', import.meta.url).href, 'peaks-worker'),
    workers,
    data,
  );
  try {
    // Frames in shared memory: a task carries a view, not a copy (a per-frame copy on the main thread
    // would compete with the workers for the cores, and is not the finder's cost).
    const shared = detector.frames.map((frame) => {
      const view = new Float32Array(new SharedArrayBuffer(frame.byteLength));
      view.set(frame);
      return view;
    });
    const runMany = async (count: number) => {
      const pending: Promise<PeakList>[] = [];
      for (let k = 0; k < count; k++) pending.push(pool.run({ image: shared[k % shared.length] }));
      await Promise.all(pending);
    };
    await runMany(workers * 8); // start the workers, warm up their JIT
    const start = performance.now();
    await runMany(frames);
    return frames / ((performance.now() - start) / 1000);
  } finally {
    await pool.close();
  }
}

const lines: string[] = [];
lines.push('## Peak finders');
lines.push('');
lines.push(
  'peakfinder8 (indexamajig defaults on CSPAD; threshold 200 on the generated Jungfrau frames) and the dispersion finder (DIALS settings: gain 25, global threshold 100 on CSPAD). "inline" is one thread, median per frame; "N workers" is throughput through worker threads (frames in shared memory, peak lists transferred back). This machine has 2 cores shared with other work: read the ratios, not only the absolute numbers.',
);
lines.push('');
lines.push(
  '| finder | detector | pixels | peaks/frame | inline ms/frame | inline Mpix/s | 1 worker frames/s | 2 workers frames/s | 2 workers Mpix/s | speed-up 2/1 |',
);
lines.push('|---|---|---|---|---|---|---|---|---|---|');
for (const detector of detectors) {
  const pixels = detector.maps.ssSize * detector.maps.fsSize;
  for (const [label, makeSpec] of [
    ['peakfinder8', pf8Spec],
    ['dispersion', dispersionSpec],
  ] as const) {
    const spec = makeSpec(detector.name);
    const inline = timeInline(detector, spec);
    const frames = Math.max(16, Math.round(1.5 / inline.seconds));
    const one = await timePool(detector, spec, 1, frames);
    const two = await timePool(detector, spec, 2, frames);
    lines.push(
      `| ${label} | ${detector.name} | ${(pixels / 1e6).toFixed(2)} M | ${inline.peaks} | ${(inline.seconds * 1e3).toFixed(1)} | ${(pixels / inline.seconds / 1e6).toFixed(0)} | ${one.toFixed(1)} | ${two.toFixed(1)} | ${((two * pixels) / 1e6).toFixed(0)} | ${(two / one).toFixed(2)}x |`,
    );
  }
}
console.log(lines.join('\n'));
