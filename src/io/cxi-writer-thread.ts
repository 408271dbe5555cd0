/**
 * A CXI writer on its own thread: the same calls as createCxiWriter's, queued in order to a worker
 * that owns the file, so encoding and writing frames (HDF5 through h5wasm, a few ms per megapixel)
 * overlaps the caller's work instead of taking turns with it. For a pipeline's in-process sink.
 *
 * - Results the caller needs at once (the frame index, peaks kept and dropped) are computed here by
 *   the same rule as the writer's (the strongest maxPeaks peaks are kept).
 * - The caller may still hold a frame after appending it (the monitor's gallery): it is not moved to
 *   the thread. A frame in a SharedArrayBuffer (the file source reads into one) goes as it is, both
 *   threads reading the same memory; any other is copied once into one (a postMessage of the array
 *   would copy it twice, out of this thread and into the other). Frames must not change after.
 * - Calls are posted to the thread as they are made (the pool's `depth`): it writes while this thread
 *   is busy (pf8), instead of taking one call per turn of this thread's event loop. The calls made in
 *   one turn go as one message (a sink's frame and its source rows).
 * - `backlog` counts calls.
 * - An error on the thread is thrown by the next call (and by `settled`/`closeAsync`).
 * - `settled(n)` waits until at most n calls are queued: the caller's backpressure (a slow disk must
 *   not pile frames up in memory). `closeAsync` waits for every call and the file's close.
 * - Not for a writer whose flush must be on disk before the caller goes on (a Redis sink acknowledges
 *   after its flush): `flush` here only queues one.
 */
import { createWorkerPool, toShared, workerScriptUrl } from '../util/worker-pool.js';
import type { CxiFrameRecord, CxiWriter, CxiWriterOptions } from './cxi-writer.js';
import type { NumericArray } from './hdf5.js';

export type WriterCall =
  | { op: 'open'; path: string; options: CxiWriterOptions }
  | { op: 'appendFrame'; frame: CxiFrameRecord }
  | { op: 'appendExtra'; name: string; row: NumericArray; rowShape?: number[] }
  | { op: 'writeStrings'; name: string; values: string[] }
  | { op: 'linkExternal'; name: string; file: string; target: string }
  | { op: 'flush' }
  | { op: 'close' };

export interface ThreadedCxiWriter extends CxiWriter {
  /** Calls queued on the thread and not yet done. */
  readonly backlog: number;
  /** Resolves once at most `calls` are queued (throws the thread's error, if any). */
  settled(calls?: number): Promise<void>;
  /** Resolves (never rejects) once the calls made so far are done on the thread, or failed. */
  written(): Promise<void>;
  /** Every queued call done and the file closed. */
  closeAsync(): Promise<void>;
}

export async function createThreadedCxiWriter(
  path: string,
  options: CxiWriterOptions = {},
): Promise<ThreadedCxiWriter> {
  const maxPeaks = options.maxPeaks ?? 2048;
  // Deeper than any backlog a caller keeps (the CXI sink holds it to ~8 frames).
  const pool = createWorkerPool<WriterCall[], null>(
    workerScriptUrl(import.meta.url, 'cxi-writer-worker'),
    1,
    undefined,
    { depth: 256 },
  );
  let failure: unknown;
  let closed = false;
  let frameCount = 0;
  let peaksDropped = 0;
  /** Messages on their way or on the thread, and the calls they carry. */
  const queued = new Set<Promise<unknown>>();
  let backlog = 0;
  // The thread runs calls in order: the latest done means every earlier one is.
  let latest: Promise<unknown> = Promise.resolve();
  /** This turn's calls, posted together once the turn's synchronous code is done. */
  let batch: WriterCall[] | undefined;
  const check = () => {
    if (failure !== undefined) throw failure;
  };
  const send = (call: WriterCall): void => {
    check();
    if (closed) throw new Error(`CXI writer for ${path} is closed`);
    if (batch === undefined) {
      const calls: WriterCall[] = [];
      batch = calls;
      const done: Promise<unknown> = Promise.resolve()
        .then(() => {
          batch = undefined;
          return pool.run(calls);
        })
        .catch((error: unknown) => {
          failure ??= error;
        })
        .finally(() => {
          queued.delete(done);
          backlog -= calls.length;
        });
      queued.add(done);
      latest = done;
    }
    batch.push(call);
    backlog++;
  };
  const settled = async (calls = 0): Promise<void> => {
    while (backlog > calls) await Promise.race(queued);
    check();
  };
  // Opening the file is awaited: a bad path fails here, as createCxiWriter would.
  send({ op: 'open', path, options });
  try {
    await settled();
  } catch (error) {
    await pool.close();
    throw error;
  }
  let closing: Promise<void> | undefined;
  const closeAsync = (): Promise<void> => {
    closing ??= (async () => {
      try {
        if (!closed && failure === undefined) send({ op: 'close' });
        closed = true;
        await settled();
      } finally {
        closed = true;
        await pool.close();
      }
    })();
    return closing;
  };
  return {
    path,
    maxPeaks,
    get frameCount() {
      return frameCount;
    },
    get peaksDropped() {
      return peaksDropped;
    },
    get backlog() {
      return backlog;
    },
    appendFrame(frame) {
      const image = frame.image;
      send({
        op: 'appendFrame',
        frame: { ...frame, ...(image === undefined ? {} : { image: toShared(image) }) },
      });
      const dropped = Math.max(0, frame.peaks.count - maxPeaks);
      peaksDropped += dropped;
      return { frameIndex: frameCount++, peaksWritten: frame.peaks.count - dropped, peaksDropped: dropped };
    },
    appendExtra(name, row, rowShape) {
      send({ op: 'appendExtra', name, row: row.slice(), rowShape });
    },
    writeStrings(name, values) {
      send({ op: 'writeStrings', name, values: [...values] });
    },
    linkExternal(name, file, target) {
      send({ op: 'linkExternal', name, file, target });
    },
    flush() {
      send({ op: 'flush' });
    },
    settled,
    written: () => latest.then(() => {}),
    close() {
      // The thread ends when its calls are done; closeAsync waits for that.
      void closeAsync().catch(() => {});
    },
    closeAsync,
  };
}
