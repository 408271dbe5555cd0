/**
 * Frames from files, as a detector's files arrive at a facility: CXI/HDF5 stacks (every frame, or
 * one event), CBF files, and CrystFEL `.lst` lists of them (`path` or `path //event` per line, blank
 * lines and `#` comments skipped; paths relative to the working directory, as indexamajig reads
 * them). Photon energy and camera length come per frame from the data file where the geometry names
 * a dataset, else from the geometry's values. A frame that cannot be read becomes an `error` message
 * naming the file and the reason, and the run goes on.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { createBeamReader } from '../../io/beam.js';
import { isCbfPath, readCbfFrame } from '../../io/cbf.js';
import { type FrameReader, openFrameReader } from '../../io/cxi-reader.js';
import type { Geometry } from '../../io/geom.js';
import { UserError } from '../../util/errors.js';
import { createWorkerPool, mapInOrder, sharedFloat32, workerScriptUrl } from '../../util/worker-pool.js';
import { createFramePool } from '../pixels.js';
import type { FrameId, SourceMessage } from '../protocol.js';

/** One entry of the source: a whole file, or one event of it. */
export interface FileEntry {
  path: string;
  event?: number;
}

/** The entries of a CrystFEL list file (`path` or `path //event`). */
export function readListFile(path: string): FileEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UserError(`cannot read the list (${(error as NodeJS.ErrnoException).code ?? 'error'})`, path);
  }
  const entries: FileEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const match = /^(\S+)(?:\s+\/\/(\d+))?\s*$/.exec(line);
    if (match === null)
      throw new UserError(`expected 'FILE' or 'FILE //EVENT', got '${line}'`, path, `line ${i + 1}`);
    entries.push({ path: match[1], event: match[2] === undefined ? undefined : Number(match[2]) });
  });
  if (entries.length === 0) throw new UserError('lists no files', path);
  return entries;
}

/** The entries a `file:` source names: a list file's lines, or the file itself. */
export function fileEntries(path: string): FileEntry[] {
  return extname(path).toLowerCase() === '.lst' ? readListFile(path) : [{ path }];
}

export interface FileSourceOptions {
  name: string;
  entries: FileEntry[];
  geometry: Geometry;
  slabShape: [number, number];
  dataPath?: string;
  /**
   * Frames read ahead on a worker thread: reading (HDF5 decoding, the beam values) then overlaps the
   * processing instead of taking turns with it on this thread. 0 (default) reads here.
   */
  readAhead?: number;
}

/**
 * A request to the reading thread: how many frames a file holds, or one frame of it. `out`: where to
 * read an HDF5 frame (float32 in a SharedArrayBuffer, so it reaches every thread without copies).
 */
export type ReadTask =
  | { kind: 'count'; path: string }
  | { kind: 'frame'; path: string; event: number; out?: Float32Array };

export type ReadResult =
  | { kind: 'count'; frameCount: number }
  | { kind: 'frame'; pixels: Float32Array; photonEnergyEv?: number; clenM?: number };

/** What the reading thread needs (structured-cloned to it). */
export interface FileReaderData {
  geometry: Geometry;
  slabShape: [number, number];
  dataPath?: string;
}

/**
 * Reads files for a file source, on whichever thread owns it: frame counts and frames, with each
 * frame's beam values. An HDF5 frame is read (one copy out of h5wasm's heap) into the task's `out`,
 * else a new float32 array in a SharedArrayBuffer: it travels down the pipeline from the reading
 * thread to this one, to pf8's worker threads and to the CXI sink's writing thread without being
 * copied again. Consecutive
 * requests for one file share its reader (a list names a file once per event; opening an HDF5 file
 * costs more than reading a frame from it).
 */
export function createFileReader(data: FileReaderData) {
  const beam = createBeamReader(data.geometry);
  const { slabShape } = data;
  let open: { path: string; reader: FrameReader } | undefined;
  const readerFor = async (path: string): Promise<FrameReader> => {
    if (open?.path !== path) {
      open?.reader.close();
      open = undefined;
      open = {
        path,
        reader: await openFrameReader(path, { dataPath: data.dataPath, expectedSlabShape: slabShape }),
      };
    }
    return open.reader;
  };
  return {
    async run(task: ReadTask): Promise<ReadResult> {
      if (task.kind === 'count')
        return {
          kind: 'count',
          frameCount: isCbfPath(task.path) ? 1 : (await readerFor(task.path)).frameCount,
        };
      let pixels: Float32Array;
      if (isCbfPath(task.path)) pixels = readCbfFrame(task.path, slabShape);
      else
        pixels = (await readerFor(task.path)).readFrame(
          task.event,
          task.out ?? sharedFloat32(slabShape[0] * slabShape[1]),
        );
      const values = await beam(isCbfPath(task.path) ? undefined : task.path, task.event);
      const result: ReadResult = { kind: 'frame', pixels };
      if (values.photonEnergyEv !== undefined) result.photonEnergyEv = values.photonEnergyEv;
      if (values.clenM !== undefined) result.clenM = values.clenM;
      return result;
    },
    close(): void {
      open?.reader.close();
      open = undefined;
    },
  };
}

