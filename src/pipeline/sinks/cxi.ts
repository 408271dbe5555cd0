/**
 * The CrystFEL-ready outputs of a run: OUT.cxi with each hit's frame (every frame with `allFrames`)
 * and its peak table in the same file, photon energy and camera length per frame, and for every row
 * the source file and event it came from; OUT.lst naming each row (`OUT.cxi //i`, written when the
 * sink closes); OUT.geom, the
 * run's geometry pointed at that layout (io/geom-cxi.ts). It writes what it is given: duplicates
 * are dropped before it (results.ts).
 *
 *   /entry_1/result_1/sourceFile   int32 [N]   index into sourceFiles ('' for streams, the simulator)
 *   /entry_1/result_1/sourceEvent  int32 [N]   frame index in that file (or the stream's number)
 *   /entry_1/result_1/sourceFiles  string [F] the files, in order of first appearance
 */
import { existsSync, writeFileSync } from 'node:fs';
import {
  type CxiWriter,
  type CxiWriterOptions,
  createCxiWriter,
  createSourceRows,
} from '../../io/cxi-writer.js';
import { createThreadedCxiWriter } from '../../io/cxi-writer-thread.js';
import { geometryForCxi } from '../../io/geom-cxi.js';
import type { NumericDtype } from '../../io/hdf5.js';
import type { FrameResult, Sink } from '../protocol.js';

export interface CxiSinkOptions {
  outPath: string;
  /** The run's geometry text (OUT.geom is written from it). */
  geometryText: string;
  slabShape: [number, number];
  /** Keep misses too (default: hits only). */
  allFrames?: boolean;
  maxPeaks?: number;
  /** gzip level of the frames, 0 (default) to 9. */
  gzip?: number;
  dtype?: NumericDtype;
  /**
   * A restarted sink of the same run: the files of its earlier life stay as they are (a killed
   * writer's file reads back up to its last flush), rows go to the next part (OUT-part2.cxi, ...),
   * and OUT.lst grows on.
   */
  resume?: boolean;
  /** With `resume`: the rows earlier part n holds that its sink had acknowledged (OUT.lst lists those). */
  earlierRows?: (part: number) => number;
  /**
   * Write on a thread of its own (cxi-writer-thread.ts), overlapping the processing: for a sink whose
   * flushes nobody waits on (in-process). A Redis sink acknowledges after its flush: not for it.
   */
  threaded?: boolean;
}

export interface CxiSink extends Sink {
  /** The file this sink writes (OUT.cxi, or a part after a restart) and its number (1, 2, ...). */
  readonly path: string;
  readonly part: number;
  readonly rows: number;
  /** Rows on disk so far (readable by another process after a kill). */
  flush(): void;
  readonly lstPath: string;
  readonly geomPath: string;
}

/** OUT.cxi -> OUT.lst, OUT.geom. */
export function sidePath(outPath: string, extension: string): string {
  return `${outPath.replace(/\.(cxi|h5|hdf5)$/i, '')}${extension}`;
}

/** Part n of OUT.cxi: OUT.cxi itself, then OUT-part2.cxi, ... */
export function partPath(outPath: string, part: number): string {
  if (part === 1) return outPath;
  const match = /\.(cxi|h5|hdf5)$/i.exec(outPath);
  return match === null
    ? `${outPath}-part${part}`
    : `${outPath.slice(0, match.index)}-part${part}${match[0]}`;
}

export async function createCxiSink(options: CxiSinkOptions): Promise<CxiSink> {
  const lstPath = sidePath(options.outPath, '.lst');
  const geomPath = sidePath(options.outPath, '.geom');
  let part = 1;
  if (options.resume) while (existsSync(partPath(options.outPath, part))) part++;
  const outPath = partPath(options.outPath, part);
  writeFileSync(geomPath, geometryForCxi(options.geometryText));
  const writerOptions: CxiWriterOptions = {
    maxPeaks: options.maxPeaks,
    frames: {
      slabShape: options.slabShape,
      dtype: options.dtype ?? 'float32',
      compression: options.gzip ?? 0,
    },
    perFrameScalars: true,
    // A killed run loses at most the frames since the last flush, and the file still reads back.
    flushEvery: 4,
    crashSafe: true,
  };
  const threaded = options.threaded ? await createThreadedCxiWriter(outPath, writerOptions) : undefined;
  const writer: CxiWriter = threaded ?? (await createCxiWriter(outPath, writerOptions));
  const sourceRows = createSourceRows(writer);
  return {
    path: outPath,
    part,
    lstPath,
    geomPath,
    get rows() {
      return writer.frameCount;
    },
    flush: () => writer.flush(),
    write(result: FrameResult): Promise<void> | undefined {
      if (!result.hit && !options.allFrames) return;
      if (result.pixels === undefined)
        throw new Error(`frame ${result.id.file} //${result.id.event}: no pixels reached the CXI sink`);
      writer.appendFrame({
        peaks: result.peaks,
        image: result.pixels,
        photonEnergyEv: result.photonEnergyEv,
        clenM: result.clenM,
      });
      sourceRows.append(result.id.file, result.id.event);
      // The writing thread reads the frame's (shared) memory later: the source must not reuse it
      // before. (This thread's writer has copied it into HDF5 by now.)
      if (threaded !== undefined && result.loan !== undefined) {
        const letGo = result.loan.hold();
        void threaded.written().then(letGo);
      }
      // A few frames queued on the writing thread at most: a slow disk holds the run back.
      if (threaded !== undefined && threaded.backlog > 3 * 8) return threaded.settled(3 * 4);
    },
    async close() {
      try {
        sourceRows.finish();
      } finally {
        if (threaded !== undefined) await threaded.closeAsync();
        else writer.close();
        // OUT.lst: every part's rows in order. A killed sink's part may hold rows beyond those it
        // acknowledged (written, not acknowledged, then redelivered into the next part): not listed.
        const lines: string[] = [];
        const rows = Array.from({ length: part }, (_, i) =>
          i + 1 === part ? writer.frameCount : (options.earlierRows?.(i + 1) ?? 0),
        );
        rows.forEach((count, i) => {
          for (let r = 0; r < count; r++) lines.push(`${partPath(options.outPath, i + 1)} //${r}`);
        });
        writeFileSync(lstPath, lines.length > 0 ? `${lines.join('\n')}\n` : '');
      }
    },
  };
}
