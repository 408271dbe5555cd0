// The pipeline against its parts, side by side in one run on the same frames:
// - throughput: the raw processor looping over frames in memory, against `run` (in-process) reading
//   the same frames from their file, for pf8 (1 and 2 workers) and the shipped model; latency p50/p99;
// - the Redis transport (a real redis-server on loopback, if installed): frames/s and MiB/s of
//   producer -> consumer (a processor that does nothing) -> sink, against a bare XADD / XREADGROUP /
//   XACK loop moving the same bytes, for CSPAD-sized and Jungfrau-4M-sized uint16 frames.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { defaultGeometryText } from '../src/detector/default-geometry.js';
import { buildMask } from '../src/detector/mask-file.js';
import { computePixelMaps } from '../src/detector/pixel-maps.js';
import { defaultModelPath } from '../src/infer/default-model.js';
import { openFrameReader } from '../src/io/cxi-reader.js';
import { parseGeometry } from '../src/io/geom.js';
import { createPeakList } from '../src/peaks/peak-list.js';
import { parsePf8ParamsPartial, resolvePf8Params } from '../src/peaks/pf8-params.js';
import { createCollector } from '../src/pipeline/collector.js';
import { createProcessor, type ProcessorSpec } from '../src/pipeline/processors/finders.js';
import type { FrameMessage, Processor, Source, SourceMessage } from '../src/pipeline/protocol.js';
import { createResultRouter } from '../src/pipeline/results.js';
import { runPipeline } from '../src/pipeline/run.js';
import { consume, drainResults, ensureGroups, produce, runKeys } from '../src/pipeline/transports/redis.js';
import { runSimulation } from '../src/simulate/run.js';
import { spawnCli } from '../test/helpers.js';
import { startRedis } from '../test/redis-server.js';

// What else runs on the machine bears on every ratio below (they fight for the same cores).
const loadAtStart = loadavg()[0];
const dir = mkdtempSync(join(tmpdir(), 'braggflow-bench-pipeline-'));
const geom = join(dir, 'quad.geom');
writeFileSync(geom, defaultGeometryText);
const geometry = parseGeometry(defaultGeometryText, geom);
const maps = computePixelMaps(geometry);
const runPath = join(dir, 'run.cxi');
await runSimulation({
  geometry,
  geometryText: defaultGeometryText,
  frames: 48,
  seed: 5,
  hitRate: 0.75,
  preset: 'lysozyme',
  outPath: runPath,
  workers: 2,
});
const reader = await openFrameReader(runPath);
const frames = Array.from({ length: reader.frameCount }, (_, i) => reader.readFrame(i));
reader.close();
const mask = await buildMask(maps, { dataFile: runPath });
const pf8 = resolvePf8Params(
  {},
  parsePf8ParamsPartial({ threshold: '5', 'min-snr': '6', 'min-pix-count': '1', 'local-bg-radius': '4' }),
);

/**
 * The processor over frames held in memory, `concurrency` in flight: its own ceiling. Frames per
 * second, and the process's CPU (every thread) per frame.
 */
async function raw(spec: ProcessorSpec, count: number): Promise<{ rate: number; cpuMs: number }> {
  const processor = await createProcessor(spec, { geometryText: defaultGeometryText, maps, mask });
  const frame = (i: number): FrameMessage => ({
    kind: 'frame',
    id: { source: 'bench', file: '', event: i },
    seq: i,
    slabShape: [maps.ssSize, maps.fsSize],
    pixels: frames[i % frames.length],
    sentAtMs: Date.now(),
  });
  await processor.process(frame(0)); // warm-up
  const cpu = process.cpuUsage();
  const start = performance.now();
  const inFlight: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    inFlight.push(processor.process(frame(i)));
    if (inFlight.length >= processor.concurrency) await inFlight.shift();
  }
  await Promise.all(inFlight);
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  await processor.release();
  return { rate: count / seconds, cpuMs: (used.user + used.system) / 1000 / count };
}