type Item = { id: FrameId; error: string } | { id: FrameId; task: ReadTask & { kind: 'frame' } };

export function createFileSource(options: FileSourceOptions) {
  const { name, entries, slabShape } = options;
  const readAhead = options.readAhead ?? 0;
  return {
    name,
    async *messages(): AsyncGenerator<SourceMessage> {
      const data: FileReaderData = { geometry: options.geometry, slabShape, dataPath: options.dataPath };
      const local = readAhead > 0 ? undefined : createFileReader(data);
      const pool =
        readAhead > 0
          ? createWorkerPool<ReadTask, ReadResult>(
              workerScriptUrl(import.meta.url, 'file-read-worker'),
              1,
              data,
              // The thread reads the next frames while this one is busy (it does not wait for this
              // thread to take each frame before starting the next).
              { depth: readAhead },
            )
          : undefined;
      const read = (task: ReadTask): Promise<ReadResult> => (pool ? pool.run(task) : local!.run(task));
      // HDF5 frames are read into memory lent by this pool, taken back when the run is done with
      // them (pixels.ts): a run that lets go allocates no memory per frame.
      const frames = createFramePool(slabShape[0] * slabShape[1]);
      // Every frame the entries name, in order; a file that cannot be opened is one dead letter (its
      // frames cannot be counted).
      async function* items(): AsyncGenerator<Item> {
        for (const entry of entries) {
          if (entry.event !== undefined || isCbfPath(entry.path)) {
            const event = entry.event ?? 0;
            yield {
              id: { source: name, file: entry.path, event },
              task: { kind: 'frame', path: entry.path, event },
            };
            continue;
          }
          let count: number;
          try {
            const result = await read({ kind: 'count', path: entry.path });
            count = result.kind === 'count' ? result.frameCount : 0;
          } catch (error) {
            yield { id: { source: name, file: entry.path, event: 0 }, error: reasonOf(error) };
            continue;
          }
          for (let event = 0; event < count; event++)
            yield {
              id: { source: name, file: entry.path, event },
              task: { kind: 'frame', path: entry.path, event },
            };
        }
      }
      let seq = 0;
      try {
        const outcomes = mapInOrder(items(), Math.max(1, readAhead), async (item) => {
          if ('error' in item) return { id: item.id, error: item.error };
          const lent = isCbfPath(item.task.path) ? undefined : frames.take();
          try {
            return { id: item.id, result: await read({ ...item.task, out: lent?.pixels }), loan: lent?.loan };
          } catch (error) {
            lent?.loan.done();
            // A reading thread that died (not a frame it could not read) ends the run.
            if (pool !== undefined && !(error instanceof UserError)) throw error;
            return { id: item.id, error: reasonOf(error) };
          }
        });
        for await (const outcome of outcomes) {
          if ('error' in outcome) {
            yield { kind: 'error', id: outcome.id, seq: seq++, reason: outcome.error as string };
            continue;
          }
          const result = outcome.result as ReadResult & { kind: 'frame' };
          const message: SourceMessage = {
            kind: 'frame',
            id: outcome.id,
            seq: seq++,
            slabShape,
            pixels: result.pixels,
            sentAtMs: Date.now(),
          };
          if (result.photonEnergyEv !== undefined) message.photonEnergyEv = result.photonEnergyEv;
          if (result.clenM !== undefined) message.clenM = result.clenM;
          if (outcome.loan !== undefined) message.loan = outcome.loan;
          yield message;
        }
      } finally {
        local?.close();
        await pool?.close();
      }
      yield { kind: 'end', source: name, frames: seq };
    },
  };
}

/** One line for a dead letter: a UserError's file/field/message, else the message. */
export function reasonOf(error: unknown): string {
  if (error instanceof UserError) return error.toLine();
  return error instanceof Error ? error.message : String(error);
}
