/**
 * `braggflow run`: source -> transport -> processor -> sinks and collector.
 *
 * - In one process (`inproc`, the default): a bounded channel between the source and the processor
 *   (its own concurrency: worker threads or in-flight batches), results in source order. Memory is
 *   bounded end to end: the channel holds at most `queueFrames` frames and the processor at most its
 *   concurrency, so a source faster than processing is slowed down, never dropped from.
 * - On Redis Streams (`redis://HOST:PORT`, a run id): the producer, consumers and the sink are roles,
 *   each its own process on any machine, or all in this one (transports/redis.ts).
 *
 * Accounting is exact either way (results.ts): every frame the source sent is written (hit or miss,
 * once, whatever the redeliveries) or dead-lettered with its reason; `lost` is what the source's `end`
 * announced minus what was accounted for (0 unless something is wrong, and then the summary says so).
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import { buildMask } from '../detector/mask-file.js';
import { computePixelMaps, type PixelMaps } from '../detector/pixel-maps.js';
import { isCbfPath } from '../io/cbf.js';
import { parseGeometry } from '../io/geom.js';
import { readUserFile } from '../util/errors.js';
import { mapInOrder } from '../util/worker-pool.js';
import { createCollector, type RunStats } from './collector.js';
import type { Monitor } from './monitor/server.js';
import { createProcessor, type ProcessorSpec } from './processors/finders.js';
import { processFrame } from './processors/process-frame.js';
import type { FrameResult, Processor, Source, SourceMessage } from './protocol.js';
import { createResultRouter, type ResultRouter, type RouterState } from './results.js';
import { type CxiSink, createCxiSink } from './sinks/cxi.js';
import { fileEntries } from './sources/files.js';
import { openSource, paced, sourceFilePath } from './sources/index.js';
import { createChannel } from './transports/inproc.js';

export type PipelineRole = 'producer' | 'consumer' | 'sink' | 'all';

export interface PipelineOptions {
  /** `file:PATH`, a bare path, or `sim:PRESET?...` (sources/index.ts). Producer side. */
  source?: string;
  /** Hold the source to this many frames per second. */
  rateHz?: number;
  /** Producer side (consumers and the sink of a Redis run take the producer's). */
  geometryPath?: string;
  dataPath?: string;
  /** Extra mask files `FILE[:DATASET]` (nonzero = good). */
  maskFiles?: string[];
  /** Consumer side. */
  processor?: ProcessorSpec;
  /** Hit: at least this many peaks (default 10). */
  minPeaks?: number;
  /** Sink side. */
  outPath?: string;
  summaryPath?: string;
  allFrames?: boolean;
  gzip?: number;
  maxPeaks?: number;
  /** In-process: frames the channel holds between source and processor (default 8). */
  queueFrames?: number;
  /**
   * Read files and write the CXI on threads of their own, overlapping the processing. Default: where
   * the machine has a second core (on the 2-core VM with its cores free, pf8 kept 0.76-0.83 of its
   * rate this way against 0.57-0.64 on one thread; with another job holding both cores the threads'
   * extra CPU made them slower, 0.4-0.55 against ~0.6: BENCHMARKS.md, README). The Redis sink
   * always writes on its own thread of control (it acknowledges after its flushes).
   */
  ioThreads?: boolean;
  /** `inproc` (default) or `redis://HOST:PORT`. */
  transport?: string;
  /** Redis: the run's id (names its streams). */
  run?: string;
  /** Redis: which part this process plays (default all). */
  role?: PipelineRole;
  /** Redis: frames waiting for consumers before the producer waits (default 32). */
  maxBacklog?: number;
  /** Redis: a consumer takes over frames another has held this long (default 5000 ms). */
  claimIdleMs?: number;
  consumerName?: string;
  /** Serve the live monitor here (`HOST:PORT` or `PORT`; the sink's side of a Redis run). */
  monitor?: string;
  /** Called with the monitor's URL once it listens. */
  onMonitor?: (url: string) => void;
  /** After each result (progress). */
  onResult?: (result: FrameResult, stats: () => RunStats) => void;
  /** Ends an endless source, or a consumer (Ctrl-C): the run then finishes what it has. */
  stopped?: () => boolean;
}