const rows: string[] = [];
const cases: [string, ProcessorSpec, boolean][] = [
  [
    'pf8, 1 worker (this thread)',
    { method: 'pf8', finder: { method: 'pf8', params: pf8 }, workers: 1 },
    false,
  ],
  [
    'pf8, 1 worker, reading and writing threads (the default)',
    { method: 'pf8', finder: { method: 'pf8', params: pf8 }, workers: 1 },
    true,
  ],
  ['pf8, 2 worker threads', { method: 'pf8', finder: { method: 'pf8', params: pf8 }, workers: 2 }, false],
  ['peaknet (shipped), this thread', { method: 'peaknet', modelPath: defaultModelPath(), workers: 1 }, false],
];
for (const [label, spec, ioThreads] of cases) {
  const count = spec.method === 'peaknet' ? 16 : 48;
  // Alone before and after the run, averaged: the machine's load drifts (another job may share it).
  const before = await raw(spec, count);
  // The pipeline reads the same frames from the file (each once: a list of the first `count`).
  const list = join(dir, 'frames.lst');
  writeFileSync(list, Array.from({ length: count }, (_, i) => `${runPath} //${i}`).join('\n'));
  let done = 0;
  let cpuAtFirst: NodeJS.CpuUsage | undefined;
  let cpuFirstToLast: NodeJS.CpuUsage | undefined;
  const summary = await runPipeline({
    source: `file:${list}`,
    geometryPath: geom,
    processor: spec,
    outPath: join(dir, 'out.cxi'),
    ioThreads,
    // The process's CPU from the first frame done to the last (start-up left out).
    onResult: () => {
      done++;
      if (done === 1) cpuAtFirst = process.cpuUsage();
      if (done === count) cpuFirstToLast = process.cpuUsage(cpuAtFirst);
    },
  });
  // Honest or nothing: every frame once, every hit's frame and peaks written.
  if (summary.frames !== count || summary.lost !== 0 || summary.rows !== summary.hits)
    throw new Error(
      `${label}: ${summary.frames} frames, ${summary.lost} lost, ${summary.rows} rows for ${summary.hits} hits`,
    );
  const after = await raw(spec, count);
  const alone = (before.rate + after.rate) / 2;
  const aloneCpuMs = (before.cpuMs + after.cpuMs) / 2;
  const runCpuMs =
    cpuFirstToLast === undefined
      ? Number.NaN
      : (cpuFirstToLast.user + cpuFirstToLast.system) / 1000 / (count - 1);
  // Steady state, as "alone" (which excludes its warm-up): from the first frame sent to the last one
  // done. The start-up before the first frame (modules, the reading thread, the finder) apart.
  const inPipeline = summary.framesPerSecond;
  const startupS = summary.seconds - summary.frames / summary.framesPerSecond;
  rows.push(
    `| ${label} | ${count} | ${alone.toFixed(2)} | ${inPipeline.toFixed(2)} | ${(inPipeline / alone).toFixed(2)} | ${aloneCpuMs.toFixed(1)} / ${runCpuMs.toFixed(1)} | ${startupS.toFixed(1)} | ${summary.latencyMs.p50.toFixed(0)} / ${summary.latencyMs.p99.toFixed(0)} |`,
  );
}

