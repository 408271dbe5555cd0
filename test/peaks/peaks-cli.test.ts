import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Dataset } from 'h5wasm/node';
import { readPeakTable } from '../../src/io/cxi-peaks.js';
import { openFrameReader } from '../../src/io/cxi-reader.js';
import { createCxiWriter } from '../../src/io/cxi-writer.js';
import { openHdf5 } from '../../src/io/hdf5.js';
import { createPeakList } from '../../src/peaks/peak-list.js';
import { createPf8Context, defaultPf8Params, peakfinder8 } from '../../src/peaks/peakfinder8.js';
import { needsShared, runCli, sharedPath } from '../helpers.js';
import { block, noiseFrame, smallGeometryText, smallMaps } from './pf8-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-peaks-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const maps = smallMaps();
const geomPath = join(dir, 'small.geom');
writeFileSync(geomPath, smallGeometryText);

/** Three frames with 0, 1 and 2 peaks, stored as CXI frames. */
async function writeFrames(): Promise<{ path: string; frames: Float32Array[] }> {
  const frames = [noiseFrame(maps, 1), noiseFrame(maps, 2), noiseFrame(maps, 3)];
  block(frames[1], 20, 30, 2, 800);
  block(frames[2], 20, 30, 2, 800);
  block(frames[2], 80, 12, 3, 400);
  const path = join(dir, 'frames.cxi');
  const writer = await createCxiWriter(path, {
    frames: { slabShape: [maps.ssSize, maps.fsSize], dtype: 'float32' },
  });
  for (const image of frames) writer.appendFrame({ peaks: createPeakList(0), image });
  writer.close();
  return { path, frames };
}

const framesReady = writeFrames();

test('peaks --method pf8 writes one row per frame, the same peaks as the library, with workers too', async () => {
  const { path, frames } = await framesReady;
  const params = { ...defaultPf8Params, adcThreshold: 100 };
  const ctx = createPf8Context(maps);
  const expected = frames.map((image) => peakfinder8(image, ctx, params));
  for (const workers of ['1', '2']) {
    const out = join(dir, `peaks-${workers}.cxi`);
    const run = runCli([
      'peaks',
      '--geom',
      geomPath,
      '--in',
      path,
      '--out',
      out,
      '--threshold',
      '100',
      '--workers',
      workers,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const table = await readPeakTable(out);
    assert.deepEqual(
      table.map((list) => list.count),
      [0, 1, 2],
    );
    table.forEach((list, k) => {
      assert.deepEqual(Array.from(list.fs), Array.from(expected[k].fs));
      assert.deepEqual(Array.from(list.totalIntensity), Array.from(expected[k].totalIntensity));
    });
  }
});

test('peaks --params reads a tune file; flags override it; --json prints each frame', async () => {
  const { path } = await framesReady;
  const paramsPath = join(dir, 'params.json');
  // A threshold above the peaks: nothing found, unless the flag lowers it again.
  writeFileSync(
    paramsPath,
    JSON.stringify({ method: 'pf8', params: { threshold: 5000, 'min-snr': 5 }, f1: 0.5 }),
  );
  const out = join(dir, 'p.cxi');
  const none = runCli([
    'peaks',
    '--geom',
    geomPath,
    '--in',
    path,
    '--out',
    out,
    '--params',
    paramsPath,
    '--json',
  ]);
  assert.equal(none.code, 0, none.stderr);
  const noneJson = JSON.parse(none.stdout);
  assert.equal(noneJson.params.adcThreshold, 5000);
  assert.equal(noneJson.params.maxResPx, null);
  assert.deepEqual(
    noneJson.frames.map((f: { count: number }) => f.count),
    [0, 0, 0],
  );
  const some = runCli([
    'peaks',
    '--geom',
    geomPath,
    '--in',
    path,
    '--out',
    out,
    '--params',
    paramsPath,
    '--threshold',
    '100',
    '--frames',
    '1:3',
    '--json',
  ]);
  assert.equal(some.code, 0, some.stderr);
  const json = JSON.parse(some.stdout);
  assert.deepEqual(
    json.frames.map((f: { frame: number; count: number }) => [f.frame, f.count]),
    [
      [1, 1],
      [2, 2],
    ],
  );
  assert.ok(Math.abs(json.frames[0].peaks[0].fs - 30.5) < 0.05);
  assert.equal((await readPeakTable(out)).length, 2);
});

test('peaks: bad params files and flags name the file and the field', async () => {
  const { path } = await framesReady;
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ method: 'pf8', params: { 'min-pix-count': 'two' } }));
  const run = runCli([
    'peaks',
    '--geom',
    geomPath,
    '--in',
    path,
    '--out',
    join(dir, 'x.cxi'),
    '--params',
    bad,
  ]);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /^braggflow: .*bad\.json: field params\.min-pix-count: must be an integer/);
  const flag = runCli([
    'peaks',
    '--geom',
    geomPath,
    '--in',
    path,
    '--out',
    join(dir, 'x.cxi'),
    '--max-res',
    '-4',
  ]);
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /^braggflow: --max-res: /);
  const method = runCli([
    'peaks',
    '--geom',
    geomPath,
    '--in',
    path,
    '--out',
    join(dir, 'x.cxi'),
    '--method',
    'x',
  ]);
  assert.match(method.stderr, /--method: unknown method 'x'/);
  assert.equal(method.stderr.trim().split('\n').length, 1);
});

