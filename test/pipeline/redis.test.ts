// The Redis transport against a real redis-server on loopback (test/redis-server.ts), with the
// faults a facility sees: a consumer killed, a producer faster than the consumers, a corrupt frame,
// Redis restarted, the sink killed. Counts are exact: every frame once in the output.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import type { Dataset } from 'h5wasm/node';
import { Redis } from 'ioredis';
import { computePixelMaps } from '../../src/detector/pixel-maps.js';
import { readPeakTable } from '../../src/io/cxi-peaks.js';
import { parseGeometry } from '../../src/io/geom.js';
import { openHdf5 } from '../../src/io/hdf5.js';
import { peakListFrom } from '../../src/peaks/peak-list.js';
import { parsePf8ParamsPartial, resolvePf8Params } from '../../src/peaks/pf8-params.js';
import { runPipeline, runPipelineRoles } from '../../src/pipeline/run.js';
import { ensureGroups, publishMeta, runKeys } from '../../src/pipeline/transports/redis.js';
import {
  decodeResultMessage,
  decodeSourceMessage,
  encodeResultMessage,
  encodeSourceMessage,
} from '../../src/pipeline/transports/redis-codec.js';
import { type CliProcess, spawnCli } from '../helpers.js';
import { type RedisServer, redisSkip, startRedis } from '../redis-server.js';
import { geometryText } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-redis-test-'));
const geom = join(dir, 'pipeline.geom');
writeFileSync(geom, geometryText);
const PF8 = resolvePf8Params(
  {},
  parsePf8ParamsPartial({ threshold: '20', 'min-snr': '5', 'min-pix-count': '1' }),
);
const PF8_FLAGS = ['--threshold', '20', '--min-snr', '5', '--min-pix-count', '1'];

