/**
 * Simulator throughput: image formation (`renderFrame`) alone and whole frames (crystal physics plus
 * rendering), on one core, and the scaling of whole frames with worker threads. Prints markdown.
 *
 * The main detector is a Jungfrau 4M layout built here (8 modules of 1024 x 512 = 4.19 Mpixel, 75 um
 * pixels, 120 mm), so the bench needs nothing outside the repo; ../shared's jungfrau4M.geom (a
 * 2.3-Mpixel, 64-ASIC layout despite its name) is timed too when present. Goal: >= 10 frames/s of a
 * 4-Mpixel detector on one core (>= 40 Mpixel/s).
 */
import { existsSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { type PixelMaps, pixelMapsFor } from '../src/detector/pixel-maps.js';
import { type Geometry, parseGeometry, readGeometry } from '../src/io/geom.js';
import {
  createFrameContext,
  type FrameBuffers,
  type FrameTask,
  frameBuffers,
  frameTask,
  type SimulatedFrame,
  simulateFrame,
} from '../src/simulate/frame.js';
import { parseSimulateOptions } from '../src/simulate/options.js';
import {
  createRenderContext,
  defaultImagingOptions,
  type ImagingOptions,
  renderFrame,
} from '../src/simulate/render.js';
import { resolveSetup } from '../src/simulate/run.js';
import type { FrameConditions, SimSpot } from '../src/simulate/types.js';
import { seededRandom } from '../src/util/random.js';
import { createWorkerPool, workerScriptUrl } from '../src/util/worker-pool.js';
import { jungfrau4MGeometryText } from './detectors.js';

/** Wall and CPU seconds per call (medians) over enough repetitions to fill ~`budgetS`. */
function timeIt(fn: () => void, budgetS = 3): { wallS: number; cpuS: number } {
  for (let k = 0; k < 3; k++) fn(); // warm up (JIT, WebAssembly tier-up, caches)
  const wall: number[] = [];
  const cpu: number[] = [];
  const start = performance.now();
  while (wall.length < 5 || (performance.now() - start < budgetS * 1000 && wall.length < 100)) {
    const c = process.cpuUsage();
    const t = performance.now();
    fn();
    wall.push((performance.now() - t) / 1000);
    const used = process.cpuUsage(c);
    cpu.push((used.user + used.system) / 1e6);
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];
  return { wallS: median(wall), cpuS: median(cpu) };
}

function jungfrau4M(): Geometry {
  return parseGeometry(jungfrau4MGeometryText(), 'jungfrau4M (built in the bench)');
}

/** `count` spots at random on real pixels, sized like the thermolysin preset's. */
function handMadeSpots(maps: PixelMaps, count: number, random: () => number): SimSpot[] {
  const spots: SimSpot[] = [];
  while (spots.length < count) {
    const i = Math.floor(random() * maps.panelIndex.length);
    if (maps.panelIndex[i] < 0) continue;
    spots.push({
      h: 0,
      k: 0,
      l: 0,
      crystal: 0,
      panel: maps.panelIndex[i],
      fs: (i % maps.fsSize) + random() - 0.5,
      ss: Math.floor(i / maps.fsSize) + random() - 0.5,
      dA: 3,
      partiality: 1,
      photons: 20 * Math.exp(4 * random()),
      sigmaRadialPx: 0.8 + random(),
      sigmaTangentialPx: 0.4 + 0.3 * random(),
      radialAngleRad: 2 * Math.PI * random(),
    });
  }
  return spots;
}

const rows: string[] = [];
const row = (...cells: (string | number)[]) => rows.push(`| ${cells.join(' | ')} |`);
const mpix = (maps: PixelMaps) => (maps.ssSize * maps.fsSize) / 1e6;

function renderRow(label: string, maps: PixelMaps, options: ImagingOptions, spots: SimSpot[]): void {
  const ctx = createRenderContext(maps, options, 1);
  const conditions: FrameConditions = {
    photonEnergyEv: 9500,
    clenM: 0.12,
    frameIndex: 0,
    hit: spots.length > 0,
  };
  const random = seededRandom(2);
  const { wallS, cpuS } = timeIt(() => renderFrame(ctx, spots, conditions, random));
  row(
    label,
    `${mpix(maps).toFixed(2)} Mpix`,
    spots.length,
    (wallS * 1000).toFixed(1),
    (cpuS * 1000).toFixed(1),
    (1 / wallS).toFixed(1),
    (mpix(maps) / wallS).toFixed(1),
    (4.194304 / mpix(maps) / wallS).toFixed(1),
  );
}

const jf = pixelMapsFor(jungfrau4M());
const spots500 = handMadeSpots(jf, 500, seededRandom(3));
renderRow('renderFrame, miss, background none', jf, { ...defaultImagingOptions, background: 'none' }, []);
renderRow('renderFrame, miss, background water', jf, defaultImagingOptions, []);
renderRow('renderFrame, 500 spots, background water', jf, defaultImagingOptions, spots500);
renderRow(
  'renderFrame, 500 spots, background heavy',
  jf,
  { ...defaultImagingOptions, background: 'heavy' },
  spots500,
);

const sharedGeom = resolve(import.meta.dirname, '..', '..', 'shared', 'data', 'geometry', 'jungfrau4M.geom');
if (existsSync(sharedGeom)) {
  const shared = pixelMapsFor(readGeometry(sharedGeom));
  renderRow(
    "renderFrame, 500 spots, water, ../shared's jungfrau4M.geom",
    shared,
    defaultImagingOptions,
    handMadeSpots(shared, 500, seededRandom(3)),
  );
} else console.error('simulate bench: ../shared is absent; skipping the jungfrau4M.geom row');

// Whole frames: the thermolysin preset's physics (every frame a hit) plus rendering.
const setup = resolveSetup(
  jf.geometry,
  parseSimulateOptions({ frames: 1, outPath: 'bench.cxi', preset: 'thermolysin', hitRate: 1, seed: 1 }),
);
const context = createFrameContext(setup);
let frameIndex = 0;
let lastSpots = 0;
const whole = timeIt(() => {
  lastSpots = simulateFrame(context, frameIndex++).spots.length;
});
row(
  'whole frame (thermolysin physics + render), hits',
  `${mpix(jf).toFixed(2)} Mpix`,
  `~${lastSpots}`,
  (whole.wallS * 1000).toFixed(1),
  (whole.cpuS * 1000).toFixed(1),
  (1 / whole.wallS).toFixed(1),
  (mpix(jf) / whole.wallS).toFixed(1),
  (4.194304 / mpix(jf) / whole.wallS).toFixed(1),
);

// Worker scaling: whole frames through the pool `braggflow simulate --workers N` uses, the way it uses
// it: 2 frames in flight per worker, each written frame's buffers lent to the next task.
const scaling: string[] = [];
const framesPerRun = 32;
const rounds = 3;
const workerUrl = workerScriptUrl(new URL('../src/simulate/frame.ts', import.meta.url).href, 'sim-worker');

/** Runs frames `first`..`first + count - 1` through the pool as runSimulation does. */
async function poolFrames(
  pool: ReturnType<typeof createWorkerPool<FrameTask, SimulatedFrame>>,
  first: number,
  count: number,
): Promise<void> {
  const spare: FrameBuffers[] = [];
  const pending: Promise<SimulatedFrame>[] = [];
  let next = 0;
  for (let done = 0; done < count; done++) {
    while (next < count && pending.length < 2 * pool.size)
      pending.push(pool.run(...frameTask(first + next++, spare.pop())));
    spare.push(frameBuffers(await (pending.shift() as Promise<SimulatedFrame>)));
  }
}

// The pools live through all rounds; each round times in process, 1 worker and 2 workers back to back,
// so a burst of load on this shared machine lands on one round, and the medians are compared.
const pools = new Map<number, ReturnType<typeof createWorkerPool<FrameTask, SimulatedFrame>>>();
for (const workers of [1, 2]) {
  const pool = createWorkerPool<FrameTask, SimulatedFrame>(workerUrl, workers, setup);
  // Warm-up: every worker builds its context (pixel maps, detector state, background model) and gets its
  // hot loops optimised: its first two frames are 4-10x slower than later ones.
  await poolFrames(pool, 2000, 4 * workers);
  pools.set(workers, pool);
}
const secondsOf = new Map<string, number[]>([
  ['in process (no pool)', []],
  ['1 worker', []],
  ['2 workers', []],
]);
let inProcessSpare: FrameBuffers | undefined;
for (let round = 0; round < rounds; round++) {
  const first = 10_000 * (round + 1);
  let start = performance.now();
  for (let i = 0; i < framesPerRun; i++)
    inProcessSpare = frameBuffers(simulateFrame(context, first + i, inProcessSpare));
  secondsOf.get('in process (no pool)')?.push((performance.now() - start) / 1000);
  for (const [workers, pool] of pools) {
    start = performance.now();
    await poolFrames(pool, first + 1000 * workers, framesPerRun);
    secondsOf.get(workers === 1 ? '1 worker' : '2 workers')?.push((performance.now() - start) / 1000);
  }
}
for (const pool of pools.values()) await pool.close();
const medianOf = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];
const inProcessS = medianOf(secondsOf.get('in process (no pool)') ?? []);
for (const [run, seconds] of secondsOf) {
  const s = medianOf(seconds);
  scaling.push(
    `| ${run} | ${framesPerRun} | ${seconds.map((x) => x.toFixed(2)).join(', ')} | ${(framesPerRun / s).toFixed(1)} | ${(inProcessS / s).toFixed(2)} |`,
  );
}

console.log('### Simulator (`src/simulate`): frames per second on one core\n');
console.log(
  `Jungfrau 4M layout built in the bench (${jf.geometry.panels.length} modules, ${mpix(jf).toFixed(2)} Mpixel); medians of repeated frames, wall and CPU time; load average at start ${loadavg()[0].toFixed(1)} on ${availableParallelism()} cores.\n`,
);
console.log(
  '| what | detector | spots | ms/frame (wall) | ms/frame (CPU) | frames/s | Mpixel/s | frames/s at 4 Mpix |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const line of rows) console.log(line);
console.log('\n### Simulator: whole frames with worker threads\n');
console.log(
  `${framesPerRun} thermolysin hits on the Jungfrau 4M layout, images moved back to the main thread and their buffers lent to later frames (as \`braggflow simulate\` does); ${rounds} rounds, each timing the three runs back to back; speed-up relative to in process.\n`,
);
console.log(`| run | frames | seconds, ${rounds} rounds | frames/s (median) | speed-up (median) |`);
console.log('| --- | --- | --- | --- | --- |');
for (const line of scaling) console.log(line);
