import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readPeakTable } from '../src/io/cxi-peaks.js';
import { openFrameReader } from '../src/io/cxi-reader.js';
import { createCxiWriter } from '../src/io/cxi-writer.js';
import { createThreadedCxiWriter } from '../src/io/cxi-writer-thread.js';
import { peakListFrom } from '../src/peaks/peak-list.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-writer-thread-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const options = {
  maxPeaks: 4,
  frames: { slabShape: [8, 6] as [number, number], dtype: 'float32' as const },
  perFrameScalars: true,
};
const frame = (i: number) => ({
  peaks: peakListFrom({
    fs: Array.from({ length: i + 2 }, (_, k) => k + 0.5),
    totalIntensity: Array.from({ length: i + 2 }, (_, k) => 10 * k + i),
  }),
  image: Float32Array.from({ length: 48 }, (_, k) => k * (i + 1)),
  photonEnergyEv: 9000 + i,
  clenM: 0.1,
});

test('the threaded writer writes what the writer on this thread writes; the caller keeps its frames', async () => {
  const paths = [join(dir, 'sync.cxi'), join(dir, 'thread.cxi')];
  const sync = await createCxiWriter(paths[0], options);
  const threaded = await createThreadedCxiWriter(paths[1], options);
  for (let i = 0; i < 5; i++) {
    const record = frame(i);
    assert.deepEqual(threaded.appendFrame(record), sync.appendFrame(record));
    // The frame is copied to the thread: the caller's array is intact.
    assert.equal(record.image.length, 48);
    for (const writer of [sync, threaded]) writer.appendExtra('sourceEvent', Int32Array.of(i), []);
  }
  assert.equal(threaded.frameCount, 5);
  assert.equal(threaded.peaksDropped, sync.peaksDropped);
  assert.ok(threaded.peaksDropped > 0, 'frames with more peaks than the table holds');
  sync.close();
  await threaded.closeAsync();
  const [a, b] = await Promise.all(paths.map((p) => readPeakTable(p)));
  assert.deepEqual(b, a);
  const [ra, rb] = await Promise.all(paths.map((p) => openFrameReader(p)));
  for (let i = 0; i < 5; i++) assert.deepEqual(rb.readFrame(i), ra.readFrame(i));
  ra.close();
  rb.close();
});

test('an error on the writing thread is thrown by the next call and by closeAsync, and the thread ends', async () => {
  const writer = await createThreadedCxiWriter(join(dir, 'bad.cxi'), options);
  writer.appendFrame({ ...frame(0), image: new Float32Array(3) });
  await assert.rejects(writer.settled(), /image has 3 pixels, expected 48/);
  assert.throws(() => writer.appendFrame(frame(1)), /image has 3 pixels/);
  await assert.rejects(writer.closeAsync(), /image has 3 pixels/);
  // A second close answers the same; the test process exits (no thread left running).
  await assert.rejects(writer.closeAsync(), /image has 3 pixels/);
});