export interface PipelineSummary extends RunStats {
  source: string;
  processor: string;
  transport: string;
  run?: string;
  /** Frames the source announced in its end message. */
  sourceFrames: number;
  /** Frames the source sent that were neither written nor dead-lettered. */
  lost: number;
  duplicates: number;
  queue?: { capacity: number; maxDepth: number };
  rows: number;
  outputs: { cxi: string; lst: string; geom: string; summary?: string };
}

/** What one process of a Redis run reports besides (for the sink) the run summary. */
export interface RoleReports {
  producer?: { frames: number; maxBacklog: number; waitedS: number };
  consumer?: { name: string; frames: number; claimed: number };
  summary?: PipelineSummary;
}

interface ProducerSide {
  geometryText: string;
  geometryName: string;
  maps: PixelMaps;
  mask: Uint8Array;
  source: Source;
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`runPipeline: ${what} is required here`);
  return value;
}

/** The run's good-pixel mask: geometry, masks in the first data file (for file sources), mask files. */
async function runMask(options: PipelineOptions, sourceSpec: string, maps: PixelMaps): Promise<Uint8Array> {
  const path = sourceFilePath(sourceSpec);
  const firstHdf5 = path === undefined ? undefined : fileEntries(path).find((e) => !isCbfPath(e.path))?.path;
  return buildMask(maps, {
    dataFile: firstHdf5,
    noImageFile: firstHdf5 === undefined,
    extraFiles: options.maskFiles,
  });
}

/** Reading and writing threads: asked for, or where there is a second core. */
function ioThreadsFor(options: PipelineOptions): boolean {
  return options.ioThreads ?? availableParallelism() > 1;
}

async function producerSide(options: PipelineOptions): Promise<ProducerSide> {
  const geometryPath = required(options.geometryPath, 'geometryPath');
  const sourceSpec = required(options.source, 'source');
  const geometryText = readUserFile(geometryPath, 'utf8');
  const geometry = parseGeometry(geometryText, geometryPath);
  const maps = computePixelMaps(geometry);
  const mask = await runMask(options, sourceSpec, maps);
  let source = openSource(sourceSpec, {
    geometry,
    maps,
    dataPath: options.dataPath,
    stopped: options.stopped,
    readThread: ioThreadsFor(options),
  });
  if (options.rateHz !== undefined) source = paced(source, options.rateHz);
  return { geometryText, geometryName: geometryPath, maps, mask, source };
}

function processorFor(
  options: PipelineOptions,
  side: { geometryText: string; geometryName: string; maps: PixelMaps; mask: Uint8Array },
): Promise<Processor> {
  return createProcessor(required(options.processor, 'processor'), {
    geometryText: side.geometryText,
    geometryName: side.geometryName,
    maps: side.maps,
    mask: side.mask,
    minPeaks: options.minPeaks,
  });
}

interface SinkSide {
  sink: CxiSink;
  router: ResultRouter;
  /** Closes the monitor, if any (the sink itself is closed by the caller). */
  stopMonitor(): Promise<void>;
  /** Run totals a Redis sink stores with each acknowledgement (and a restarted one starts from). */
  counts(): Record<string, number>;
  summary(extra: { source: string; processor: string; queue?: PipelineSummary['queue'] }): PipelineSummary;
}

/** What a killed sink of this run had accounted for (Redis transports/redis.ts, loadSinkState). */
interface Restored {
  seen: string[];
  state: RouterState;
  counts: Record<string, number>;
}

