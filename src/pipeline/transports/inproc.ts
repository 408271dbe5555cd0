/**
 * The embedded transport: a bounded first-in-first-out channel between a source and the processors
 * in one process. `send` waits while the channel is full, so a fast source is held back by slow
 * processing (backpressure) instead of piling frames up in memory; nothing is ever dropped. Frames
 * pass by reference: no copy, no serialisation.
 */

export interface Channel<T> extends AsyncIterable<T> {
  /** Resolves once the item is queued; waits while `capacity` items are queued. */
  send(item: T): Promise<void>;
  /** No more items: receivers finish once the queue drains; senders waiting for room throw. */
  close(): void;
  readonly closed: boolean;
  /** Items queued now. */
  readonly depth: number;
  /** Most items ever queued at once (a bounded channel never exceeds its capacity). */
  readonly maxDepth: number;
  readonly capacity: number;
}

export function createChannel<T>(capacity: number): Channel<T> {
  if (!Number.isInteger(capacity) || capacity < 1)
    throw new Error(`channel capacity must be a positive integer, got ${capacity}`);
  const queue: T[] = [];
  // Senders waiting for room, receivers waiting for an item (each a resolve function).
  const senders: (() => void)[] = [];
  const receivers: ((result: IteratorResult<T>) => void)[] = [];
  let closed = false;
  let maxDepth = 0;
  const channel: Channel<T> = {
    capacity,
    get depth() {
      return queue.length;
    },
    get maxDepth() {
      return maxDepth;
    },
    async send(item) {
      if (closed) throw new Error('send on a closed channel');
      const receiver = receivers.shift();
      if (receiver !== undefined) {
        receiver({ value: item, done: false });
        return;
      }
      while (queue.length >= capacity) {
        await new Promise<void>((resolve) => senders.push(resolve));
        if (closed) throw new Error('send on a closed channel');
      }
      queue.push(item);
      maxDepth = Math.max(maxDepth, queue.length);
    },
    get closed() {
      return closed;
    },
    close() {
      closed = true;
      for (const receiver of receivers.splice(0)) receiver({ value: undefined, done: true });
      for (const sender of senders.splice(0)) sender();
    },
    [Symbol.asyncIterator](): AsyncIterator<T> {
      return {
        next(): Promise<IteratorResult<T>> {
          if (queue.length > 0) {
            const item = queue.shift() as T;
            senders.shift()?.();
            return Promise.resolve({ value: item, done: false });
          }
          if (closed) return Promise.resolve({ value: undefined, done: true });
          return new Promise((resolve) => receivers.push(resolve));
        },
      };
    },
  };
  return channel;
}