test('peaks on the real CSPAD frame: CXI and CBF inputs, pf8 and dispersion', needsShared, async () => {
  const geom = sharedPath('data/real/cspad-thermolysin.geom');
  const cxi = sharedPath('data/real/cspad-thermolysin.cxi');
  const cbf = sharedPath('data/real/cspad-thermolysin.cbf');
  const out = join(dir, 'real.cxi');
  const pf8 = runCli(['peaks', '--geom', geom, '--in', cxi, cbf, '--out', out]);
  assert.equal(pf8.code, 0, pf8.stderr);
  const table = await readPeakTable(out);
  assert.equal(table.length, 2);
  assert.ok(table[0].count >= 15);
  assert.deepEqual(Array.from(table[1].fs), Array.from(table[0].fs), 'the CBF holds the same frame');
  const dispersion = runCli([
    'peaks',
    '--method',
    'dispersion',
    '--geom',
    geom,
    '--in',
    cxi,
    '--out',
    out,
    '--gain',
    '25',
    '--global-threshold',
    '100',
  ]);
  assert.equal(dispersion.code, 0, dispersion.stderr);
  const spots = await readPeakTable(out);
  assert.ok(spots[0].count > 150 && spots[0].count < 200, `${spots[0].count} spots`);
});

test('peaks --out: rows name their file and event; one whole input is linked for CrystFEL, several are copied with --with-frames', async () => {
  const { path, frames } = await framesReady;
  // One input read whole: /entry_1/data_1/data is an external link to it, with P.lst and P.geom.
  const linked = join(dir, 'linked.cxi');
  const one = runCli([
    'peaks',
    '--geom',
    geomPath,
    '--in',
    path,
    '--out',
    linked,
    '--threshold',
    '100',
    '--json',
  ]);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(JSON.parse(one.stdout).frameData, 'linked');
  const reader = await openFrameReader(linked);
  assert.equal(reader.frameCount, 3);
  assert.deepEqual(reader.readFrame(2), frames[2]);
  reader.close();
  assert.equal(
    readFileSync(join(dir, 'linked.lst'), 'utf8'),
    `${linked} //0\n${linked} //1\n${linked} //2\n`,
  );
  assert.match(readFileSync(join(dir, 'linked.geom'), 'utf8'), /^peak_list = \/entry_1\/result_1$/m);
  // Two inputs: rows keep their own file and event; frames only with --with-frames.
  const both = join(dir, 'both.cxi');
  const two = runCli([
    'peaks',
    '--geom',
    geomPath,
    '--in',
    path,
    path,
    '--frames',
    '1:5',
    '--out',
    both,
    '--threshold',
    '100',
  ]);
  assert.equal(two.code, 0, two.stderr);
  assert.match(two.stdout, /names each row's file and event \(sourceFile, sourceEvent\); give --with-frames/);
  const handle = await openHdf5(both);
  assert.deepEqual(
    Array.from((handle.file.get('/entry_1/result_1/sourceEvent') as Dataset).value as Int32Array),
    [1, 2, 0, 1],
  );
  assert.deepEqual(
    Array.from((handle.file.get('/entry_1/result_1/sourceFile') as Dataset).value as Int32Array),
    [0, 0, 0, 0],
  );
  assert.equal(handle.file.get('/entry_1/data_1/data'), null);
  handle.release();
  const held = join(dir, 'held.cxi');
  const copy = runCli([
    'peaks',
    '--geom',
    geomPath,
    '--in',
    path,
    path,
    '--frames',
    '1:5',
    '--out',
    held,
    '--threshold',
    '100',
    '--with-frames',
  ]);
  assert.equal(copy.code, 0, copy.stderr);
  const heldReader = await openFrameReader(held);
  assert.equal(heldReader.frameCount, 4);
  assert.deepEqual(heldReader.readFrame(2), frames[0]);
  heldReader.close();
  // Debian's h5py (CrystFEL's HDF5) follows the link too.
  const python = spawnSync('/usr/bin/python3', ['-c', 'import h5py'], { encoding: 'utf8' });
  if (python.status === 0) {
    const check = spawnSync(
      '/usr/bin/python3',
      [
        '-c',
        "import sys, h5py\nf = h5py.File(sys.argv[1], 'r')\nprint(f['/entry_1/data_1/data'].shape[0], len(f['/entry_1/result_1/nPeaks']))",
        linked,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(check.stdout.trim(), '3 3', check.stderr);
  }
});
