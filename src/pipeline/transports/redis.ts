/**
 * The pipeline across processes and machines on Redis Streams (ioredis). A run `ID` has:
 *
 *   braggflow:ID:meta      hash: geometry text, good-pixel mask, slab shape, source (the producer's)
 *   braggflow:ID:frames    stream, consumer group `processors`: frames, dead letters, the end
 *   braggflow:ID:results   stream, consumer group `sinks`: results, dead letters, the end
 *   braggflow:ID:done      set by the sink when every frame is accounted for: consumers stop
 *
 * Roles, each its own process on any machine (or all three in one with `--role all`):
 * - producer: the source's messages onto the frame stream. Backpressure from the group itself:
 *   before each frame it waits while the frames not yet read plus those read but not acknowledged
 *   (the group's lag + pending) reach `maxBacklog`. Never MAXLEN trimming, which drops frames no
 *   consumer has read.
 * - consumer: XREADGROUP frames, process, XADD the result, then XACK and XDEL the frame: a consumer
 *   that dies between the two leaves the frame pending, and a live consumer takes it over with
 *   XAUTOCLAIM once it has been idle `claimIdleMs`; the sink drops the duplicate result by frame id.
 * - sink: XREADGROUP results (first its own pending ones, after a restart), write them, flush the
 *   CXI, then in one MULTI: XACK and XDEL them, add their frame keys to `seen` and store the counts in
 *   `sink`. A result is acknowledged only once it is on disk, and what is acknowledged is exactly
 *   what the stored state says: a sink killed at any point and started again with the same run id
 *   goes on from there (a new part file beside the first, see sinks/cxi.ts) without duplicates.
 *
 * ioredis reconnects by itself and retries commands (`maxRetriesPerRequest: null`), so a Redis
 * restart (with `appendonly yes`, as production runs it) pauses the run instead of ending it.
 */
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import { UserError } from '../../util/errors.js';
import { mapInOrder } from '../../util/worker-pool.js';
import { bytesOf } from '../pixels.js';
import { processFrame } from '../processors/process-frame.js';
import type { Processor, Source } from '../protocol.js';
import type { ResultRouter, RouterState } from '../results.js';
import {
  decodeResultMessage,
  decodeSourceMessage,
  encodeResultMessage,
  encodeSourceMessage,
  type ResultMessage,
} from './redis-codec.js';

export const FRAME_GROUP = 'processors';
export const RESULT_GROUP = 'sinks';

export interface RunKeys {
  meta: string;
  frames: string;
  results: string;
  done: string;
  /** The sink's progress (hash) and the frame keys it has accounted for (set). */
  sink: string;
  seen: string;
}

export function runKeys(run: string): RunKeys {
  if (!/^[A-Za-z0-9_.:-]{1,200}$/.test(run))
    throw new UserError(`must be 1-200 letters, digits or _.:- , got '${run}'`, undefined, '--run');
  const base = `braggflow:${run}`;
  return {
    meta: `${base}:meta`,
    frames: `${base}:frames`,
    results: `${base}:results`,
    done: `${base}:done`,
    sink: `${base}:sink`,
    seen: `${base}:seen`,
  };
}

/** What consumers and the sink need from the producer's side. */
export interface RunMeta {
  geometryText: string;
  geometryName: string;
  slabShape: [number, number];
  /** Good pixels (nonzero), slab-sized. */
  mask: Uint8Array;
  source: string;
}

