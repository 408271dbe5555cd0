import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { readPeakTable } from '../src/io/cxi-peaks.js';
import { openFrameReader, readPerFrameScalar } from '../src/io/cxi-reader.js';
import {
  cameraLengthPath,
  createCxiWriter,
  photonEnergyEvPath,
  photonEnergyJoulePath,
} from '../src/io/cxi-writer.js';
import {
  createHdf5,
  findGroup,
  getDataset,
  type NumericDtype,
  openHdf5,
  readSlice,
  typedArrayOf,
} from '../src/io/hdf5.js';
import { inspectHdf5 } from '../src/io/inspect/hdf5.js';
import { peakListFrom } from '../src/peaks/peak-list.js';
import { UserError } from '../src/util/errors.js';
import { needsShared, runCli, sharedPath } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-cxi-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A deterministic frame whose pixel values depend on frame index and position. */
function frameValues(
  i: number,
  pixels: number,
  dtype: NumericDtype,
): InstanceType<(typeof typedArrayOf)[NumericDtype]> {
  const out = new typedArrayOf[dtype](pixels);
  const signed = dtype.startsWith('int') || dtype.startsWith('float');
  for (let p = 0; p < pixels; p++)
    out[p] = ((p * 7 + i * 13) % 100) - (signed ? 50 : 0) + (dtype.startsWith('float') ? 0.25 : 0);
  return out;
}

function peaksFor(i: number, count: number) {
  const ids = Array.from({ length: count }, (_, k) => k);
  return peakListFrom({
    fs: ids.map((k) => k + 0.5 + i),
    ss: ids.map((k) => 2 * k + 0.25),
    totalIntensity: ids.map((k) => 100 * (k + 1) + i),
    snr: ids.map((k) => k + 3),
    nPixels: ids.map((k) => k + 1),
    maxValue: ids.map((k) => 10 * k),
  });
}

