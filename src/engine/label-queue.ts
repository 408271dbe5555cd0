/**
 * `braggflow label` across processes and machines: shard jobs (label-job.ts) on a BullMQ queue in
 * Redis. The coordinator (`label --queue redis://HOST:PORT`) adds every shard job and waits for each;
 * any number of `braggflow label-worker --queue redis://HOST:PORT` processes, on any machine that sees
 * the image files and the output folder, take jobs one at a time.
 *
 * - Retries: a job that throws is retried (`attempts`, a second apart); one that still fails is
 *   recorded in the manifest as failed, the run goes on, and the coordinator ends with a report of
 *   the failed shards. Running the coordinator again retries them.
 * - A worker that dies (SIGKILL, a lost machine) holds its job's lock no longer than `lockMs`; then
 *   another worker's stalled-job check puts the job back and it runs again. Its shard file is
 *   written again from scratch (each attempt writes its own `.part` file and renames it when whole),
 *   so every frame is in exactly one shard, once.
 * - Job ids are `LABEL_KEY-shard-N`, LABEL_KEY a hash of the output folder, the stream and the
 *   choices: a coordinator restarted on the same run finds the jobs it added (finished ones answer at
 *   once); another run on the same queue never collides.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import type { LabelExecutor } from './label.js';
import { type LabelJob, runLabelJob, type ShardRecord, shardFileName } from './label-job.js';

/** The queue's name in Redis, for a run name (`--run`). */
export function labelQueueName(run: string): string {
  return `braggflow-label-${run}`;
}

interface RedisConnection {
  host: string;
  port: number;
  maxRetriesPerRequest: null;
}

/** `redis://HOST:PORT` as BullMQ's connection options (a one-line error otherwise). */
export function redisConnection(url: string, flag = '--queue'): RedisConnection {
  const match = /^redis:\/\/([^:/]+)(?::(\d+))?\/?$/.exec(url);
  if (match === null) throw new UserError(`must be redis://HOST:PORT, got '${url}'`, undefined, flag);
  // BullMQ's blocking commands need maxRetriesPerRequest null: they wait through reconnections.
  return {
    host: match[1],
    port: match[2] === undefined ? 6379 : Number(match[2]),
    maxRetriesPerRequest: null,
  };
}

export interface QueueExecutorOptions {
  url: string;
  run: string;
  /** Tries per job before it counts as failed (default 3). */
  attempts?: number;
  /** Jobs added ahead of their results (default 64): the queue is the buffer the workers draw from. */
  window?: number;
}

/** The coordinator's side: adds shard jobs, waits for their records. */
export async function queueExecutor(options: QueueExecutorOptions): Promise<LabelExecutor> {
  const { Queue, QueueEvents } = await import('bullmq');
  const connection = redisConnection(options.url);
  const name = labelQueueName(options.run);
  const queue = new Queue<LabelJob, ShardRecord>(name, { connection });
  const events = new QueueEvents(name, { connection });
  queue.on('error', () => {});
  // Each job waited for listens on the queue: as many listeners as jobs in flight.
  queue.setMaxListeners(0);
  events.on('error', () => {});
  await events.waitUntilReady();
  const attempts = options.attempts ?? 3;
  const executor: LabelExecutor = {
    concurrency: options.window ?? 64,
    recordsFailures: true,
    async run(job) {
      const jobId = `${job.key}-shard-${job.index}`;
      const add = () =>
        queue.add('shard', job, {
          jobId,
          attempts,
          backoff: { type: 'fixed', delay: 1000 },
          removeOnComplete: false,
          removeOnFail: false,
        });
      let existing = await queue.getJob(jobId);
      // A job that failed for good in an earlier run is retried, with its attempts afresh.
      if (existing !== undefined && (await existing.isFailed()))
        await existing.retry('failed', { resetAttemptsMade: true });
      // Done in an earlier run whose shard is gone (deleted, or cleaned up): run it again.
      if (
        existing !== undefined &&
        (await existing.isCompleted()) &&
        !existsSync(join(job.outDir, shardFileName(job.index)))
      ) {
        await existing.remove();
        existing = undefined;
      }
      const added = existing ?? (await add());
      try {
        return (await added.waitUntilFinished(events)) as ShardRecord;
      } catch (error) {
        throw new Error((error as Error).message.split('\n')[0]);
      }
    },
    async close() {
      await events.close();
      await queue.close();
    },
  };
  return executor;
}

export interface QueueWorkerOptions {
  url: string;
  run: string;
  /** Jobs at once in this process (default 1: a shard uses one core). */
  concurrency?: number;
  /** A dead worker's job goes back to the queue after this long (ms, default 30000). */
  lockMs?: number;
  /** Exit after this long with no job (ms); default: run until closed. */
  idleExitMs?: number;
  onJob?: (
    event: 'started' | 'completed' | 'failed',
    job: { id?: string; index: number; reason?: string },
  ) => void;
}

/** A worker process's side: takes shard jobs and runs them until closed (or idle for idleExitMs). */
export async function runQueueWorker(
  options: QueueWorkerOptions,
): Promise<{ done: Promise<void>; close(): Promise<void> }> {
  const { Worker } = await import('bullmq');
  const connection = redisConnection(options.url);
  const lockMs = options.lockMs ?? 30_000;
  let idleTimer: NodeJS.Timeout | undefined;
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const worker = new Worker<LabelJob, ShardRecord>(
    labelQueueName(options.run),
    async (job) => {
      if (idleTimer !== undefined) clearTimeout(idleTimer);
      options.onJob?.('started', { id: job.id, index: job.data.index });
      return runLabelJob(job.data);
    },
    {
      connection,
      concurrency: options.concurrency ?? 1,
      lockDuration: lockMs,
      stalledInterval: Math.max(1000, Math.floor(lockMs / 2)),
      maxStalledCount: 5,
    },
  );
  worker.on('error', () => {});
  const armIdle = () => {
    if (options.idleExitMs === undefined) return;
    if (idleTimer !== undefined) clearTimeout(idleTimer);
    idleTimer = setTimeout(() => void close(), options.idleExitMs);
  };
  worker.on('completed', (job) => {
    options.onJob?.('completed', { id: job.id, index: job.data.index });
    armIdle();
  });
  worker.on('failed', (job, error) => {
    options.onJob?.('failed', { id: job?.id, index: job?.data.index ?? -1, reason: error.message });
    armIdle();
  });
  await worker.waitUntilReady();
  armIdle();
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      if (idleTimer !== undefined) clearTimeout(idleTimer);
      await worker.close();
      finish();
    })();
    return closing;
  };
  return { done, close };
}
