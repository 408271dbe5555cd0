import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Dataset } from 'h5wasm/node';
import { computePixelMaps } from '../../src/detector/pixel-maps.js';
import { readPeakTable } from '../../src/io/cxi-peaks.js';
import { openFrameReader } from '../../src/io/cxi-reader.js';
import { parseGeometry, readGeometry } from '../../src/io/geom.js';
import { geometryForCxi } from '../../src/io/geom-cxi.js';
import { openHdf5 } from '../../src/io/hdf5.js';
import { createPeakList, type PeakList } from '../../src/peaks/peak-list.js';
import { parsePf8ParamsPartial, resolvePf8Params } from '../../src/peaks/pf8-params.js';
import { createCollector } from '../../src/pipeline/collector.js';
import { createFramePool } from '../../src/pipeline/pixels.js';
import { createResultRouter } from '../../src/pipeline/results.js';
import { runPipeline } from '../../src/pipeline/run.js';
import { parseSourceSpec, sourceFilePath } from '../../src/pipeline/sources/index.js';
import { decodeZmqFrame } from '../../src/pipeline/sources/zmq.js';
import { createChannel } from '../../src/pipeline/transports/inproc.js';
import { haveShared, runCli, sharedPath, spawnCli } from '../helpers.js';
import { freePort } from '../redis-server.js';
import { geometryText } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-pipeline-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const geom = join(dir, 'pipeline.geom');
writeFileSync(geom, geometryText);
// pf8 set for the simulator's ADU here (its defaults are for CSPAD's); misses then show ~4 peaks, hits 18-36.
const PF8_FLAGS = ['--threshold', '20', '--min-snr', '5', '--min-pix-count', '1'];
const PF8 = resolvePf8Params(
  {},
  parsePf8ParamsPartial({ threshold: '20', 'min-snr': '5', 'min-pix-count': '1' }),
);

const ready = (() => {
  const run = join(dir, 'run.cxi');
  const sim = runCli([
    'simulate',
    '--geom',
    geom,
    '--out',
    run,
    '--frames',
    '8',
    '--hit-rate',
    '0.6',
    '--preset',
    'photosystem',
    '--seed',
    '3',
  ]);
  assert.equal(sim.code, 0, sim.stderr);
  return run;
})();

test('frame pool: memory is reused only after the run and every holder let go', () => {
  const pool = createFramePool(4);
  const first = pool.take();
  const letGo = first.loan.hold();
  first.loan.done();
  first.loan.done(); // once
  assert.notEqual(pool.take().pixels, first.pixels, 'still held');
  letGo();
  assert.equal(pool.take().pixels, first.pixels, 'reused once everyone let go');
  assert.ok(first.pixels.buffer instanceof SharedArrayBuffer);
  assert.throws(() => first.loan.hold(), /after everyone let go/);
});

