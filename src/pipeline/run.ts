/**
 * `braggflow run`, in one process: source -> bounded in-process channel -> processor (its own
 * concurrency: worker threads or in-flight batches) -> sinks and collector, results in source order.
 * Memory is bounded end to end: the channel holds at most `queueFrames` frames and the processor at
 * most its concurrency, so a source faster than processing is slowed down, never dropped from.
 *
 * Accounting is exact: every frame the source sent is written (hit or miss, deduplicated by id) or
 * dead-lettered with its reason; `lost` is what the source's `end` announced minus what was
 * accounted for (0 unless something is wrong, and then the summary says so).
 */
import { writeFileSync } from 'node:fs';
import { applyExtraMaskFiles, buildMask } from '../detector/mask-file.js';
import { computePixelMaps } from '../detector/pixel-maps.js';
import { parseGeometry } from '../io/geom.js';
import { readUserFile } from '../util/errors.js';
import { mapInOrder } from '../util/worker-pool.js';
import { createCollector, type RunStats } from './collector.js';
import { createProcessor, type ProcessorSpec } from './processors/finders.js';
import type { ErrorMessage, FrameMessage, FrameResult, SourceMessage } from './protocol.js';
import { createCxiSink } from './sinks/cxi.js';
import { fileEntries, isCbfPath } from './sources/files.js';
import { openSource, paced } from './sources/index.js';
import { createChannel } from './transports/inproc.js';

export interface PipelineOptions {
  /** `file:PATH`, a bare path, or `sim:PRESET?...` (sources/index.ts). */
  source: string;
  /** Hold the source to this many frames per second. */
  rateHz?: number;
  geometryPath: string;
  dataPath?: string;
  /** Extra mask files `FILE[:DATASET]` (nonzero = good). */
  maskFiles?: string[];
  processor: ProcessorSpec;
  /** Hit: at least this many peaks (default 10). */
  minPeaks?: number;
  outPath: string;
  summaryPath?: string;
  allFrames?: boolean;
  gzip?: number;
  maxPeaks?: number;
  /** Frames the channel holds between source and processor (default 8). */
  queueFrames?: number;
  /** After each result (progress bars, the monitor). */
  onResult?: (result: FrameResult, stats: () => RunStats) => void;
  /** Ends an endless source (Ctrl-C): the run then finishes what it has. */
  stopped?: () => boolean;
}

export interface PipelineSummary extends RunStats {
  source: string;
  processor: string;
  transport: 'inproc';
  /** Frames the source announced in its end message. */
  sourceFrames: number;
  /** Frames the source sent that were neither written nor dead-lettered. */
  lost: number;
  duplicates: number;
  queue: { capacity: number; maxDepth: number };
  rows: number;
  outputs: { cxi: string; lst: string; geom: string; summary?: string };
}

/** The run's good-pixel mask: geometry, masks in the first data file (for file sources), mask files. */
async function runMask(
  options: PipelineOptions,
  maps: ReturnType<typeof computePixelMaps>,
): Promise<Uint8Array> {
  const kind = /^[a-z]+:/.exec(options.source)?.[0];
  const path = kind === undefined ? options.source : kind === 'file:' ? options.source.slice(5) : undefined;
  const firstHdf5 = path === undefined ? undefined : fileEntries(path).find((e) => !isCbfPath(e.path))?.path;
  const mask = await buildMask(
    maps,
    firstHdf5 === undefined ? { noImageFile: true } : { dataFile: firstHdf5 },
  );
  await applyExtraMaskFiles(mask, maps.ssSize * maps.fsSize, options.maskFiles ?? []);
  return mask;
}

export async function runPipeline(options: PipelineOptions): Promise<PipelineSummary> {
  const geometryText = readUserFile(options.geometryPath, 'utf8');
  const geometry = parseGeometry(geometryText, options.geometryPath);
  const maps = computePixelMaps(geometry);
  const slabShape: [number, number] = [maps.ssSize, maps.fsSize];
  const mask = await runMask(options, maps);
  let source = openSource(options.source, {
    geometry,
    maps,
    dataPath: options.dataPath,
    stopped: options.stopped,
  });
  if (options.rateHz !== undefined) source = paced(source, options.rateHz);
  const processor = await createProcessor(options.processor, {
    geometryPath: options.geometryPath,
    maps,
    mask,
    minPeaks: options.minPeaks,
  });
  const sink = await createCxiSink({
    outPath: options.outPath,
    geometryText,
    slabShape,
    allFrames: options.allFrames,
    gzip: options.gzip,
    maxPeaks: options.maxPeaks,
  });
  const collector = createCollector(maps);
  const channel = createChannel<SourceMessage>(Math.max(1, options.queueFrames ?? 8));
  let sourceFrames = 0;
  let deadLetters = 0;
  // The producer: the source into the channel (waits while the channel is full).
  const producer = (async () => {
    try {
      for await (const message of source.messages()) await channel.send(message);
    } finally {
      channel.close();
    }
  })();
  // The consumer: frames through the processor, `concurrency` at once, results in source order.
  type Outcome =
    | { kind: 'result'; result: FrameResult }
    | { kind: 'error'; message: ErrorMessage }
    | { kind: 'end'; frames: number };
  const handle = async (message: SourceMessage): Promise<Outcome> => {
    if (message.kind === 'end') return { kind: 'end', frames: message.frames };
    if (message.kind === 'error') return { kind: 'error', message };
    const frame: FrameMessage = message;
    try {
      const processed = await processor.process(frame);
      return {
        kind: 'result',
        result: {
          ...processed,
          id: frame.id,
          seq: frame.seq,
          slabShape: frame.slabShape,
          pixels: frame.pixels,
          photonEnergyEv: frame.photonEnergyEv,
          clenM: frame.clenM,
          sentAtMs: frame.sentAtMs,
          doneAtMs: Date.now(),
        },
      };
    } catch (error) {
      // One bad frame (a corrupt image a finder rejects) is a dead letter; the run goes on.
      return {
        kind: 'error',
        message: { kind: 'error', id: frame.id, seq: frame.seq, reason: (error as Error).message },
      };
    }
  };
  try {
    for await (const outcome of mapInOrder(channel, processor.concurrency, handle)) {
      if (outcome.kind === 'end') sourceFrames += outcome.frames;
      else if (outcome.kind === 'error') {
        deadLetters++;
        collector.deadLetter(outcome.message);
      } else {
        const before = sink.duplicates;
        await sink.write(outcome.result);
        // A redelivered frame is counted once (the sink wrote it once).
        if (sink.duplicates > before) continue;
        collector.add(outcome.result);
        options.onResult?.(outcome.result, () => collector.stats());
      }
    }
    await producer;
  } finally {
    await processor.release();
    await sink.close();
  }
  const stats = collector.stats();
  const summary: PipelineSummary = {
    source: options.source,
    processor: processor.description,
    transport: 'inproc',
    sourceFrames,
    ...stats,
    lost: Math.max(0, sourceFrames - stats.frames - deadLetters),
    duplicates: sink.duplicates,
    queue: { capacity: channel.capacity, maxDepth: channel.maxDepth },
    rows: sink.rows,
    outputs: { cxi: options.outPath, lst: sink.lstPath, geom: sink.geomPath, summary: options.summaryPath },
  };
  if (options.summaryPath !== undefined)
    writeFileSync(options.summaryPath, `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}