async function sinkSide(
  options: PipelineOptions,
  geometryText: string,
  maps: PixelMaps,
  restored?: Restored,
  queueDepth: () => number = () => 0,
  /** In-process runs write on a thread of their own; a Redis sink acknowledges after its flushes. */
  threadedWriter = false,
): Promise<SinkSide> {
  const outPath = required(options.outPath, 'outPath');
  const before = restored?.counts ?? {};
  const sink = await createCxiSink({
    outPath,
    geometryText,
    slabShape: [maps.ssSize, maps.fsSize],
    allFrames: options.allFrames,
    gzip: options.gzip,
    maxPeaks: options.maxPeaks,
    resume: restored !== undefined,
    earlierRows: (part) => before[`partRows:${part}`] ?? 0,
    threaded: threadedWriter,
  });
  const collector = createCollector(maps);
  let monitor: Monitor | undefined;
  const router: ResultRouter = createResultRouter([sink], collector, {
    seen: restored?.seen,
    before: restored?.state,
    // A Redis sink persists what it accounted with each acknowledgement.
    trackNewKeys: options.transport !== undefined && options.transport !== 'inproc',
    onResult: (result) => {
      monitor?.add(result);
      options.onResult?.(result, () => collector.stats());
    },
  });
  if (options.monitor !== undefined) {
    const { startMonitor } = await import('./monitor/server.js');
    try {
      monitor = await startMonitor({
        listen: options.monitor,
        maps,
        title: options.run ?? options.source ?? 'run',
        stats: () => collector.stats(),
        accounting: () => ({ duplicates: router.duplicates, lost: router.lost, queueDepth: queueDepth() }),
      });
    } catch (error) {
      sink.close();
      throw error;
    }
    options.onMonitor?.(monitor.url);
  }
  // Counted with every acknowledgement (a Redis sink): the collector's counters, not its statistics.
  const totals = () => {
    const s = collector.totals();
    return {
      frames: (before.frames ?? 0) + s.frames,
      hits: (before.hits ?? 0) + s.hits,
      peaks: (before.peaks ?? 0) + s.peaks,
      hitPeaks: (before.hitPeaks ?? 0) + s.hitPeaks,
      rows: (before.rows ?? 0) + sink.rows,
    };
  };
  return {
    sink,
    router,
    stopMonitor: async () => monitor?.close(),
    counts: () => ({ ...totals(), [`partRows:${sink.part}`]: sink.rows }),
    summary(extra) {
      const stats = collector.stats();
      const t = totals();
      const summary: PipelineSummary = {
        ...extra,
        transport: options.transport ?? 'inproc',
        run: options.run,
        sourceFrames: router.sourceFrames,
        ...stats,
        // Counts over the whole run (a restarted sink adds its earlier lives'); latency, the
        // peakogram and per-panel counts are this sink's own.
        frames: t.frames,
        hits: t.hits,
        hitRate: t.frames > 0 ? t.hits / t.frames : 0,
        peaks: t.peaks,
        peaksPerHit: t.hits > 0 ? t.hitPeaks / t.hits : 0,
        lost: router.lost,
        duplicates: router.duplicates,
        rows: t.rows,
        outputs: { cxi: outPath, lst: sink.lstPath, geom: sink.geomPath, summary: options.summaryPath },
      };
      if (options.summaryPath !== undefined)
        writeFileSync(options.summaryPath, `${JSON.stringify(summary, null, 2)}\n`);
      return summary;
    },
  };
}

/** The whole run in this process (in-process transport). */
export async function runPipeline(options: PipelineOptions): Promise<PipelineSummary> {
  if (options.transport !== undefined && options.transport !== 'inproc') {
    const reports = await runPipelineRoles(options);
    return required(reports.summary, 'a sink role');
  }
  const producer = await producerSide(options);
  const processor = await processorFor(options, producer);
  const channel = createChannel<SourceMessage>(Math.max(1, options.queueFrames ?? 8));
  let side: SinkSide;
  try {
    side = await sinkSide(
      options,
      producer.geometryText,
      producer.maps,
      undefined,
      () => channel.depth,
      ioThreadsFor(options),
    );
  } catch (error) {
    await processor.release();
    throw error;
  }
  const { sink, router } = side;
  // The producer: the source into the channel (waits while the channel is full). It stops early when
  // the consumer fails (the channel is then closed under it): its source, and any reading thread,
  // are closed by leaving the loop.
  const sending = (async () => {
    try {
      for await (const message of producer.source.messages()) {
        if (channel.closed) break;
        await channel.send(message);
      }
    } catch (error) {
      if (!channel.closed) throw error;
    } finally {
      channel.close();
    }
  })();
  // The consumer: frames through the processor, `concurrency` at once, results in source order. A
  // frame's memory goes back to its source once it is routed (the sinks hold what they keep longer).
  const handle = async (message: SourceMessage): Promise<SourceMessage | FrameResult> => {
    if (message.kind !== 'frame') return message;
    const outcome = await processFrame(processor, message);
    if ('kind' in outcome) message.loan?.done();
    return outcome;
  };
  try {
    for await (const outcome of mapInOrder(channel, processor.concurrency, handle)) {
      if (!('kind' in outcome)) {
        await router.result(outcome);
        outcome.loan?.done();
      } else if (outcome.kind === 'end') router.end(outcome);
      else if (outcome.kind === 'error') await router.deadLetter(outcome);
    }
    await sending;
  } catch (error) {
    // Release a producer waiting for room, and let it close its source before the error goes up.
    channel.close();
    await sending.catch(() => {});
    throw error;
  } finally {
    try {
      await processor.release();
      await sink.close();
    } finally {
      await side.stopMonitor();
    }
  }
  return side.summary({
    source: required(options.source, 'source'),
    processor: processor.description,
    queue: { capacity: channel.capacity, maxDepth: channel.maxDepth },
  });
}