describe('CXI writer and readers', () => {
  test('peaks, frames and per-frame scalars round-trip; frames are read one at a time', async () => {
    const path = join(dir, 'run.cxi');
    const slabShape: [number, number] = [6, 5];
    const writer = await createCxiWriter(path, {
      maxPeaks: 16,
      frames: { slabShape, dtype: 'uint16', compression: 4 },
    });
    const counts = [3, 0, 5];
    for (let i = 0; i < counts.length; i++) {
      const result = writer.appendFrame({
        peaks: peaksFor(i, counts[i]),
        image: frameValues(i, 30, 'uint16'),
        photonEnergyEv: 9000 + i,
        clenM: i === 1 ? undefined : 0.1 + i / 100,
      });
      assert.deepEqual(result, { frameIndex: i, peaksWritten: counts[i], peaksDropped: 0 });
    }
    writer.close();

    const tables = await readPeakTable(path);
    assert.equal(tables.length, 3);
    for (let i = 0; i < counts.length; i++) {
      const expected = peaksFor(i, counts[i]);
      assert.equal(tables[i].count, counts[i]);
      for (const column of ['fs', 'ss', 'totalIntensity', 'snr', 'nPixels', 'maxValue'] as const) {
        assert.deepEqual(Array.from(tables[i][column]), Array.from(expected[column]), `frame ${i} ${column}`);
      }
    }

    const reader = await openFrameReader(path, { expectedSlabShape: slabShape });
    assert.equal(reader.frameCount, 3);
    assert.deepEqual(reader.slabShape, slabShape);
    assert.equal(reader.dtype, 'uint16');
    // Read out of order: each call is its own hyperslab.
    for (const i of [2, 0, 1])
      assert.deepEqual(Array.from(reader.readFrame(i)), Array.from(frameValues(i, 30, 'uint16')));
    assert.throws(
      () => reader.readFrame(3),
      (e: unknown) => e instanceof UserError && /out of range/.test(e.message),
    );
    reader.close();

    assert.equal(await readPerFrameScalar(path, photonEnergyEvPath, 2), 9002);
    const joules = await readPerFrameScalar(path, photonEnergyJoulePath, 0);
    assert.ok(Math.abs(joules / 1.602176634e-19 - 9000) < 1e-9);
    assert.ok(Math.abs((await readPerFrameScalar(path, cameraLengthPath, 2)) - 0.12) < 1e-12);
    assert.ok(Number.isNaN(await readPerFrameScalar(path, cameraLengthPath, 1)), 'missing scalar is NaN');
  });

  for (const [dtype, compression] of [
    ['uint16', 0],
    ['int16', 0],
    ['int32', 6],
    ['float32', 0],
    ['float64', 1],
    ['uint8', 0],
    ['int8', 0],
    ['uint32', 3],
  ] as [NumericDtype, number][]) {
    test(`frames of ${dtype}${compression ? ` (gzip ${compression})` : ''} read back as float32`, async () => {
      const path = join(dir, `frames-${dtype}.cxi`);
      const writer = await createCxiWriter(path, { frames: { slabShape: [4, 8], dtype, compression } });
      for (let i = 0; i < 3; i++)
        writer.appendFrame({ peaks: peaksFor(i, 1), image: frameValues(i, 32, dtype) });
      writer.close();
      const reader = await openFrameReader(path);
      assert.equal(reader.dtype, dtype);
      const out = new Float32Array(32);
      assert.equal(reader.readFrame(1, out), out, 'reuses the caller buffer');
      assert.deepEqual(
        Array.from(out),
        Array.from(frameValues(1, 32, dtype), (v) => Math.fround(v)),
      );
      // Into shared memory (the pipeline's file source reads there, for its threads).
      const shared = new Float32Array(new SharedArrayBuffer(32 * 4));
      reader.readFrame(2, shared);
      assert.deepEqual(
        Array.from(shared),
        Array.from(frameValues(2, 32, dtype), (v) => Math.fround(v)),
      );
      reader.close();
    });
  }

  test('more than maxPeaks keeps the strongest and records the drop', async () => {
    const path = join(dir, 'many.cxi');
    const writer = await createCxiWriter(path, { maxPeaks: 4 });
    const peaks = peakListFrom({
      fs: [0, 1, 2, 3, 4, 5, 6],
      ss: [0, 0, 0, 0, 0, 0, 0],
      totalIntensity: [5, 70, 10, 60, 1, 50, 40],
    });
    const result = writer.appendFrame({ peaks });
    assert.equal(result.peaksWritten, 4);
    assert.equal(result.peaksDropped, 3);
    writer.appendFrame({ peaks: peaksFor(0, 2) });
    assert.equal(writer.peaksDropped, 3);
    writer.close();
    const [first, second] = await readPeakTable(path);
    assert.deepEqual(Array.from(first.totalIntensity), [70, 60, 50, 40]);
    assert.deepEqual(Array.from(first.fs), [1, 3, 5, 6]);
    assert.equal(second.count, 2);
    const handle = await openHdf5(path);
    try {
      const group = findGroup(handle.file, '/entry_1/result_1');
      assert.ok(group !== undefined);
      assert.equal(Number(group.attrs.peaksDropped.value), 3);
      assert.equal(Number(group.attrs.framesTruncated.value), 1);
      assert.deepEqual(getDataset(handle.file, path, '/entry_1/result_1/peakXPosRaw').shape, [2, 4]);
    } finally {
      handle.release();
    }
  });

  test('appendExtra adds per-frame datasets under a configurable group (truth layout)', async () => {
    const path = join(dir, 'truth.cxi');
    const writer = await createCxiWriter(path, { maxPeaks: 8, peakGroup: '/entry_1/truth_1' });
    writer.appendFrame({ peaks: peaksFor(0, 2) });
    writer.appendExtra('mask', new Uint8Array([1, 0, 1, 1, 0, 0]), [2, 3]);
    writer.appendExtra('hkl', new Int32Array([1, 2, 3, -1, -2, -3]), [8, 3]);
    writer.appendFrame({ peaks: peaksFor(1, 1) }); // no extras for frame 1: zeros
    writer.appendFrame({ peaks: peaksFor(2, 1) });
    writer.appendExtra('mask', new Uint8Array([0, 1, 0, 0, 1, 1]), [2, 3]);
    writer.close();
    assert.equal((await readPeakTable(path, '/entry_1/truth_1')).length, 3);
    const handle = await openHdf5(path);
    try {
      const mask = getDataset(handle.file, path, '/entry_1/truth_1/mask');
      const hkl = getDataset(handle.file, path, '/entry_1/truth_1/hkl');
      assert.deepEqual(mask.shape, [3, 2, 3]);
      assert.deepEqual(hkl.shape, [3, 8, 3]);
      assert.deepEqual(
        Array.from(readSlice(mask, path, [])),
        [1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1],
      );
      const firstRow = Array.from(readSlice(hkl, path, [[0, 1], [], []]));
      assert.deepEqual(firstRow.slice(0, 7), [1, 2, 3, -1, -2, -3, 0]);
      assert.equal(hkl.dtype, '<i');
    } finally {
      handle.release();
    }
  });

  test('a single [ss, fs] frame dataset reads as one frame; scalars may be scalars', async () => {
    const path = join(dir, 'single.h5');
    const file = await createHdf5(path);
    file.create_group('entry_1');
    file.create_group('entry_1/data_1');
    file.create_dataset({
      name: 'entry_1/data_1/data',
      data: new Int32Array([1, 2, 3, 4, 5, 6]),
      shape: [2, 3],
      dtype: '<i',
    });
    file.create_dataset({ name: 'energy', data: new Float64Array([9500]), shape: [1], dtype: '<d' });
    file.close();
    const reader = await openFrameReader(path, { expectedSlabShape: [2, 3] });
    assert.equal(reader.frameCount, 1);
    assert.deepEqual(Array.from(reader.readFrame(0)), [1, 2, 3, 4, 5, 6]);
    reader.close();
    assert.equal(await readPerFrameScalar(path, '/energy', 17), 9500);
  });

  test('a slab shape that disagrees with the geometry names file, dataset and both shapes', async () => {
    const path = join(dir, 'shape.cxi');
    const writer = await createCxiWriter(path, { frames: { slabShape: [4, 8], dtype: 'float32' } });
    writer.appendFrame({ peaks: peaksFor(0, 0), image: new Float32Array(32) });
    writer.close();
    await assert.rejects(openFrameReader(path, { expectedSlabShape: [8, 4] }), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.equal(e.file, path);
      assert.equal(e.where, 'dataset /entry_1/data_1/data');
      assert.match(e.message, /\[4, 8\].*\[8, 4\]/);
      return true;
    });
  });

  test('a missing dataset or peak table is a UserError naming the path', async () => {
    const path = join(dir, 'run.cxi');
    await assert.rejects(openFrameReader(path, { dataPath: '/entry_1/data_2/data' }), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.equal(e.where, 'dataset /entry_1/data_2/data');
      return true;
    });
    await assert.rejects(
      readPeakTable(path, '/entry_1/result_9'),
      (e: unknown) => e instanceof UserError && e.where === 'group /entry_1/result_9',
    );
    await assert.rejects(
      readPerFrameScalar(path, '/nope', 0),
      (e: unknown) => e instanceof UserError && e.where === 'dataset /nope',
    );
  });

  test('inspect summarises frames and peak tables', async () => {
    const summary = await inspectHdf5(join(dir, 'run.cxi'));
    assert.deepEqual(summary.shape, [6, 5]);
    assert.equal(summary.frames, 3);
    const expectedSum = Array.from(frameValues(0, 30, 'uint16')).reduce((a, b) => a + b, 0);
    assert.equal(summary.sum, expectedSum);
    assert.deepEqual(summary.peakTables, [
      { group: '/entry_1/result_1', frames: 3, totalPeaks: 8, maxPeaks: 16 },
    ]);
  });

  test('CLI inspect: non-HDF5 and truncated files exit 2 with one line', () => {
    const bogus = join(dir, 'bogus.cxi');
    writeFileSync(bogus, 'this is not an HDF5 file at all');
    const result = runCli(['inspect', bogus]);
    assert.equal(result.code, 2);
    assert.equal(result.stderr.trim().split('\n').length, 1);
    assert.match(result.stderr, /bogus\.cxi: not an HDF5 file/);

    const truncated = join(dir, 'truncated.cxi');
    writeFileSync(truncated, readFileSync(join(dir, 'run.cxi')).subarray(0, 3000));
    const cut = runCli(['inspect', '--json', truncated]);
    assert.equal(cut.code, 2);
    assert.equal(cut.stderr.trim().split('\n').length, 1, cut.stderr);
    assert.match(cut.stderr, /truncated\.cxi: /);
  });

  test('the shared CSPAD CXI frame: [11840, 194], exact integer sum', needsShared, async () => {
    const path = sharedPath('data/real/cspad-thermolysin.cxi');
    const reader = await openFrameReader(path, { expectedSlabShape: [11840, 194] });
    assert.equal(reader.frameCount, 1);
    const frame = reader.readFrame(0);
    reader.close();
    let sum = 0;
    for (const v of frame) {
      assert.ok(Number.isInteger(v));
      sum += v;
    }
    // The pixels are integers stored as float32; their exact sum is 32878926 (a float32 accumulator
    // such as numpy's pairwise sum reports 32878930).
    assert.equal(sum, 32878926);
    const json = runCli(['inspect', '--json', path]);
    assert.equal(json.code, 0, json.stderr);
    const summary = JSON.parse(json.stdout);
    assert.deepEqual(summary.shape, [11840, 194]);
    assert.equal(summary.sum, 32878926);
  });
});
