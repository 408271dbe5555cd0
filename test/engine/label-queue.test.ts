/**
 * `braggflow label` on a BullMQ job queue in a real redis-server: two worker processes, one killed
 * (SIGKILL) in the middle of a shard; and a shard that fails for good. Skipped where redis-server is
 * not installed (.ci/run installs it).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { defaultGeometryText } from '../../src/detector/default-geometry.js';
import { type LabelManifest, labelStream } from '../../src/engine/label.js';
import { openFrameReader, readPerFrameScalar } from '../../src/io/cxi-reader.js';
import { parseGeometry } from '../../src/io/geom.js';
import { runSimulation } from '../../src/simulate/run.js';
import { type CliProcess, spawnCli } from '../helpers.js';
import { type RedisServer, redisSkip, startRedis } from '../redis-server.js';

const work = mkdtempSync(join(tmpdir(), 'braggflow-label-queue-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Every shard's stream chunks, in shard order; each shard must read back. */
async function chunksOf(dir: string, manifest: LabelManifest): Promise<number[]> {
  const chunks: number[] = [];
  for (const shard of manifest.shards) {
    const path = join(dir, shard.file);
    const images = await openFrameReader(path);
    const labels = await openFrameReader(path, { dataPath: '/entry_1/truth_1/mask' });
    assert.equal(images.frameCount, shard.frames);
    assert.equal(labels.frameCount, shard.frames);
    for (let f = 0; f < shard.frames; f++) {
      images.readFrame(f);
      chunks.push(await readPerFrameScalar(path, '/entry_1/truth_1/streamChunk', f));
    }
    images.close();
    labels.close();
  }
  return chunks;
}

function worker(redis: RedisServer, run: string): CliProcess & { started: () => number } {
  const proc = spawnCli([
    'label-worker',
    '--queue',
    redis.url,
    '--run',
    run,
    '--lock-ms',
    '2000',
    '--idle-exit',
    '20',
  ]);
  let started = 0;
  proc.child.stderr?.on('data', (chunk: Buffer) => {
    started += (chunk.toString().match(/ started/g) ?? []).length;
  });
  return { ...proc, started: () => started };
}

describe('label on a job queue', redisSkip, () => {
  let redis: RedisServer;
  const dir = join(work, 'sim');
  const stream = join(dir, 'run.stream');
  before(async () => {
    redis = await startRedis();
    mkdirSync(dir, { recursive: true });
    await runSimulation({
      geometry: parseGeometry(defaultGeometryText),
      geometryText: defaultGeometryText,
      frames: 10,
      seed: 33,
      outPath: join(dir, 'run.cxi'),
      streamPath: stream,
      preset: 'lysozyme',
      hitRate: 1,
    });
  });
  after(async () => redis?.close());

  test('two workers, one killed mid-shard: every frame in exactly one shard, as a run on one thread', async () => {
    const inline = join(dir, 'inline');
    const reference = await labelStream({
      streamPath: stream,
      outDir: inline,
      choices: { shardFrames: 1, minMatched: 1 },
    });
    const out = join(dir, 'queued');
    const a = worker(redis, 'kill');
    const b = worker(redis, 'kill');
    const coordinator = spawnCli([
      'label',
      '--stream',
      stream,
      '--out',
      out,
      '--shard-frames',
      '1',
      '--min-matched',
      '1',
      '--queue',
      redis.url,
      '--run',
      'kill',
      '--json',
    ]);
    // Kill worker a as it starts its second shard.
    const deadline = Date.now() + 60_000;
    while (a.started() < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(a.started(), 2, 'worker a never started a second shard');
    a.child.kill('SIGKILL');
    const [result, killed] = await Promise.all([coordinator.done, a.done]);
    assert.equal(killed.signal, 'SIGKILL');
    assert.equal(result.code, 0, result.stderr);
    const manifest = JSON.parse(result.stdout) as LabelManifest;
    assert.equal(manifest.complete, true);
    assert.ok(b.started() >= 1);
    assert.deepEqual(await chunksOf(out, manifest), await chunksOf(inline, reference));
    assert.deepEqual(manifest.totals, reference.totals);
    // Whole shards only: the killed attempt's part file is gone.
    assert.deepEqual(readdirSync(out).sort(), readdirSync(inline).sort());
    // The output folder deleted, the same command again: the queue's finished jobs do not stand in
    // for shards that are gone; they are labelled again.
    rmSync(out, { recursive: true, force: true });
    const again = await spawnCli([
      'label',
      '--stream',
      stream,
      '--out',
      out,
      '--shard-frames',
      '1',
      '--min-matched',
      '1',
      '--queue',
      redis.url,
      '--run',
      'kill',
      '--json',
    ]).done;
    assert.equal(again.code, 0, again.stderr);
    const rerun = JSON.parse(again.stdout) as LabelManifest;
    assert.deepEqual(await chunksOf(out, rerun), await chunksOf(inline, reference));
    b.child.kill('SIGTERM');
    await b.done;
  });

  test('a shard that keeps failing is retried, reported, and the rest completes', async () => {
    // A chunk naming a frame the file does not have: its shard fails on every attempt.
    const text = readFileSync(stream, 'utf8');
    const lastChunk = text.slice(text.lastIndexOf('----- Begin chunk -----'));
    const broken = join(dir, 'broken.stream');
    writeFileSync(broken, text + lastChunk.replace(/^Event: \/\/\d+$/m, 'Event: //999'));
    const out = join(dir, 'broken');
    const w = worker(redis, 'fail');
    const result = await spawnCli([
      'label',
      '--stream',
      broken,
      '--out',
      out,
      '--shard-frames',
      '1',
      '--min-matched',
      '1',
      '--queue',
      redis.url,
      '--run',
      'fail',
      '--attempts',
      '2',
    ]).done;
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr.trim().split('\n').at(-1)!,
      /^braggflow: .*manifest\.json: 1 shard failed for good \(shard 10: .*frame 999 is out of range.*\); the manifest lists them; run again to retry them$/,
    );
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as LabelManifest;
    assert.equal(manifest.complete, false);
    assert.deepEqual(
      manifest.failed?.map((f) => f.index),
      [10],
    );
    assert.equal(manifest.shards.length, 10);
    w.child.kill('SIGTERM');
    const exited = await w.done;
    // Tried twice (attempts 2).
    assert.equal((exited.stderr.match(/shard 10 started/g) ?? []).length, 2, exited.stderr);
  });
});