// ---- Redis ------------------------------------------------------------------------------------
const redisRows: string[] = [];
const scaleRows: string[] = [];
let redisNote = '';
try {
  const server = await startRedis();
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  const idle: Processor = {
    description: 'nothing',
    concurrency: 1,
    process: async () => ({ peaks: createPeakList(0), hit: false }),
    release: async () => {},
  };
  for (const [label, shape] of [
    ['CSPAD (1480 x 1552)', [1480, 1552]],
    ['Jungfrau 4M (2048 x 2048)', [2048, 2048]],
  ] as [string, [number, number]][]) {
    const count = 40;
    const frame = new Uint16Array(shape[0] * shape[1]).map((_, i) => i & 0x3ff);
    const bytes = frame.byteLength;
    // Bare: XADD the bytes, XREADGROUP them, XACK + XDEL.
    const bareKey = `bare:${label}`;
    await redis.xgroup('CREATE', bareKey, 'g', '0', 'MKSTREAM');
    const payload = Buffer.from(frame.buffer);
    const bareStart = performance.now();
    const readerConnection = redis.duplicate();
    const reading = (async () => {
      let got = 0;
      while (got < count) {
        const reply = (await readerConnection.xreadgroupBuffer(
          'GROUP',
          'g',
          'c',
          'COUNT',
          4,
          'BLOCK',
          1000,
          'STREAMS',
          bareKey,
          '>',
        )) as [Buffer, [Buffer, Buffer[]][]][] | null;
        for (const [, entries] of reply ?? []) {
          for (const [id] of entries) {
            await redis.multi().xack(bareKey, 'g', id).xdel(bareKey, id).exec();
            got++;
          }
        }
      }
    })();
    for (let i = 0; i < count; i++) await redis.xaddBuffer(bareKey, '*', 'p', payload);
    await reading;
    const bareS = (performance.now() - bareStart) / 1000;
    readerConnection.disconnect();
    // The transport: produce -> consume (no processing) -> sink accounting.
    const keys = runKeys(`bench-${shape[0]}`);
    const source: Source = {
      name: 'bench',
      async *messages(): AsyncGenerator<SourceMessage> {
        for (let i = 0; i < count; i++)
          yield {
            kind: 'frame',
            id: { source: 'bench', file: '', event: i },
            seq: i,
            slabShape: shape,
            pixels: frame,
            sentAtMs: Date.now(),
          };
        yield { kind: 'end', source: 'bench', frames: count };
      },
    };
    const connections = [0, 1, 2].map(() => new Redis(server.url, { maxRetriesPerRequest: null }));
    await ensureGroups(connections[0], keys);
    const collector = createCollector(maps);
    const router = createResultRouter([{ write: () => {}, close: () => {} }], collector, {
      trackNewKeys: true,
    });
    const start = performance.now();
    await Promise.all([
      produce(connections[0], keys, source, { maxBacklog: 8 }),
      consume(connections[1], keys, idle, { name: 'bench' }),
      drainResults(connections[2], keys, router, { flush: () => {} }),
    ]);
    const ourS = (performance.now() - start) / 1000;
    for (const c of connections) c.disconnect();
    const mib = (count * bytes) / 2 ** 20;
    redisRows.push(
      `| ${label}, uint16, ${(bytes / 2 ** 20).toFixed(1)} MiB | ${(count / bareS).toFixed(1)} | ${(mib / bareS).toFixed(0)} | ${(count / ourS).toFixed(1)} | ${(mib / ourS).toFixed(0)} | ${(bareS / ourS).toFixed(2)} |`,
    );
  }
  // 1 -> 2 consumer processes (pf8, one thread each) on the same run: producer, consumers and sink
  // are separate processes, as on separate machines; frames/s from the sink's summary (first frame
  // sent to last frame done), the consumers started first so their start-up is not counted.
  const list = join(dir, 'scale.lst');
  writeFileSync(list, Array.from({ length: 48 }, (_, i) => `${runPath} //${i}`).join('\n'));
  for (const consumers of [1, 2]) {
    const run = `scale-${consumers}`;
    const base = ['run', '--transport', server.url, '--run', run];
    const finder = ['--threshold', '5', '--min-snr', '6', '--min-pix-count', '1', '--local-bg-radius', '4'];
    const started = Array.from({ length: consumers }, (_, i) =>
      spawnCli([...base, '--role', 'consumer', '--consumer', `c${i}`, ...finder]),
    );
    const sink = spawnCli([...base, '--role', 'sink', '--out', join(dir, `${run}.cxi`), '--json']);
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const producer = spawnCli([...base, '--role', 'producer', '--geom', geom, '--source', `file:${list}`]);
    const [done] = await Promise.all([sink.done, producer.done, ...started.map((c) => c.done)]);
    const summary = JSON.parse(done.stdout);
    // Every frame once (each a hit here, so each written): the rate over the sink's span.
    const seconds = summary.frames / summary.framesPerSecond;
    scaleRows.push(
      `| ${consumers} | ${summary.sourceFrames} | ${(summary.sourceFrames / seconds).toFixed(1)} | ${summary.latencyMs.p50.toFixed(0)} / ${summary.latencyMs.p99.toFixed(0)} |`,
    );
  }
  redis.disconnect();
  await server.close();
} catch (error) {
  redisNote = `Redis section skipped: ${(error as Error).message.split('\n')[0]}`;
}
rmSync(dir, { recursive: true, force: true });

process.stdout.write(`
## Pipeline (\`braggflow run\`) against its processor, and the Redis transport against bare Redis

The embedded 1-Mpixel detector, 48 simulated lysozyme frames (16 for peaknet; for pf8 every one
is a hit here, so every frame is written); "alone" is the processor over the frames in memory after a
warm-up, as many in flight as it takes, measured before and after the run and averaged (the load
of a shared machine drifts); "run" is \`braggflow run\` in-process reading the same frames (each
once) from their CXI through a \`.lst\`, writing the hits' CXI (frames and peaks), from the first
frame sent to the last one done; "start-up" is the rest of the run's wall time (modules, the
reading and writing threads, the finder: under tsx, a worker thread's start compiles TypeScript).
"CPU" is the process's CPU time (all threads) per frame, alone and in the run from the first frame
done to the last: what reading and writing add to the finder, and what 2 cores can hold. Goal: run
at least 0.9 of alone. Load average when the bench started: ${loadAtStart.toFixed(1)} on
${availableParallelism()} cores.

| processor | frames | alone, frames/s | run, frames/s | run / alone | CPU ms a frame, alone / run | start-up, s | latency p50 / p99, ms |
|---|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}

Redis Streams on loopback (one producer, one consumer that does nothing, the sink's accounting),
40 frames each, against a bare XADD / XREADGROUP / XACK+XDEL loop moving the same bytes.
${redisNote}

| frame | bare frames/s | bare MiB/s | transport frames/s | transport MiB/s | transport / bare |
|---|---:|---:|---:|---:|---:|
${redisRows.join('\n')}

Consumers as separate processes (pf8, one thread each) on one Redis run of 48 frames of the embedded
detector, the producer reading them from their CXI and the sink
writing the hits: frames/s from the first frame sent to the last frame done. On 2 cores the
producer's reading, the sink's writing and Redis share the machine with the consumers.

| consumers | frames sent | frames/s | latency p50 / p99, ms |
|---|---:|---:|---:|
${scaleRows.join('\n')}

`);