test('in-process channel: FIFO, bounded (a sender waits while it is full), drains after close', async () => {
  const channel = createChannel<number>(3);
  const order: string[] = [];
  const producer = (async () => {
    for (let i = 0; i < 10; i++) {
      await channel.send(i);
      order.push(`sent ${i}`);
    }
    channel.close();
  })();
  // Nothing is received yet: the producer must stop at the capacity.
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(channel.depth, 3);
  assert.equal(order.length, 3);
  const received: number[] = [];
  for await (const v of channel) {
    received.push(v);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await producer;
  assert.deepEqual(received, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(channel.maxDepth, 3);
  await assert.rejects(channel.send(11), /closed channel/);
});

test('geometryForCxi: the CXI layout, peak list and per-frame beam; panels, bad regions and literal values kept', () => {
  const source = `${geometryText}
clen = /LCLS/detector_1/EncoderValue
photon_energy = /LCLS/photon_energy_eV
coffset = 0.5
a/clen = /LCLS/detector_1/EncoderValue
b/clen = 0.2
mask = /entry_1/data_1/mask
mask_good = 0x0000
mask_bad = 0xffff
bad_x/min_fs = 0
bad_x/max_fs = 3
bad_x/min_ss = 0
bad_x/max_ss = 3
`;
  const text = geometryForCxi(source);
  const geometry = parseGeometry(text, 'out.geom');
  const original = parseGeometry(geometryText, 'pipeline.geom');
  assert.equal(geometry.panels.length, original.panels.length);
  assert.equal(geometry.peakList, '/entry_1/result_1');
  assert.equal(geometry.peakListType, 'cxi');
  assert.match(text, /^data = \/entry_1\/data_1\/data$/m);
  assert.match(text, /^photon_energy = \/entry_1\/instrument_1\/source_1\/photon_energy_eV$/m);
  assert.match(text, /^clen = \/entry_1\/instrument_1\/detector_1\/distance m$/m);
  assert.match(
    text,
    /^a\/clen = \/entry_1\/instrument_1\/detector_1\/distance m ; \(source\) a\/clen = \/LCLS/m,
  );
  // The CXI stores metres; a clen path without a unit would be read in mm (CrystFEL's default).
  for (const panel of geometry.panels.filter((p) => p.clen?.kind === 'path'))
    assert.deepEqual(panel.clen, {
      kind: 'path',
      path: '/entry_1/instrument_1/detector_1/distance',
      scaleToM: 1,
    });
  assert.deepEqual(geometry.clen, {
    kind: 'path',
    path: '/entry_1/instrument_1/detector_1/distance',
    scaleToM: 1,
  });
  assert.match(text, /^b\/clen = 0\.2$/m);
  assert.match(text, /^coffset = 0\.5$/m);
  assert.match(text, /^; \(source mask[^\n]*mask = \/entry_1\/data_1\/mask$/m);
  assert.equal(geometry.badRegions.length, 1);
  // Each source line is either kept or commented with its reason: none silently disappears.
  for (const line of source.split('\n').filter((l) => l.trim() !== ''))
    assert.ok(text.includes(line.trim()), `missing: ${line}`);
  if (!haveShared) return;
  for (const name of readdirSync(sharedPath('data', 'geometry')).filter((n) => n.endsWith('.geom'))) {
    const path = sharedPath('data', 'geometry', name);
    const rewritten = parseGeometry(geometryForCxi(readFileSync(path, 'utf8')), name);
    assert.equal(rewritten.panels.length, readGeometry(path).panels.length, name);
    assert.equal(computePixelMaps(rewritten).ssSize, computePixelMaps(readGeometry(path)).ssSize, name);
  }
});

test('run from a file: every frame accounted for; hits with their frame, peaks, beam and source in one CXI; .lst and .geom beside it', async () => {
  const source = await ready;
  const out = join(dir, 'hits.cxi');
  const summaryPath = join(dir, 'hits.json');
  const summary = await runPipeline({
    source,
    geometryPath: geom,
    processor: { method: 'pf8', finder: { method: 'pf8', params: PF8 }, workers: 2 },
    minPeaks: 10,
    outPath: out,
    summaryPath,
    queueFrames: 2,
  });
  assert.equal(summary.sourceFrames, 8);
  assert.equal(summary.frames, 8);
  assert.equal(summary.lost, 0);
  assert.equal(summary.duplicates, 0);
  assert.ok(summary.hits >= 2 && summary.hits < 8, `${summary.hits} hits`);
  assert.equal(summary.rows, summary.hits);
  assert.ok((summary.queue?.maxDepth ?? 0) <= 2);
  assert.deepEqual(JSON.parse(readFileSync(summaryPath, 'utf8')).hits, summary.hits);
  // The same finder over every source frame, outside the pipeline: the CXI rows are exactly its hits.
  const direct = join(dir, 'direct.cxi');
  const cli = runCli(['peaks', '--geom', geom, '--in', source, '--out', direct, ...PF8_FLAGS]);
  assert.equal(cli.code, 0, cli.stderr);
  const all = await readPeakTable(direct);
  const hitFrames = all.flatMap((list, f) => (list.count >= 10 ? [f] : []));
  assert.equal(hitFrames.length, summary.hits);
  const rows = await readPeakTable(out);
  const handle = await openHdf5(out);
  const events = Array.from(
    (handle.file.get('/entry_1/result_1/sourceEvent') as Dataset).value as Int32Array,
  );
  const files = (handle.file.get('/entry_1/result_1/sourceFiles') as Dataset).value as string[];
  const energies = (handle.file.get('/entry_1/instrument_1/source_1/photon_energy_eV') as Dataset)
    .value as Float64Array;
  handle.release();
  assert.deepEqual(events, hitFrames);
  assert.deepEqual(files, [source]);
  assert.ok(
    Array.from(energies).every((e) => e === 9500),
    'photon energy of the geometry, per frame',
  );
  const inReader = await openFrameReader(source);
  const outReader = await openFrameReader(out);
  rows.forEach((row, i) => {
    const expected = all[hitFrames[i]];
    assert.equal(row.count, expected.count, `row ${i}`);
    for (let k = 0; k < row.count; k++) assert.ok(Math.abs(row.fs[k] - expected.fs[k]) < 1e-4);
    assert.deepEqual(outReader.readFrame(i), inReader.readFrame(hitFrames[i]));
  });
  inReader.close();
  outReader.close();
  assert.deepEqual(
    readFileSync(join(dir, 'hits.lst'), 'utf8').trim().split('\n'),
    rows.map((_, i) => `${out} //${i}`),
  );
  // The written geometry reads the written file: the same finder finds the same peaks there.
  const again = join(dir, 'again.cxi');
  const reread = runCli([
    'peaks',
    '--geom',
    join(dir, 'hits.geom'),
    '--in',
    out,
    '--out',
    again,
    ...PF8_FLAGS,
  ]);
  assert.equal(reread.code, 0, reread.stderr);
  assert.deepEqual(
    (await readPeakTable(again)).map((l) => l.count),
    rows.map((l) => l.count),
  );
});

test('run: unreadable frames are dead letters with their reason, and the run goes on', async () => {
  const source = await ready;
  const list = join(dir, 'mixed.lst');
  writeFileSync(
    list,
    `# a list as indexamajig reads it\n${source} //1\n${join(dir, 'missing.cxi')}\n${source} //99\n\n${source} //2\n`,
  );
  const summary = await runPipeline({
    source: `file:${list}`,
    geometryPath: geom,
    processor: { method: 'pf8', finder: { method: 'pf8', params: PF8 }, workers: 1 },
    minPeaks: 0,
    outPath: join(dir, 'mixed.cxi'),
    allFrames: true,
  });
  assert.equal(summary.sourceFrames, 4);
  assert.equal(summary.frames, 2);
  assert.equal(summary.rows, 2);
  assert.equal(summary.lost, 0);
  assert.equal(summary.deadLetters.length, 2);
  assert.match(summary.deadLetters[0].reason, /missing\.cxi/);
  assert.match(summary.deadLetters[1].reason, /frame 99 is out of range/);
});

test('reading and writing threads (ioThreads): the same CXI rows, frames and dead letters as one thread', async () => {
  const source = await ready;
  const list = join(dir, 'threads.lst');
  writeFileSync(list, `${source}\n${join(dir, 'missing.cxi')}\n${source} //99\n${source} //3\n`);
  const outputs: {
    summary: Awaited<ReturnType<typeof runPipeline>>;
    rows: PeakList[];
    frames: Float32Array[];
  }[] = [];
  for (const ioThreads of [false, true]) {
    const out = join(dir, `threads-${ioThreads}.cxi`);
    const summary = await runPipeline({
      source: `file:${list}`,
      geometryPath: geom,
      processor: { method: 'pf8', finder: { method: 'pf8', params: PF8 }, workers: 1 },
      minPeaks: 10,
      outPath: out,
      ioThreads,
      // A short queue: the source reads later frames into the memory of earlier ones (pixels.ts).
      queueFrames: 1,
    });
    const rows = await readPeakTable(out);
    const reader = await openFrameReader(out);
    const frames = rows.map((_, i) => reader.readFrame(i));
    reader.close();
    // Each row holds its own source frame (not one read later into the same memory).
    const handle = await openHdf5(out);
    const events = (handle.file.get('/entry_1/result_1/sourceEvent') as Dataset).value as Int32Array;
    handle.release();
    const sourceReader = await openFrameReader(source);
    frames.forEach((frame, i) => {
      assert.deepEqual(frame, sourceReader.readFrame(events[i]), `ioThreads ${ioThreads}: row ${i}`);
    });
    sourceReader.close();
    outputs.push({ summary, rows, frames });
  }
  const [one, threaded] = outputs;
  // 8 frames of the file, a missing file, an event out of range, frame 3 again (written once).
  assert.equal(threaded.summary.sourceFrames, 11);
  assert.equal(threaded.summary.lost, 0);
  assert.ok(threaded.summary.hits >= 2, `${threaded.summary.hits} hits`);
  for (const key of ['sourceFrames', 'frames', 'hits', 'rows', 'lost', 'duplicates'] as const)
    assert.equal(threaded.summary[key], one.summary[key], key);
  assert.deepEqual(
    threaded.summary.deadLetters.map((d) => [d.file, d.event, d.reason]),
    one.summary.deadLetters.map((d) => [d.file, d.event, d.reason]),
  );
  assert.equal(threaded.rows.length, one.rows.length);
  threaded.rows.forEach((row, i) => {
    assert.deepEqual([...row.fs.subarray(0, row.count)], [...one.rows[i].fs.subarray(0, one.rows[i].count)]);
    assert.deepEqual(threaded.frames[i], one.frames[i]);
  });
});

test('run from the simulator at a set rate, served by the shipped model; the CLI prints the summary', async () => {
  const out = join(dir, 'sim.cxi');
  const started = performance.now();
  const cli = runCli([
    'run',
    '--source',
    'sim:photosystem?frames=4&hitRate=1&seed=5',
    '--geom',
    geom,
    '--method',
    'peaknet',
    '--rate',
    '20',
    '--min-peaks',
    '1',
    '--out',
    out,
    '--json',
  ]);
  assert.equal(cli.code, 0, cli.stderr);
  const summary = JSON.parse(cli.stdout);
  assert.equal(summary.sourceFrames, 4);
  assert.equal(summary.frames, 4);
  assert.equal(summary.hits, summary.rows);
  assert.ok(summary.hits >= 1 && summary.peaks > 0, `${summary.hits} hits, ${summary.peaks} peaks`);
  assert.match(summary.processor, /^peaknet .*peaknet-default\.onnx/);
  // Four frames at 20 Hz leave no faster than 3/20 s.
  assert.ok(performance.now() - started >= 150);
  const handle = await openHdf5(out);
  assert.deepEqual(
    Array.from((handle.file.get('/entry_1/result_1/sourceEvent') as Dataset).value as Int32Array).length,
    summary.rows,
  );
  handle.release();
  const bad = runCli(['run', '--source', 'udp:127.0.0.1:1', '--geom', geom, '--out', join(dir, 'x.cxi')]);
  assert.equal(bad.code, 2);
  assert.equal(
    bad.stderr.trim(),
    "braggflow: --source: unknown source kind 'udp:' (known: file:PATH, sim:PRESET, zmq:tcp://HOST:PORT)",
  );
});

test('source specs: KIND:REST, a bare path is a file, a drive letter is not a kind', () => {
  assert.deepEqual(parseSourceSpec('sim:lysozyme?frames=3'), { kind: 'sim', body: 'lysozyme?frames=3' });
  assert.deepEqual(parseSourceSpec('zmq:tcp://127.0.0.1:5555'), {
    kind: 'zmq',
    body: 'tcp://127.0.0.1:5555',
  });
  assert.deepEqual(parseSourceSpec('run/r0001.cxi'), { kind: 'file', body: 'run/r0001.cxi' });
  assert.deepEqual(parseSourceSpec('C:\\data\\r1.cxi'), { kind: 'file', body: 'C:\\data\\r1.cxi' });
  assert.equal(sourceFilePath('file:a/b.lst'), 'a/b.lst');
  assert.equal(sourceFilePath('a/b.lst'), 'a/b.lst');
  assert.equal(sourceFilePath('sim:lysozyme'), undefined);
});

test('zmq stream: replay pushes the file as a detector would; run --source zmq: accounts for every frame', async () => {
  const source = await ready;
  const port = await freePort();
  const address = `tcp://127.0.0.1:${port}`;
  const sender = spawnCli(['replay', source, '--geom', geom, '--to', address, '--dtype', 'uint16', '--json']);
  const summary = await runPipeline({
    source: `zmq:${address}`,
    geometryPath: geom,
    processor: { method: 'pf8', finder: { method: 'pf8', params: PF8 }, workers: 1 },
    minPeaks: 0,
    allFrames: true,
    outPath: join(dir, 'zmq.cxi'),
  });
  const sent = await sender.done;
  assert.equal(sent.code, 0, sent.stderr);
  assert.equal(JSON.parse(sent.stdout).frames, 8);
  assert.equal(summary.sourceFrames, 8);
  assert.equal(summary.frames, 8);
  assert.equal(summary.lost, 0);
  // Every row names the file and event the sender read it from, in order.
  const handle = await openHdf5(join(dir, 'zmq.cxi'));
  assert.deepEqual(
    Array.from((handle.file.get('/entry_1/result_1/sourceEvent') as Dataset).value as Int32Array),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  assert.deepEqual((handle.file.get('/entry_1/result_1/sourceFiles') as Dataset).value, [source]);
  handle.release();
  // Frames went as uint16 (rounded): the pixels written are the file's, rounded.
  const original = await openFrameReader(source);
  const written = await openFrameReader(join(dir, 'zmq.cxi'));
  const a = original.readFrame(3);
  const b = written.readFrame(3);
  for (let i = 0; i < a.length; i += 997) assert.equal(b[i], Math.min(65535, Math.max(0, Math.round(a[i]))));
  original.close();
  written.close();
});

test('zmq messages that do not fit are dead letters with the reason', () => {
  const slab: [number, number] = [2, 3];
  const header = (h: object) => Buffer.from(JSON.stringify(h));
  const pixels = Buffer.from(new Uint16Array(6).buffer);
  const ok = decodeZmqFrame([header({ shape: [2, 3], dtype: 'uint16', event: 4 }), pixels], 0, 'zmq:x', slab);
  assert.equal(ok.kind, 'frame');
  const cases: [Buffer[], RegExp][] = [
    [[Buffer.from('{oops')], /header is not JSON/],
    [
      [header({ shape: [3, 2], dtype: 'uint16' }), pixels],
      /shape \[3,2\] is not the geometry's slab \[2, 3\]/,
    ],
    [[header({ shape: [2, 3], dtype: 'uint8' }), pixels], /dtype 'uint8' is not/],
    [[header({ shape: [2, 3], dtype: 'float32' }), pixels], /12 bytes of pixels, expected 24/],
  ];
  for (const [parts, reason] of cases) {
    const message = decodeZmqFrame(parts, 1, 'zmq:x', slab);
    assert.equal(message.kind, 'error');
    if (message.kind === 'error') assert.match(message.reason, reason);
  }
  assert.deepEqual(decodeZmqFrame([header({ end: true, frames: 9 })], 2, 'zmq:x', slab), {
    kind: 'stream-end',
    frames: 9,
  });
});

test('run --config: the flags as a file, paths relative to it, flags on the command line win; a wrong key names the file and field', async () => {
  const source = await ready;
  mkdirSync(join(dir, 'cfg'), { recursive: true });
  const config = join(dir, 'cfg', 'run.json');
  writeFileSync(
    config,
    JSON.stringify({
      source: '../run.cxi',
      geom: '../pipeline.geom',
      out: 'from-config.cxi',
      threshold: 20,
      minSnr: 5,
      minPixCount: 1,
      minPeaks: 10,
    }),
  );
  assert.equal(source, join(dir, 'run.cxi'));
  const fromFile = runCli(['run', '--config', config, '--json']);
  assert.equal(fromFile.code, 0, fromFile.stderr);
  const summary = JSON.parse(fromFile.stdout);
  assert.equal(summary.outputs.cxi, join(dir, 'cfg', 'from-config.cxi'));
  assert.equal(summary.frames, 8);
  assert.ok(summary.hits >= 2);
  const overridden = runCli(['run', '--config', config, '--min-peaks', '1000', '--json']);
  assert.equal(overridden.code, 0, overridden.stderr);
  assert.equal(JSON.parse(overridden.stdout).hits, 0);
  writeFileSync(config, JSON.stringify({ source: '../run.cxi', minPeak: 3 }));
  const wrong = runCli(['run', '--config', config]);
  assert.equal(wrong.code, 2);
  assert.equal(
    wrong.stderr.trim(),
    `braggflow: ${config}: minPeak: is not a run setting (keys are the flags in camelCase)`,
  );
});

test('accounting: a redelivered message is a duplicate; a frame the source sent twice is written once and still accounted', async () => {
  const maps = computePixelMaps(parseGeometry(geometryText, 'pipeline.geom'));
  const written: number[] = [];
  const router = createResultRouter(
    [{ write: (r) => void written.push(r.id.event), close: () => {} }],
    createCollector(maps),
  );
  const result = (event: number, seq: number) => ({
    id: { source: 'file:run.lst', file: 'run.cxi', event },
    seq,
    slabShape: [maps.ssSize, maps.fsSize] as [number, number],
    peaks: createPeakList(0),
    hit: true,
    sentAtMs: 0,
    doneAtMs: 1,
  });
  await router.result(result(5, 0));
  await router.result(result(5, 0)); // the transport delivered message 0 again
  await router.result(result(5, 1)); // the list named event 5 twice
  await router.deadLetter({
    kind: 'error',
    id: { source: 'file:run.lst', file: 'gone.cxi', event: 0 },
    seq: 2,
    reason: 'no such file',
  });
  router.end({ kind: 'end', source: 'file:run.lst', frames: 3 });
  assert.deepEqual(written, [5]);
  assert.equal(router.duplicates, 2);
  assert.equal(router.deadLetters, 1);
  assert.equal(router.lost, 0);
  assert.equal(router.complete, true);
});
