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
import { cbfToSlab, readCbf } from '../../io/cbf.js';
import { type FrameReader, openFrameReader } from '../../io/cxi-reader.js';
import type { Geometry } from '../../io/geom.js';
import { UserError } from '../../util/errors.js';
import type { SourceMessage } from '../protocol.js';

/** One entry of the source: a whole file, or one event of it. */
export interface FileEntry {
  path: string;
  event?: number;
}

export function isCbfPath(path: string): boolean {
  return extname(path).toLowerCase() === '.cbf';
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
}

export function createFileSource(options: FileSourceOptions) {
  const { name, entries, slabShape } = options;
  const beam = createBeamReader(options.geometry);
  return {
    name,
    async *messages(): AsyncGenerator<SourceMessage> {
      let seq = 0;
      let open: { path: string; reader: FrameReader } | undefined;
      try {
        for (const entry of entries) {
          // Each entry: its events and how to read one (a CBF is one frame; a stack, all or one event).
          let events: number[];
          let read: (event: number) => Float32Array;
          if (isCbfPath(entry.path)) {
            events = [0];
            read = () => {
              const slab = cbfToSlab(readCbf(entry.path));
              if (slab.shape[0] !== slabShape[0] || slab.shape[1] !== slabShape[1])
                throw new UserError(
                  `image [ss, fs] = [${slab.shape.join(', ')}] does not match the geometry's slab [${slabShape.join(', ')}]`,
                  entry.path,
                );
              return Float32Array.from(slab.data);
            };
          } else {
            let reader: FrameReader;
            try {
              // A list names a file once per event: consecutive entries of one file share its reader
              // (opening an HDF5 file costs more than reading a frame from it).
              if (open?.path !== entry.path) {
                open?.reader.close();
                open = undefined;
                open = {
                  path: entry.path,
                  reader: await openFrameReader(entry.path, {
                    dataPath: options.dataPath,
                    expectedSlabShape: slabShape,
                  }),
                };
              }
              reader = open.reader;
            } catch (error) {
              // The whole file is unreadable: one dead letter for it (its frames cannot be counted).
              const id = { source: name, file: entry.path, event: entry.event ?? 0 };
              yield { kind: 'error', id, seq: seq++, reason: reasonOf(error) };
              continue;
            }
            events =
              entry.event === undefined
                ? Array.from({ length: reader.frameCount }, (_, i) => i)
                : [entry.event];
            // A fresh array per frame (it travels down the pipeline): the reader's own, no second copy.
            read = (event) => reader.readFrame(event);
          }
          for (const event of events) {
            const id = { source: name, file: entry.path, event };
            try {
              const values = read(event);
              const beamValues = await beam(isCbfPath(entry.path) ? undefined : entry.path, event);
              yield {
                kind: 'frame',
                id,
                seq: seq++,
                slabShape,
                pixels: values,
                ...beamValues,
                sentAtMs: Date.now(),
              };
            } catch (error) {
              yield { kind: 'error', id, seq: seq++, reason: reasonOf(error) };
            }
          }
        }
      } finally {
        open?.reader.close();
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
