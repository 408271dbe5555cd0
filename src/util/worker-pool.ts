/**
 * A small fixed-size pool of worker threads for CPU-bound, per-frame work (simulating frames, finding
 * peaks, evaluating parameter sets). Each worker takes one task at a time; tasks queue in order and each
 * `run` resolves with its own result, so callers that await results in submission order get output in
 * input order whatever the pool size.
 *
 * The worker module calls `serveWorkerTasks(handler)`. A UserError thrown in a worker comes back as a
 * UserError (file, field and message kept), so the CLI still prints one line; anything else comes back
 * as an Error carrying the worker's stack.
 *
 * `depth` tasks can be posted to a worker at once (default 1): it then takes its next task as soon as
 * it finishes one, instead of waiting for this thread to receive the result and hand the next one
 * over. That matters where this thread is busy for long stretches (a pipeline running pf8 while its
 * reading and writing threads work): with depth 1 such a worker does one task per turn of this
 * thread's event loop. A worker runs its tasks one after another in the order they came.
 *
 * A worker that dies before it is serving (its module threw while loading, a missing import) fails the
 * pool at once: every queued and running task, and every later `run`, rejects with that worker's
 * error, instead of a replacement being started to die the same way. A worker that dies later (a
 * crash on one task) fails that task, and a fresh worker takes its place. Callers keep memory bounded
 * with `mapInOrder`: a window of tasks in flight over any iterable, results in input order.
 *
 * `workerScriptUrl` picks the sibling module with the caller's own extension (.ts in the source tree
 * under tsx, .js in dist/). Node 20 does not carry tsx's loader hooks into worker threads (an inherited
 * `--import tsx` still fails with "Unknown file extension .ts"), so a `.ts` worker starts from a tiny
 * bootstrap that registers tsx in the worker first.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, type TransferListItem, Worker, workerData } from 'node:worker_threads';
import { UserError } from './errors.js';

/** What may be moved (not copied) between threads: ArrayBuffers, MessagePorts. */
export type Transferable = TransferListItem;

export interface WorkerPool<TTask, TResult> {
  readonly size: number;
  /** Queues a task; `transfer` lists buffers moved (not copied) to the worker. */
  run(task: TTask, transfer?: Transferable[]): Promise<TResult>;
  /** Terminates every worker; tasks still queued are rejected. */
  close(): Promise<void>;
}

/**
 * The buffers of `arrays` that a postMessage can move (not copy): an ArrayBuffer's. A
 * SharedArrayBuffer's is left out (it cannot be moved, and needs not be: both threads see it).
 */
export function transferList(...arrays: ArrayBufferView[]): ArrayBuffer[] {
  const buffers: ArrayBuffer[] = [];
  for (const array of arrays) if (array.buffer instanceof ArrayBuffer) buffers.push(array.buffer);
  return buffers;
}

/** Whether `array` lives in a SharedArrayBuffer (a postMessage shares it instead of copying it). */
export function isShared(array: ArrayBufferView): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && array.buffer instanceof SharedArrayBuffer;
}

/** A zeroed float32 array in a SharedArrayBuffer: a frame that goes to other threads without copies. */
export function sharedFloat32(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT));
}

/**
 * `array` itself when it is shared, else a copy of it in a SharedArrayBuffer: what another thread can
 * read while the caller keeps the original (one copy, where a postMessage of an unshared array
 * copies it twice: out of this thread's memory and into the other's).
 */
export function toShared<T extends NumericView>(array: T): T {
  if (isShared(array)) return array;
  const Ctor = array.constructor as new (buffer: SharedArrayBuffer) => T;
  const copy = new Ctor(new SharedArrayBuffer(array.byteLength));
  copy.set(array);
  return copy;
}

/** Every typed array of numbers (io/hdf5.ts reads and writes these too). */
export type NumericView =
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array;

/** The module `baseName` beside the calling module, with the caller's extension (.ts or .js). */
export function workerScriptUrl(importMetaUrl: string, baseName: string): URL {
  const ext = extname(fileURLToPath(importMetaUrl));
  return new URL(`./${baseName}${ext}`, importMetaUrl);
}

interface TaskMessage {
  id: number;
  task: unknown;
}

interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  file?: string;
  where?: string;
}

type ResultMessage =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: SerializedError }
  /** Sent once by serveWorkerTasks: the module loaded and the worker takes tasks. */
  | { ready: true };

interface Pending {
  id: number;
  task: unknown;
  transfer: Transferable[];
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  /** Tasks posted to the worker, oldest (the one it runs) first. */
  posted: Pending[];
  ready: boolean;
}

export interface WorkerPoolOptions {
  /** Tasks posted to each worker ahead of their results (default 1). */
  depth?: number;
}

function serializeError(error: unknown): SerializedError {
  if (error instanceof UserError)
    return { name: 'UserError', message: error.message, file: error.file, where: error.where };
  if (error instanceof Error) return { name: error.name, message: error.message, stack: error.stack };
  return { name: 'Error', message: String(error) };
}

function deserializeError(error: SerializedError): Error {
  if (error.name === 'UserError') return new UserError(error.message, error.file, error.where);
  const result = new Error(`worker: ${error.message}`);
  result.name = error.name;
  if (error.stack !== undefined) result.stack = `${result.name}: worker: ${error.message}\n${error.stack}`;
  return result;
}

function spawnWorker(scriptUrl: URL, data: unknown): Worker {
  if (!scriptUrl.pathname.endsWith('.ts')) return new Worker(scriptUrl, { workerData: data });
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((api) => { api.register(); return import(${JSON.stringify(scriptUrl.href)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: data });
}

/** Starts `size` workers running `scriptUrl`, each given `data` as its workerData. */
export function createWorkerPool<TTask, TResult>(
  scriptUrl: URL,
  size: number,
  data?: unknown,
  options: WorkerPoolOptions = {},
): WorkerPool<TTask, TResult> {
  if (!Number.isInteger(size) || size < 1)
    throw new UserError(`worker count must be a positive integer, got ${size}`);
  const depth = Math.max(1, options.depth ?? 1);
  const queue: Pending[] = [];
  const slots: Slot[] = [];
  let nextId = 0;
  let closed = false;
  /** Set when a worker died before serving: every task and later run rejects with it. */
  let failure: Error | undefined;

  const failPool = (error: Error) => {
    failure = error;
    closed = true;
    for (const pending of queue.splice(0)) pending.reject(error);
    for (const slot of slots) {
      for (const pending of slot.posted.splice(0)) pending.reject(error);
      void slot.worker.terminate();
    }
  };

  // The least loaded worker first, up to `depth` tasks each.
  const dispatch = () => {
    for (let level = 0; level < depth; level++) {
      for (const slot of slots) {
        if (slot.posted.length > level) continue;
        const pending = queue.shift();
        if (pending === undefined) return;
        slot.posted.push(pending);
        const message: TaskMessage = { id: pending.id, task: pending.task };
        slot.worker.postMessage(message, pending.transfer);
      }
    }
  };

  const startWorker = (): Slot => {
    const slot: Slot = { worker: spawnWorker(scriptUrl, data), posted: [], ready: false };
    slot.worker.on('message', (message: ResultMessage) => {
      if ('ready' in message) {
        slot.ready = true;
        return;
      }
      const pending = slot.posted[0];
      if (pending === undefined || pending.id !== message.id) return;
      slot.posted.shift();
      if (message.ok) pending.resolve(message.result);
      else pending.reject(deserializeError(message.error));
      dispatch();
    });
    // A worker that dies (uncaught error, out of memory) fails its task; a fresh worker takes its place
    // so the rest of the queue still runs.
    const onDeath = (error: Error) => {
      const index = slots.indexOf(slot);
      if (index < 0) return;
      if (!slot.ready && !closed) {
        // Its module never loaded: a replacement would die the same way.
        const reason =
          error instanceof UserError ? error : new Error(`worker failed to start: ${error.message}`);
        if (error.stack !== undefined && !(error instanceof UserError)) reason.stack = error.stack;
        failPool(reason);
        return;
      }
      // It died on the task it ran (the oldest posted); the ones posted after it go to the fresh
      // worker first. (Their buffers, if transferred, went with the dead worker: such tasks fail.)
      const [failed, ...waiting] = slot.posted.splice(0);
      if (closed) return;
      slots[index] = startWorker();
      failed?.reject(error);
      for (const pending of waiting.reverse()) {
        if (pending.transfer.length > 0) pending.reject(error);
        else queue.unshift(pending);
      }
      dispatch();
    };
    slot.worker.on('error', onDeath);
    slot.worker.on('exit', (code) => {
      if (!closed) onDeath(new Error(`worker exited with code ${code}`));
    });
    return slot;
  };

  for (let i = 0; i < size; i++) slots.push(startWorker());

  return {
    size,
    run(task: TTask, transfer: Transferable[] = []): Promise<TResult> {
      if (failure !== undefined) return Promise.reject(failure);
      if (closed) return Promise.reject(new Error('worker pool is closed'));
      return new Promise<TResult>((resolve, reject) => {
        queue.push({ id: nextId++, task, transfer, resolve: resolve as (value: unknown) => void, reject });
        dispatch();
      });
    },
    async close(): Promise<void> {
      if (failure !== undefined) {
        await Promise.all(slots.map((slot) => slot.worker.terminate()));
        return;
      }
      if (closed) return;
      closed = true;
      for (const pending of queue.splice(0))
        pending.reject(new Error('worker pool closed before the task ran'));
      for (const slot of slots)
        for (const pending of slot.posted.splice(0))
          pending.reject(new Error('worker pool closed while the task ran'));
      await Promise.all(slots.map((slot) => slot.worker.terminate()));
    },
  };
}

/**
 * Called once at the top level of a worker module: answers each task with `handler(task, workerData)`.
 * `transferOf` names the result's buffers to move back instead of copying (large images, masks).
 */
export function serveWorkerTasks<TTask, TResult>(
  handler: (task: TTask, data: unknown) => TResult | Promise<TResult>,
  transferOf?: (result: TResult) => Transferable[],
): void {
  if (isMainThread || parentPort === null)
    throw new Error('serveWorkerTasks must run inside a worker thread');
  const port = parentPort;
  // One task at a time, in the order they came (a pool may post several ahead: `depth`), even when
  // the handler awaits.
  let previous: Promise<void> = Promise.resolve();
  const serve = async (message: TaskMessage) => {
    try {
      const result = await handler(message.task as TTask, workerData);
      const reply: ResultMessage = { id: message.id, ok: true, result };
      port.postMessage(reply, transferOf?.(result) ?? []);
    } catch (error) {
      const reply: ResultMessage = { id: message.id, ok: false, error: serializeError(error) };
      port.postMessage(reply);
    }
  };
  port.on('message', (message: TaskMessage) => {
    previous = previous.then(() => serve(message));
  });
  port.postMessage({ ready: true } satisfies ResultMessage);
}

/**
 * `fn` over `items` with at most `window` calls in flight, results yielded in input order: memory
 * stays bounded whatever the input's length (an endless source included). Items are pulled only as
 * the window frees. A rejection ends the map with that error once the calls in flight settle.
 */
export async function* mapInOrder<T, R>(
  items: Iterable<T> | AsyncIterable<T>,
  window: number,
  fn: (item: T, index: number) => Promise<R>,
): AsyncGenerator<R> {
  if (!Number.isInteger(window) || window < 1)
    throw new Error(`window must be a positive integer, got ${window}`);
  const iterator =
    Symbol.asyncIterator in items
      ? (items as AsyncIterable<T>)[Symbol.asyncIterator]()
      : (items as Iterable<T>)[Symbol.iterator]();
  const pending: Promise<R>[] = [];
  let index = 0;
  let done = false;
  try {
    while (true) {
      while (!done && pending.length < window) {
        const next = await iterator.next();
        if (next.done) {
          done = true;
          break;
        }
        const promise = fn(next.value, index++);
        // Handled when awaited in order; this keeps a later rejection from being "unhandled" meanwhile.
        promise.catch(() => {});
        pending.push(promise);
      }
      const head = pending.shift();
      if (head === undefined) return;
      yield await head;
    }
  } finally {
    await Promise.allSettled(pending);
    if (!done) await iterator.return?.();
  }
}