/** A connection that rides out Redis restarts (commands wait and retry). */
export function connectRedis(url: string): Redis {
  if (!/^redis:\/\//.test(url))
    throw new UserError(`must be redis://HOST:PORT, got '${url}'`, undefined, '--transport');
  const redis = new Redis(url, {
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(50 * times, 1000),
    lazyConnect: false,
  });
  // Connection errors are retried; keep them from surfacing as unhandled 'error' events.
  redis.on('error', () => {});
  return redis;
}

async function ensureGroup(redis: Redis, stream: string, group: string): Promise<void> {
  try {
    // From the stream's start: a group created after the producer began still sees every frame.
    await redis.xgroup('CREATE', stream, group, '0', 'MKSTREAM');
  } catch (error) {
    if (!String((error as Error).message).includes('BUSYGROUP')) throw error;
  }
}

export async function ensureGroups(redis: Redis, keys: RunKeys): Promise<void> {
  await ensureGroup(redis, keys.frames, FRAME_GROUP);
  await ensureGroup(redis, keys.results, RESULT_GROUP);
}

export async function publishMeta(redis: Redis, keys: RunKeys, meta: RunMeta): Promise<void> {
  await redis.hset(keys.meta, {
    geometryText: meta.geometryText,
    geometryName: meta.geometryName,
    slabShape: JSON.stringify(meta.slabShape),
    mask: bytesOf(meta.mask),
    source: meta.source,
  });
}

/** The run's meta, waiting for the producer to publish it (up to `timeoutMs`). */
export async function readMeta(redis: Redis, keys: RunKeys, timeoutMs = 60_000): Promise<RunMeta> {
  const until = Date.now() + timeoutMs;
  while (true) {
    const fields = await redis.hgetallBuffer(keys.meta);
    if (fields.geometryText !== undefined) {
      const mask = new Uint8Array(fields.mask.length);
      mask.set(fields.mask);
      return {
        geometryText: fields.geometryText.toString(),
        geometryName: fields.geometryName.toString(),
        slabShape: JSON.parse(fields.slabShape.toString()),
        mask,
        source: fields.source.toString(),
      };
    }
    if (Date.now() > until)
      throw new UserError(
        `no producer has started run ${keys.meta.split(':')[1]} within ${timeoutMs / 1000} s`,
        undefined,
        '--run',
      );
    await sleep(200);
  }
}

/** A MULTI's EXEC, failing on the first command that failed (EXEC reports them per command). */
async function execChecked(transaction: ReturnType<Redis['multi']>): Promise<void> {
  const replies = await transaction.exec();
  for (const [error] of replies ?? []) if (error) throw error;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Frames of the group not yet delivered (lag) plus delivered and not acknowledged (pending). */
export async function groupBacklog(redis: Redis, stream: string, group: string): Promise<number> {
  const groups = (await redis.xinfo('GROUPS', stream)) as unknown[][];
  for (const entry of groups) {
    const info = new Map<string, unknown>();
    for (let i = 0; i + 1 < entry.length; i += 2) info.set(String(entry[i]), entry[i + 1]);
    if (info.get('name') !== group) continue;
    const pending = Number(info.get('pending') ?? 0);
    const lag = info.get('lag');
    // Redis 7 reports lag (null when it cannot tell): then count the stream's entries, an upper bound.
    const unread =
      lag === null || lag === undefined ? Number(await redis.xlen(stream)) - pending : Number(lag);
    return Math.max(0, unread) + pending;
  }
  return 0;
}

export interface ProducerReport {
  frames: number;
  /** Largest backlog the producer saw before sending a frame. */
  maxBacklog: number;
  /** Time spent waiting for consumers, seconds. */
  waitedS: number;
}

export async function produce(
  redis: Redis,
  keys: RunKeys,
  source: Source,
  options: { maxBacklog?: number } = {},
): Promise<ProducerReport> {
  const limit = Math.max(1, options.maxBacklog ?? 32);
  let frames = 0;
  let maxBacklog = 0;
  let waited = 0;
  for await (const message of source.messages()) {
    if (message.kind === 'frame') {
      let backlog = await groupBacklog(redis, keys.frames, FRAME_GROUP);
      maxBacklog = Math.max(maxBacklog, backlog);
      const start = performance.now();
      while (backlog >= limit) {
        await sleep(5);
        backlog = await groupBacklog(redis, keys.frames, FRAME_GROUP);
      }
      waited += performance.now() - start;
      frames++;
    }
    await redis.xaddBuffer(keys.frames, '*', ...encodeSourceMessage(message));
  }
  return { frames, maxBacklog, waitedS: waited / 1000 };
}

type Entry = [id: Buffer, fields: Buffer[] | null];

function entriesOf(reply: unknown): Entry[] {
  if (reply === null || reply === undefined) return [];
  return (reply as [Buffer, Entry[]][]).flatMap(([, entries]) => entries);
}

export interface ConsumerOptions {
  name?: string;
  /** Take over frames another consumer has held this long without acknowledging (default 5000). */
  claimIdleMs?: number;
  /** Carry every frame's pixels to the sink, not only hits' (`--all-frames`). */
  allFrames?: boolean;
  /** Stop (after the frames in hand) when this turns true. */
  stopped?: () => boolean;
}

export interface ConsumerReport {
  name: string;
  frames: number;
  claimed: number;
}

export async function consume(
  redis: Redis,
  keys: RunKeys,
  processor: Processor,
  options: ConsumerOptions = {},
): Promise<ConsumerReport> {
  const name = options.name ?? `${hostname()}-${process.pid}`;
  const claimIdleMs = options.claimIdleMs ?? 5000;
  const batch = Math.max(1, processor.concurrency);
  let frames = 0;
  let claimed = 0;
  let lastClaim = 0;
  const handle = async ([id, raw]: Entry): Promise<void> => {
    // A deleted entry claimed by XAUTOCLAIM arrives without fields: just acknowledge it.
    let out: ResultMessage | undefined;
    if (raw !== null) {
      let message: ReturnType<typeof decodeSourceMessage> | undefined;
      try {
        message = decodeSourceMessage(raw);
      } catch (error) {
        // No usable id: keep the entry's own id so it is accounted as a dead letter all the same.
        message = {
          kind: 'error',
          id: { source: 'redis', file: keys.frames, event: -1 },
          seq: -1,
          reason: `unreadable entry ${id.toString()}: ${(error as Error).message}`,
        };
      }
      if (message.kind === 'frame') {
        const processed = await processFrame(processor, message);
        if ('kind' in processed) out = processed;
        else {
          if (!processed.hit && !options.allFrames) processed.pixels = undefined;
          out = { kind: 'result', result: processed };
        }
        frames++;
      } else out = message;
      await redis.xaddBuffer(keys.results, '*', ...encodeResultMessage(out));
    }
    await execChecked(redis.multi().xack(keys.frames, FRAME_GROUP, id).xdel(keys.frames, id));
  };
  while (!(options.stopped?.() ?? false)) {
    let entries: Entry[] = [];
    if (Date.now() - lastClaim > Math.min(1000, claimIdleMs)) {
      lastClaim = Date.now();
      const reply = (await redis.callBuffer(
        'XAUTOCLAIM',
        keys.frames,
        FRAME_GROUP,
        name,
        String(claimIdleMs),
        '0-0',
        'COUNT',
        String(batch),
      )) as unknown[];
      entries = (reply[1] as Entry[]) ?? [];
      claimed += entries.length;
    }
    if (entries.length === 0) {
      const reply = await redis.xreadgroupBuffer(
        'GROUP',
        FRAME_GROUP,
        name,
        'COUNT',
        batch,
        'BLOCK',
        250,
        'STREAMS',
        keys.frames,
        '>',
      );
      entries = entriesOf(reply);
    }
    if (entries.length === 0) {
      if ((await redis.exists(keys.done)) === 1) break;
      continue;
    }
    for await (const _ of mapInOrder(entries, batch, handle));
  }
  return { name, frames, claimed };
}

/** What a killed sink left: its accounted frame keys and counts (undefined: a fresh run). */
export async function loadSinkState(
  redis: Redis,
  keys: RunKeys,
): Promise<{ seen: string[]; state: RouterState; counts: Record<string, number> } | undefined> {
  const hash = await redis.hgetall(keys.sink);
  if (Object.keys(hash).length === 0) return undefined;
  const counts = Object.fromEntries(Object.entries(hash).map(([k, v]) => [k, Number(v)]));
  return {
    seen: await redis.smembers(keys.seen),
    state: {
      accounted: counts.accounted ?? 0,
      ends: counts.ends ?? 0,
      sourceFrames: counts.sourceFrames ?? 0,
      deadLetters: counts.deadLetters ?? 0,
      duplicates: counts.duplicates ?? 0,
      repeats: counts.repeats ?? 0,
    },
    counts,
  };
}

export interface SinkLoopOptions {
  /** Results written since the last flush are acknowledged after it; the sink flushes every batch. */
  flush: () => void;
  /** Counts stored with each acknowledgement besides the router's (hits, peaks, rows...). */
  counts?: () => Record<string, number>;
  stopped?: () => boolean;
  /** Results read per batch (default 16). */
  batch?: number;
}

/** The sink's loop: results into the router (sinks, collector) until every frame is accounted for. */
export async function drainResults(
  redis: Redis,
  keys: RunKeys,
  router: ResultRouter,
  options: SinkLoopOptions,
): Promise<void> {
  const name = 'sink';
  const count = options.batch ?? 16;
  // After a restart, first what this sink read but never acknowledged ('0'), then new results ('>').
  let cursor = '0';
  while (!router.complete && !(options.stopped?.() ?? false)) {
    const reply = await redis.xreadgroupBuffer(
      'GROUP',
      RESULT_GROUP,
      name,
      'COUNT',
      count,
      'BLOCK',
      250,
      'STREAMS',
      keys.results,
      cursor,
    );
    const entries = entriesOf(reply);
    if (cursor === '0' && entries.length === 0) {
      cursor = '>';
      continue;
    }
    if (entries.length === 0) continue;
    for (const [, raw] of entries) {
      if (raw === null) continue;
      let message: ResultMessage;
      try {
        message = decodeResultMessage(raw);
      } catch {
        continue; // not ours to account: a foreign entry on the results stream
      }
      if (message.kind === 'result') await router.result(message.result);
      else if (message.kind === 'error') await router.deadLetter(message);
      else router.end(message);
    }
    options.flush();
    const ids = entries.map(([id]) => id);
    const accountedKeys = router.takeNewKeys();
    const transaction = redis
      .multi()
      .xack(keys.results, RESULT_GROUP, ...ids)
      .xdel(keys.results, ...ids);
    if (accountedKeys.length > 0) transaction.sadd(keys.seen, ...accountedKeys);
    transaction.hset(keys.sink, { ...options.counts?.(), ...router.state() });
    await execChecked(transaction);
  }
  if (router.complete) await redis.set(keys.done, '1');
}
