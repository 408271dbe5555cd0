/**
 * The CrystFEL-ready outputs of a run: OUT.cxi with each hit's frame (every frame with `allFrames`)
 * and its peak table in the same file, photon energy and camera length per frame, and for every row
 * the source file and event it came from; OUT.lst naming each row (`OUT.cxi //i`); OUT.geom, the
 * run's geometry pointed at that layout (io/geom-cxi.ts). It writes what it is given: duplicates
 * are dropped before it (results.ts).
 *
 *   /entry_1/result_1/sourceFile   int32 [N]   index into sourceFiles ('' for streams, the simulator)
 *   /entry_1/result_1/sourceEvent  int32 [N]   frame index in that file (or the stream's number)
 *   /entry_1/result_1/sourceFiles  string [F] the files, in order of first appearance
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { type CxiWriter, createCxiWriter } from '../../io/cxi-writer.js';
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
}

export interface CxiSink extends Sink {
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

export async function createCxiSink(options: CxiSinkOptions): Promise<CxiSink> {
  const { outPath } = options;
  const lstPath = sidePath(outPath, '.lst');
  const geomPath = sidePath(outPath, '.geom');
  writeFileSync(geomPath, geometryForCxi(options.geometryText));
  // The list grows row by row, as the CXI does: a killed run leaves both consistent up to a flush.
  writeFileSync(lstPath, '');
  const writer: CxiWriter = await createCxiWriter(outPath, {
    maxPeaks: options.maxPeaks,
    frames: {
      slabShape: options.slabShape,
      dtype: options.dtype ?? 'float32',
      compression: options.gzip ?? 0,
    },
    perFrameScalars: true,
    // A killed run loses at most the frames since the last flush.
    flushEvery: 4,
  });
  const files = new Map<string, number>();
  return {
    lstPath,
    geomPath,
    get rows() {
      return writer.frameCount;
    },
    flush: () => writer.flush(),
    write(result: FrameResult) {
      if (!result.hit && !options.allFrames) return;
      if (result.pixels === undefined)
        throw new Error(`frame ${result.id.file} //${result.id.event}: no pixels reached the CXI sink`);
      const { frameIndex } = writer.appendFrame({
        peaks: result.peaks,
        image: result.pixels,
        photonEnergyEv: result.photonEnergyEv,
        clenM: result.clenM,
      });
      let fileIndex = files.get(result.id.file);
      if (fileIndex === undefined) {
        fileIndex = files.size;
        files.set(result.id.file, fileIndex);
      }
      writer.appendExtra('sourceFile', Int32Array.of(fileIndex), []);
      writer.appendExtra('sourceEvent', Int32Array.of(result.id.event), []);
      appendFileSync(lstPath, `${outPath} //${frameIndex}\n`);
    },
    close() {
      try {
        if (files.size > 0) writer.writeStrings('sourceFiles', [...files.keys()]);
      } finally {
        writer.close();
      }
    },
  };
}