let server: RedisServer | undefined;
let redis: Redis | undefined;
before(async () => {
  if ('skip' in redisSkip) return;
  server = await startRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: null });
  redis.on('error', () => {});
});
after(async () => {
  redis?.disconnect();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

// Every role a test starts is killed when the test ends, pass or fail: a leftover would keep
// retrying its Redis connection and hold the test file open.
const children: CliProcess[] = [];
function spawnTracked(args: string[]): CliProcess {
  const child = spawnCli(args);
  children.push(child);
  return child;
}
afterEach(() => {
  for (const { child } of children.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The source events of a finished run's rows, over every part OUT.lst names. */
async function listedEvents(out: string): Promise<number[]> {
  const lst = readFileSync(out.replace(/\.cxi$/, '.lst'), 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l !== '');
  const events: number[] = [];
  const cache = new Map<string, Int32Array>();
  for (const line of lst) {
    const [file, row] = line.split(' //');
    let column = cache.get(file);
    if (column === undefined) {
      const handle = await openHdf5(file);
      column = (handle.file.get('/entry_1/result_1/sourceEvent') as Dataset).value as Int32Array;
      handle.release();
      cache.set(file, column);
    }
    events.push(column[Number(row)]);
  }
  return events;
}

test('codec: frames keep their pixel type; results keep peaks; a corrupt frame says what is wrong', () => {
  const pixels = Uint16Array.from({ length: 12 }, (_, i) => 60000 + i);
  const frame = {
    kind: 'frame' as const,
    id: { source: 'sim:x', file: 'a.cxi', event: 7 },
    seq: 3,
    slabShape: [3, 4] as [number, number],
    pixels,
    photonEnergyEv: 9500,
    sentAtMs: 1,
  };
  const fields = encodeSourceMessage(frame).map((f) => (typeof f === 'string' ? Buffer.from(f) : f));
  assert.equal(fields[3].length, 24, 'uint16 travels as 2 bytes a pixel');
  const back = decodeSourceMessage(fields);
  assert.equal(back.kind, 'frame');
  if (back.kind === 'frame') {
    assert.ok(back.pixels instanceof Uint16Array);
    assert.deepEqual(Array.from(back.pixels), Array.from(pixels));
    assert.deepEqual(back.id, frame.id);
  }
  const corrupt = [...fields.slice(0, 3), Buffer.alloc(10)];
  const error = decodeSourceMessage(corrupt);
  assert.equal(error.kind, 'error');
  if (error.kind === 'error') {
    assert.deepEqual(error.id, frame.id);
    assert.match(error.reason, /corrupt frame: frame: 10 bytes of pixels, expected 24 \(12 uint16\)/);
  }
  assert.throws(() => decodeSourceMessage([Buffer.from('h'), Buffer.from('{nope')]), /header is not JSON/);
  const peaks = peakListFrom({ fs: [1.5, 2.5], ss: [3, 4], totalIntensity: [10, 20], maxValue: [5, 9] });
  const result = {
    ...frame,
    peaks,
    hit: true,
    doneAtMs: 2,
  };
  const decoded = decodeResultMessage(
    encodeResultMessage({ kind: 'result', result }).map((f) => (typeof f === 'string' ? Buffer.from(f) : f)),
  );
  assert.equal(decoded.kind, 'result');
  if (decoded.kind === 'result') {
    assert.deepEqual(Array.from(decoded.result.peaks.fs), [1.5, 2.5]);
    assert.deepEqual(Array.from(decoded.result.peaks.maxValue), [5, 9]);
    assert.equal(decoded.result.hit, true);
    assert.deepEqual(Array.from(decoded.result.pixels as Uint16Array), Array.from(pixels));
  }
});

test('redis, all roles in one process: the same hits as in-process', {
  ...redisSkip,
  timeout: 180_000,
}, async () => {
  const url = (server as RedisServer).url;
  const source = 'sim:photosystem?frames=8&hitRate=0.6&seed=3';
  const common = {
    source,
    geometryPath: geom,
    processor: { method: 'pf8' as const, finder: { method: 'pf8' as const, params: PF8 }, workers: 1 },
    minPeaks: 10,
  };
  const local = await runPipeline({ ...common, outPath: join(dir, 'local.cxi') });
  const remote = await runPipeline({
    ...common,
    outPath: join(dir, 'remote.cxi'),
    transport: url,
    run: 'same',
  });
  assert.equal(remote.frames, 8);
  assert.equal(remote.lost, 0);
  assert.equal(remote.hits, local.hits);
  assert.ok(remote.hits >= 2);
  assert.deepEqual(await listedEvents(join(dir, 'remote.cxi')), await listedEvents(join(dir, 'local.cxi')));
  // The streams are empty afterwards: acknowledged entries are deleted, not trimmed.
  const keys = runKeys('same');
  assert.equal(await (redis as Redis).xlen(keys.frames), 0);
  assert.equal(await (redis as Redis).xlen(keys.results), 0);
});

test('a corrupt frame on the stream is a dead letter with its reason; the run goes on', {
  ...redisSkip,
  timeout: 180_000,
}, async () => {
  const url = (server as RedisServer).url;
  const keys = runKeys('corrupt');
  const r = redis as Redis;
  const maps = computePixelMaps(parseGeometry(geometryText, 'pipeline.geom'));
  await ensureGroups(r, keys);
  await publishMeta(r, keys, {
    geometryText,
    geometryName: 'pipeline.geom',
    slabShape: [maps.ssSize, maps.fsSize],
    mask: new Uint8Array(maps.ssSize * maps.fsSize).fill(1),
    source: 'test',
  });
  const good = new Float32Array(maps.ssSize * maps.fsSize).fill(3);
  const frame = (event: number, pixels: Float32Array) =>
    encodeSourceMessage({
      kind: 'frame',
      id: { source: 'test', file: '', event },
      seq: event,
      slabShape: [maps.ssSize, maps.fsSize],
      pixels,
      sentAtMs: Date.now(),
    });
  const bad = frame(0, good);
  bad[3] = Buffer.alloc(100);
  await r.xaddBuffer(keys.frames, '*', ...bad);
  await r.xaddBuffer(keys.frames, '*', ...frame(1, good));
  await r.xaddBuffer(keys.frames, '*', ...encodeSourceMessage({ kind: 'end', source: 'test', frames: 2 }));
  const out = join(dir, 'corrupt.cxi');
  const roles = { transport: url, run: 'corrupt', minPeaks: 0, allFrames: true, outPath: out };
  const [consumer, sink] = await Promise.all([
    runPipelineRoles({
      ...roles,
      role: 'consumer',
      processor: { method: 'pf8', finder: { method: 'pf8', params: PF8 }, workers: 1 },
    }),
    runPipelineRoles({ ...roles, role: 'sink' }),
  ]);
  assert.equal(consumer.consumer?.frames, 1);
  const summary = sink.summary;
  assert.ok(summary !== undefined);
  assert.equal(summary.sourceFrames, 2);
  assert.equal(summary.frames, 1);
  assert.equal(summary.rows, 1);
  assert.equal(summary.lost, 0);
  assert.equal(summary.deadLetters.length, 1);
  assert.equal(summary.deadLetters[0].event, 0);
  assert.match(
    summary.deadLetters[0].reason,
    /corrupt frame: frame: 100 bytes of pixels, expected 294912 \(73728 float32\)/,
  );
});

test('a producer faster than its consumer: the stream stays within the backlog bound', {
  ...redisSkip,
  timeout: 180_000,
}, async () => {
  const url = (server as RedisServer).url;
  const keys = runKeys('fast');
  const r = redis as Redis;
  let most = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      most = Math.max(most, Number(await r.xlen(keys.frames)));
      await sleep(5);
    }
  })();
  const reports = await runPipelineRoles({
    source: 'sim:photosystem?frames=24&hitRate=0.5&seed=4',
    geometryPath: geom,
    // The model is the slow side here: frames are made faster than it serves them.
    processor: {
      method: 'peaknet',
      modelPath: join('models', 'peaknet-default.onnx'),
      workers: 1,
      batch: 2,
    },
    minPeaks: 5,
    outPath: join(dir, 'fast.cxi'),
    transport: url,
    run: 'fast',
    maxBacklog: 3,
  });
  sampling = false;
  await sampler;
  assert.equal(reports.summary?.frames, 24);
  assert.equal(reports.summary?.lost, 0);
  assert.ok((reports.producer?.waitedS ?? 0) > 0, 'the producer waited for the consumer');
  // Frames waiting plus in hand, and the end message: never more than the bound allows.
  assert.ok(most <= 3 + 1, `stream length reached ${most}`);
  assert.ok((reports.producer?.maxBacklog ?? 99) <= 3);
});

test('two consumers, one killed (SIGKILL) holding frames: the other takes them over; every frame once', {
  ...redisSkip,
  timeout: 180_000,
}, async () => {
  const url = (server as RedisServer).url;
  const run = 'killed-consumer';
  const keys = runKeys(run);
  const r = redis as Redis;
  const out = join(dir, 'killed.cxi');
  const base = ['run', '--transport', url, '--run', run];
  const consumerArgs = [
    ...base,
    '--role',
    'consumer',
    '--method',
    'peaknet',
    '--min-peaks',
    '5',
    '--claim-idle-ms',
    '400',
  ];
  const sink = spawnTracked([...base, '--role', 'sink', '--out', out, '--json']);
  const a = spawnTracked([...consumerArgs, '--consumer', 'A']);
  const b = spawnTracked([...consumerArgs, '--consumer', 'B']);
  const producer = spawnTracked([
    ...base,
    '--role',
    'producer',
    '--geom',
    geom,
    '--rate',
    '10',
    '--source',
    'sim:photosystem?frames=40&hitRate=0.5&seed=6',
  ]);
  // Freeze A, and kill it once it is caught holding frames it has not acknowledged (tried while
  // the producer sends: 40 frames at 10 Hz).
  let killed = false;
  while (!killed && producer.child.exitCode === null && a.child.exitCode === null) {
    await sleep(10);
    a.child.kill('SIGSTOP');
    const pending = (await r
      .xpending(keys.frames, 'processors', '-', '+', 10, 'A')
      .catch(() => [])) as unknown[];
    if (pending.length > 0) {
      a.child.kill('SIGKILL');
      killed = true;
    } else a.child.kill('SIGCONT');
  }
  assert.ok(killed, 'consumer A was never caught holding a frame');
  const [sinkDone, , bDone] = await Promise.all([sink.done, producer.done, b.done]);
  assert.equal(sinkDone.code, 0, sinkDone.stderr);
  assert.equal(bDone.code, 0, bDone.stderr);
  const summary = JSON.parse(sinkDone.stdout);
  assert.equal(summary.sourceFrames, 40);
  assert.equal(summary.frames, 40);
  assert.equal(summary.lost, 0);
  assert.match(bDone.stdout, /consumer B: \d+ frames processed, [1-9]\d* taken over from others/);
  const events = await listedEvents(out);
  assert.equal(events.length, summary.hits);
  assert.equal(new Set(events).size, events.length, 'no frame twice');
});

test('Redis restarted mid-run (append-only): the run pauses and finishes with every frame', {
  ...redisSkip,
  timeout: 180_000,
}, async () => {
  const s = server as RedisServer;
  const out = join(dir, 'restart.cxi');
  const cli = spawnTracked([
    'run',
    '--transport',
    s.url,
    '--run',
    'restart',
    '--geom',
    geom,
    '--out',
    out,
    '--min-peaks',
    '10',
    '--json',
    '--rate',
    '10',
    '--source',
    'sim:photosystem?frames=20&hitRate=0.5&seed=8',
    ...PF8_FLAGS,
  ]);
  const keys = runKeys('restart');
  // Restart once frames are flowing.
  while (Number(await (redis as Redis).hget(keys.sink, 'accounted').catch(() => 0)) < 3) await sleep(50);
  await s.stop();
  await sleep(500);
  await s.start();
  const done = await cli.done;
  assert.equal(done.code, 0, done.stderr);
  const summary = JSON.parse(done.stdout);
  assert.equal(summary.frames, 20);
  assert.equal(summary.lost, 0);
  const events = await listedEvents(out);
  assert.equal(events.length, summary.hits);
  assert.equal(new Set(events).size, events.length);
});

test('the sink killed mid-run: its CXI reads back; restarted with the run id, it resumes without duplicates', {
  ...redisSkip,
  timeout: 180_000,
}, async () => {
  const url = (server as RedisServer).url;
  const run = 'killed-sink';
  const keys = runKeys(run);
  const out = join(dir, 'sink.cxi');
  const base = ['run', '--transport', url, '--run', run];
  const sinkArgs = [...base, '--role', 'sink', '--out', out, '--min-peaks', '10', '--json'];
  const consumer = spawnTracked([...base, '--role', 'consumer', '--min-peaks', '10', ...PF8_FLAGS]);
  const producer = spawnTracked([
    ...base,
    '--role',
    'producer',
    '--geom',
    geom,
    '--rate',
    '12',
    '--source',
    'sim:photosystem?frames=30&hitRate=0.6&seed=10',
  ]);
  const first = spawnTracked(sinkArgs);
  while (Number(await (redis as Redis).hget(keys.sink, 'rows').catch(() => 0)) < 3) await sleep(20);
  first.child.kill('SIGKILL');
  await first.done;
  // What the killed sink left reads back, at least up to what it had acknowledged.
  const acknowledged = Number(await (redis as Redis).hget(keys.sink, 'partRows:1'));
  const left = await readPeakTable(out);
  assert.ok(left.length >= acknowledged, `${left.length} rows on disk, ${acknowledged} acknowledged`);
  // The writer's promise, checked with Debian's h5py where it is installed: the file a SIGKILL
  // left reads up to its last flush.
  const python = spawnSync('/usr/bin/python3', ['-c', 'import h5py'], { encoding: 'utf8' });
  if (python.status === 0) {
    const check = spawnSync(
      '/usr/bin/python3',
      [
        '-c',
        "import sys, h5py\nf = h5py.File(sys.argv[1], 'r')\nprint(len(f['/entry_1/result_1/nPeaks']), f['/entry_1/data_1/data'].shape[0])",
        out,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(check.status, 0, check.stderr);
    const [rows, frames] = check.stdout.trim().split(' ').map(Number);
    assert.ok(rows >= acknowledged && frames >= acknowledged, check.stdout);
  }
  const second = spawnTracked(sinkArgs);
  const [done] = await Promise.all([second.done, consumer.done, producer.done]);
  assert.equal(done.code, 0, done.stderr);
  const summary = JSON.parse(done.stdout);
  assert.equal(summary.sourceFrames, 30);
  assert.equal(summary.frames, 30);
  assert.equal(summary.lost, 0);
  const events = await listedEvents(out);
  assert.equal(events.length, summary.hits);
  assert.equal(new Set(events).size, events.length, 'no hit twice across the parts');
  assert.match(readFileSync(out.replace(/\.cxi$/, '.lst'), 'utf8'), /sink-part2\.cxi \/\/0/);
});
