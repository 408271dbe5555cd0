/**
 * One shard of `braggflow label` as a self-contained job: the frames to label (image file and event,
 * the peaks to fit, the stream's beam values) and where to write. The coordinator (label.ts) builds
 * jobs from the stream; a job runs the same on the coordinator's thread, in a worker thread
 * (label-worker.ts) or in a BullMQ worker process on another machine (label-queue.ts): it needs the
 * image files and the output folder, never the stream.
 *
 * A job writes `shard-NNNNN.h5.PID-RANDOM.part` and renames it to `shard-NNNNN.h5` when complete, so a
 * shard file without `.part` is always whole; a job run twice (a worker killed after writing, the job
 * retried) writes the same file again.
 */
import { randomBytes } from 'node:crypto';
import { renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { panelSlabRect, type SlabRect } from '../detector/mask.js';
import { buildMask } from '../detector/mask-file.js';
import { computePixelMaps } from '../detector/pixel-maps.js';
import { isCbfPath, readCbfFrame } from '../io/cbf.js';
import { type FrameReader, openFrameReader } from '../io/cxi-reader.js';
import { createCxiWriter, createSourceRows } from '../io/cxi-writer.js';
import { parseGeometry } from '../io/geom.js';
import { strongestWithColumn } from '../peaks/peak-list.js';
import { labelFrame } from './label-frame.js';
import type { FitOptions } from './pseudo-voigt.js';

/** One frame of a job: everything labelFrame and the shard need, from the stream's chunk. */
export interface LabelJobFrame {
  /** 0-based chunk of the stream. */
  chunk: number;
  /** The image file, resolved (absolute). */
  file: string;
  /** Frame index in the file (`//N`); 0 for single-image files. */
  event: number;
  photonEnergyEv?: number;
  clenM?: number;
  found: number;
  predicted: number;
  matched: number;
  /** The peaks to fit: slab positions (CXI convention) and geometry panel indices. */
  fs: number[];
  ss: number[];
  panel: number[];
}

export interface LabelJob {
  /** Identifies the labelling run (output folder, stream, choices): queue job ids start with it. */
  key: string;
  /** Shard number: the file is shard-NNNNN.h5. */
  index: number;
  outDir: string;
  geometryText: string;
  /** Names the geometry in messages. */
  geometrySource: string;
  dataPath?: string;
  maskFiles?: string[];
  fit: FitOptions;
  minSnr: number;
  compression: number;
  frames: LabelJobFrame[];
}

/** What a completed shard holds (the manifest's record). */
export interface ShardRecord {
  index: number;
  /** File name inside the output folder. */
  file: string;
  frames: number;
  /** Stream chunks (0-based) of its first and last frame. */
  firstChunk: number;
  lastChunk: number;
  peaks: number;
  labelledPixels: number;
  badFits: number;
  badReasons: Record<string, number>;
}

export function shardFileName(index: number): string {
  return `shard-${String(index).padStart(5, '0')}.h5`;
}

/** Runs one job (see the module comment) and returns its shard's record. */
export async function runLabelJob(job: LabelJob): Promise<ShardRecord> {
  const geometry = parseGeometry(job.geometryText, job.geometrySource);
  const maps = computePixelMaps(geometry);
  const slabShape: [number, number] = [maps.ssSize, maps.fsSize];
  const rects: SlabRect[] = geometry.panels.map((_, p) => panelSlabRect(maps, p));
  const file = shardFileName(job.index);
  const finalPath = join(job.outDir, file);
  // Each attempt its own part file: a stalled attempt still writing cannot corrupt a retry's.
  const partPath = `${finalPath}.${process.pid}-${randomBytes(4).toString('hex')}.part`;
  const firstHdf5 = job.frames.find((frame) => !isCbfPath(frame.file))?.file;
  const mask = await buildMask(maps, { dataFile: firstHdf5, extraFiles: job.maskFiles });
  const readers = new Map<string, FrameReader>();
  const record: ShardRecord = {
    index: job.index,
    file,
    frames: 0,
    firstChunk: job.frames[0]?.chunk ?? 0,
    lastChunk: job.frames.at(-1)?.chunk ?? 0,
    peaks: 0,
    labelledPixels: 0,
    badFits: 0,
    badReasons: {},
  };
  const readImage = async (frame: LabelJobFrame): Promise<Float32Array> => {
    if (isCbfPath(frame.file)) return readCbfFrame(frame.file, slabShape);
    let reader = readers.get(frame.file);
    if (reader === undefined) {
      // A few files open at once: a shard's frames come from the stream's files in order.
      if (readers.size >= 4) {
        const [oldest, open] = readers.entries().next().value as [string, FrameReader];
        open.close();
        readers.delete(oldest);
      }
      reader = await openFrameReader(frame.file, {
        expectedSlabShape: slabShape,
        dataPath: job.dataPath ?? geometry.panels[0]?.dataPath,
      });
      readers.set(frame.file, reader);
    }
    return new Float32Array(reader.readFrame(frame.event));
  };

  const writer = await createCxiWriter(partPath, {
    peakGroup: '/entry_1/truth_1',
    frames: { slabShape, dtype: 'float32', compression: job.compression },
    perFrameScalars: true,
  });
  const sourceRows = createSourceRows(writer);
  try {
    for (const frame of job.frames) {
      const image = await readImage(frame);
      // Let timers run between frames (a queue worker renews its job's lock on one).
      await new Promise<void>((resolve) => setImmediate(resolve));
      const result = labelFrame({
        image,
        fsSize: maps.fsSize,
        ssSize: maps.ssSize,
        mask,
        panels: rects,
        peaks: { count: frame.fs.length, fs: frame.fs, ss: frame.ss, panel: frame.panel },
        fit: job.fit,
        minSnr: job.minSnr,
      });
      // More spots than the table holds: the strongest, as the writer keeps them, with their fit
      // quality in the same order.
      const { peaks, column: reducedChiSquare } = strongestWithColumn(
        result.peaks,
        result.peakReducedChiSquare,
        writer.maxPeaks,
      );
      writer.appendFrame({
        peaks,
        image,
        photonEnergyEv: frame.photonEnergyEv,
        clenM: frame.clenM,
      });
      writer.appendExtra('mask', result.labels, slabShape);
      const badFits = result.bad.reduce((n, b) => n + b, 0);
      sourceRows.append(frame.file, frame.event);
      writer.appendExtra('streamChunk', Int32Array.of(frame.chunk), []);
      writer.appendExtra('found', Int32Array.of(frame.found), []);
      writer.appendExtra('predicted', Int32Array.of(frame.predicted), []);
      writer.appendExtra('matched', Int32Array.of(frame.matched), []);
      writer.appendExtra('badFits', Int32Array.of(badFits), []);
      // Fit quality per spot, beside the peak table's columns (zero-padded as they are).
      writer.appendExtra('fitReducedChiSquare', reducedChiSquare, [writer.maxPeaks]);
      record.frames++;
      record.peaks += peaks.count;
      record.labelledPixels += result.labelledPixels;
      record.badFits += badFits;
      for (const [reason, count] of Object.entries(result.badReasons))
        record.badReasons[reason] = (record.badReasons[reason] ?? 0) + count;
    }
    sourceRows.finish();
    writer.close();
  } catch (error) {
    try {
      writer.close();
    } catch {
      // Failing already: that error is the one to report.
    }
    rmSync(partPath, { force: true });
    throw error;
  } finally {
    for (const reader of readers.values()) reader.close();
  }
  renameSync(partPath, finalPath);
  return record;
}