/** One process's roles of a Redis run (`all`: producer, a consumer and the sink together). */
export async function runPipelineRoles(options: PipelineOptions): Promise<RoleReports> {
  const redisModule = await import('./transports/redis.js');
  const url = required(options.transport, 'transport');
  const keys = redisModule.runKeys(required(options.run, 'run'));
  const role = options.role ?? 'all';
  const reports: RoleReports = {};
  // One connection per role: a blocking read holds its connection.
  const connections: import('ioredis').Redis[] = [];
  const connect = () => {
    const redis = redisModule.connectRedis(url);
    connections.push(redis);
    return redis;
  };
  // A consumer or the sink joins the run the producer published: its geometry, mask and streams.
  const joinRun = async (redis: import('ioredis').Redis) => {
    const meta = await redisModule.readMeta(redis, keys);
    await redisModule.ensureGroups(redis, keys);
    return { meta, maps: computePixelMaps(parseGeometry(meta.geometryText, meta.geometryName)) };
  };
  try {
    const tasks: Promise<void>[] = [];
    if (role === 'producer' || role === 'all') {
      const redis = connect();
      const side = await producerSide(options);
      await redisModule.ensureGroups(redis, keys);
      await redisModule.publishMeta(redis, keys, {
        geometryText: side.geometryText,
        geometryName: basename(side.geometryName),
        slabShape: [side.maps.ssSize, side.maps.fsSize],
        mask: side.mask,
        source: required(options.source, 'source'),
      });
      tasks.push(
        redisModule.produce(redis, keys, side.source, { maxBacklog: options.maxBacklog }).then((r) => {
          reports.producer = r;
        }),
      );
    }
    if (role === 'consumer' || role === 'all') {
      const redis = connect();
      tasks.push(
        (async () => {
          const { meta, maps } = await joinRun(redis);
          const processor = await processorFor(options, {
            geometryText: meta.geometryText,
            geometryName: meta.geometryName,
            maps,
            mask: meta.mask,
          });
          try {
            reports.consumer = await redisModule.consume(redis, keys, processor, {
              name: options.consumerName,
              claimIdleMs: options.claimIdleMs,
              allFrames: options.allFrames,
              stopped: options.stopped,
            });
          } finally {
            await processor.release();
          }
        })(),
      );
    }
    if (role === 'sink' || role === 'all') {
      const redis = connect();
      tasks.push(
        (async () => {
          const { meta, maps } = await joinRun(redis);
          const restored = await redisModule.loadSinkState(redis, keys);
          const side = await sinkSide(options, meta.geometryText, maps, restored);
          try {
            await redisModule.drainResults(redis, keys, side.router, {
              flush: () => side.sink.flush(),
              counts: side.counts,
              stopped: options.stopped,
            });
          } finally {
            await side.sink.close();
            await side.stopMonitor();
          }
          reports.summary = side.summary({
            source: meta.source,
            processor: options.processor === undefined ? 'see the consumers' : options.processor.method,
          });
        })(),
      );
    }
    // A failing role fails the process at once (the others would wait for it forever).
    await Promise.all(tasks);
  } finally {
    for (const redis of connections) redis.disconnect();
  }
  return reports;
}
