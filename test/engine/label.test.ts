import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { defaultGeometryText } from '../../src/detector/default-geometry.js';
import type { SlabRect } from '../../src/detector/mask.js';
import { type LabelManifest, labelStream, workerExecutor } from '../../src/engine/label.js';
import { labelFrame } from '../../src/engine/label-frame.js';
import { renderPseudoVoigt } from '../../src/engine/pseudo-voigt.js';
import { readPeakTable } from '../../src/io/cxi-peaks.js';
import { openFrameReader, readPerFrameScalar } from '../../src/io/cxi-reader.js';
import { parseGeometry } from '../../src/io/geom.js';
import { getDataset, openHdf5, readSlice } from '../../src/io/hdf5.js';
import { runSimulation } from '../../src/simulate/run.js';
import { openFrameSource } from '../../src/train/frame-source.js';
import { UserError } from '../../src/util/errors.js';
import { runCli } from '../helpers.js';

const work = mkdtempSync(join(tmpdir(), 'braggflow-label-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** A seeded Poisson-ish noise source: background 20 counts. */
function noisyBackground(length: number, seed: number): Float32Array {
  let a = seed;
  const random = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Float32Array.from({ length }, () => {
    const u = Math.max(random(), 1e-12);
    return 20 + Math.sqrt(20) * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  });
}

describe('labelFrame', () => {
  // Two 40 x 30 panels side by side in a 80 x 30 slab: a spot on panel 0's right edge must not spill.
  const fsSize = 80;
  const ssSize = 30;
  const panels: SlabRect[] = [
    { fs0: 0, fs1: 39, ss0: 0, ss1: 29 },
    { fs0: 40, fs1: 79, ss0: 0, ss1: 29 },
  ];
  const spots = [
    { amplitude: 400, fsPx: 12.3, ssPx: 10.6, hwhmFsPx: 1.1, hwhmSsPx: 0.9, eta: 0.2 },
    { amplitude: 500, fsPx: 39, ssPx: 20, hwhmFsPx: 1.5, hwhmSsPx: 1.5, eta: 0 },
    { amplitude: 300, fsPx: 60.4, ssPx: 5.2, hwhmFsPx: 0.8, hwhmSsPx: 1.2, eta: 0.5 },
  ];
  const image = noisyBackground(fsSize * ssSize, 3);
  for (const spot of spots) {
    const p = spot.fsPx < 40 ? 0 : 1;
    const rect = panels[p];
    const panel = new Float32Array(40 * 30);
    renderPseudoVoigt({ ...spot, fsPx: spot.fsPx - rect.fs0 }, 40, 30, panel);
    for (let ss = 0; ss < 30; ss++)
      for (let c = 0; c < 40; c++) image[ss * fsSize + rect.fs0 + c] += panel[ss * 40 + c];
  }
  const mask = new Uint8Array(fsSize * ssSize).fill(1);
  // A bad pixel inside the first spot's half maximum, with a wild value.
  mask[11 * fsSize + 12] = 0;
  image[11 * fsSize + 12] = 1e9;
  const peaks = {
    count: 4,
    fs: [12, 39, 60, 25],
    ss: [11, 20, 5, 25],
    panel: [0, 0, 1, 0],
  };
  const result = labelFrame({
    image,
    fsSize,
    ssSize,
    mask,
    panels,
    peaks,
    fit: { weighting: 'border', supersample: 3, minAmplitudeSnr: 0, allowUnresolved: true },
    minSnr: 5,
  });

  test('labels each spot at its half maximum, within its panel, never a bad pixel', () => {
    assert.equal(result.peaks.count, 3);
    assert.equal(result.bad[3], 1, 'the empty position (25, 25) is not a spot');
    assert.equal(
      Object.values(result.badReasons).reduce((n, v) => n + v, 0),
      1,
      JSON.stringify(result.badReasons),
    );
    assert.equal(mask[11 * fsSize + 12] & result.labels[11 * fsSize + 12], 0);
    assert.equal(result.labels[11 * fsSize + 12], 0);
    for (let ss = 0; ss < ssSize; ss++)
      assert.equal(result.labels[ss * fsSize + 40], 0, `spilled across the seam at ss ${ss}`);
    // Every labelled pixel lies within 3 HWHM of a spot of its own panel; each spot has label pixels.
    for (let k = 0; k < result.labels.length; k++) {
      if (!result.labels[k]) continue;
      const fs = k % fsSize;
      const ss = Math.floor(k / fsSize);
      assert.ok(
        spots.some(
          (s) =>
            s.fsPx < 40 === fs < 40 &&
            Math.hypot(fs - s.fsPx, ss - s.ssPx) < 3 * Math.max(s.hwhmFsPx, s.hwhmSsPx),
        ),
        `stray label at (${fs}, ${ss})`,
      );
    }
    for (let i = 0; i < 3; i++) {
      assert.ok(
        Math.hypot(result.peaks.fs[i] - spots[i].fsPx, result.peaks.ss[i] - spots[i].ssPx) < 0.3,
        `centre ${i}`,
      );
      assert.ok(result.peaks.nPixels[i] >= 2, `spot ${i} has ${result.peaks.nPixels[i]} label pixels`);
      assert.ok(result.peaks.snr[i] > 10, `spot ${i} snr ${result.peaks.snr[i]}`);
    }
    // The spots' label pixel counts add up to the frame's.
    assert.equal(
      result.labelledPixels,
      result.labels.reduce((n, v) => n + v, 0),
    );
  });

  test("the first spot's labels are its half-maximum pixels", () => {
    const spot = spots[0];
    let expected = 0;
    let agree = 0;
    for (let ss = 5; ss < 17; ss++) {
      for (let fs = 6; fs < 19; fs++) {
        const r2 = ((fs - spot.fsPx) / spot.hwhmFsPx) ** 2 + ((ss - spot.ssPx) / spot.hwhmSsPx) ** 2;
        const inside = r2 <= 0.7 && mask[ss * fsSize + fs] === 1;
        if (inside) expected++;
        if (inside && result.labels[ss * fsSize + fs]) agree++;
      }
    }
    // Pixels well inside the half-maximum ellipse are labelled.
    assert.ok(expected >= 2 && agree === expected, `${agree} of ${expected}`);
  });
});

describe('braggflow label on a simulated run', () => {
  const dir = join(work, 'sim');
  const geometryText = defaultGeometryText;
  let stream = '';
  let cxi = '';
  before(async () => {
    mkdirSync(dir, { recursive: true });
    cxi = join(dir, 'run.cxi');
    stream = join(dir, 'run.stream');
    await runSimulation({
      geometry: parseGeometry(geometryText),
      geometryText,
      frames: 4,
      seed: 21,
      outPath: cxi,
      streamPath: stream,
      preset: 'lysozyme',
      hitRate: 1,
    });
    writeFileSync(join(dir, 'run.geom'), geometryText);
  });

  const shardFrames = async (out: string, manifest: LabelManifest) => {
    const rows: { chunk: number; event: number }[] = [];
    for (const shard of manifest.shards) {
      const path = join(out, shard.file);
      const reader = await openFrameReader(path);
      for (let f = 0; f < reader.frameCount; f++)
        rows.push({
          chunk: await readPerFrameScalar(path, '/entry_1/truth_1/streamChunk', f),
          event: await readPerFrameScalar(path, '/entry_1/truth_1/sourceEvent', f),
        });
      reader.close();
    }
    return rows;
  };

  test('labels every selected frame once into shards train reads; labels sit on the true spots', async () => {
    const out = join(dir, 'labels');
    const result = runCli([
      'label',
      '--stream',
      stream,
      '--out',
      out,
      '--shard-frames',
      '2',
      '--min-matched',
      '3',
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const manifest = JSON.parse(result.stdout) as LabelManifest;
    assert.equal(manifest.complete, true);
    assert.equal(manifest.totals.chunks, 4);
    assert.ok(manifest.totals.labelledFrames >= 2, JSON.stringify(manifest.totals));
    assert.deepEqual(
      readdirSync(out).sort(),
      ['manifest.json', ...manifest.shards.map((s) => s.file)].sort(),
    );
    const rows = await shardFrames(out, manifest);
    assert.equal(rows.length, manifest.totals.labelledFrames);
    assert.deepEqual(
      rows.map((r) => r.event),
      rows.map((r) => r.chunk),
      'the simulator names chunk N event //N',
    );
    // Labels against the simulator's truth: nearly every label pixel is a true peak pixel.
    const truth = await openFrameReader(cxi, { dataPath: '/entry_1/truth_1/mask' });
    let labelled = 0;
    let onTruth = 0;
    let peaks = 0;
    for (const shard of manifest.shards) {
      const path = join(out, shard.file);
      const labels = await openFrameReader(path, { dataPath: '/entry_1/truth_1/mask' });
      const table = await readPeakTable(path, '/entry_1/truth_1');
      for (let f = 0; f < labels.frameCount; f++) {
        const event = await readPerFrameScalar(path, '/entry_1/truth_1/sourceEvent', f);
        const label = labels.readFrame(f);
        const t = truth.readFrame(event);
        for (let k = 0; k < label.length; k++) {
          if (!label[k]) continue;
          labelled++;
          if (t[k]) onTruth++;
        }
        peaks += table[f].count;
        // Each labelled spot's fit quality, beside the peak table's columns.
        const handle = await openHdf5(path);
        const chi2 = readSlice(getDataset(handle.file, path, '/entry_1/truth_1/fitReducedChiSquare'), path, [
          [f, f + 1],
          [],
        ]);
        handle.release();
        for (let k = 0; k < chi2.length; k++)
          assert.ok(
            k < table[f].count ? chi2[k] > 0 && Number.isFinite(chi2[k]) : chi2[k] === 0,
            `chi2[${k}]`,
          );
      }
      labels.close();
    }
    truth.close();
    assert.equal(labelled, manifest.totals.labelledPixels);
    assert.equal(peaks, manifest.totals.peaks);
    assert.ok(labelled > 50 && onTruth / labelled > 0.75, `${onTruth} of ${labelled} label pixels on truth`);
    // braggflow train's dataset source reads a shard.
    const source = await openFrameSource(
      { kind: 'dataset', weight: 1, path: join(out, manifest.shards[0].file), geom: join(dir, 'run.geom') },
      1,
    );
    const frame = await source.frame(0);
    assert.equal(frame.mask.reduce((n, v) => n + v, 0) > 0, true);
    source.close();
  });

  test('a run stopped mid-way resumes: every frame exactly once, the same shards as an uninterrupted run', async () => {
    const whole = join(dir, 'whole');
    const wholeManifest = await labelStream({
      streamPath: stream,
      outDir: whole,
      choices: { shardFrames: 1, minMatched: 1 },
    });
    const part = join(dir, 'part');
    await assert.rejects(
      labelStream({
        streamPath: stream,
        outDir: part,
        choices: { shardFrames: 1, minMatched: 1 },
        onProgress: (_bytes, frames) => {
          if (frames === 2) throw new Error('stopped');
        },
      }),
      /stopped/,
    );
    const stopped = JSON.parse(readFileSync(join(part, 'manifest.json'), 'utf8')) as LabelManifest;
    assert.equal(stopped.complete, false);
    // The stop came as the second shard completed: two listed, each a whole file, nothing partial.
    assert.equal(stopped.shards.length, 2);
    assert.deepEqual(
      readdirSync(part).sort(),
      ['manifest.json', ...stopped.shards.map((shard) => shard.file)].sort(),
    );
    const resumed = await labelStream({
      streamPath: stream,
      outDir: part,
      choices: { shardFrames: 1, minMatched: 1 },
    });
    assert.equal(resumed.complete, true);
    assert.deepEqual(await shardFrames(part, resumed), await shardFrames(whole, wholeManifest));
    assert.deepEqual({ ...resumed.totals }, { ...wholeManifest.totals });
    assert.deepEqual(readdirSync(part).sort(), readdirSync(whole).sort());
    // On two worker threads: the same shards.
    const threaded = join(dir, 'threaded');
    const executor = workerExecutor(2);
    const threadedManifest = await labelStream({
      streamPath: stream,
      outDir: threaded,
      executor,
      choices: { shardFrames: 1, minMatched: 1 },
    }).finally(() => executor.close());
    assert.deepEqual(threadedManifest.shards, wholeManifest.shards);
    assert.deepEqual(await shardFrames(threaded, threadedManifest), await shardFrames(whole, wholeManifest));
    // Finished: a third run does nothing; other options into the same folder are refused.
    const again = await labelStream({
      streamPath: stream,
      outDir: part,
      choices: { shardFrames: 1, minMatched: 1 },
    });
    assert.deepEqual(again.shards, resumed.shards);
    await assert.rejects(
      labelStream({
        streamPath: stream,
        outDir: part,
        dataRoot: dir,
        choices: { shardFrames: 1, minMatched: 1 },
      }),
      (error: unknown) => error instanceof UserError && /made from other inputs/.test(error.message),
    );
    await assert.rejects(
      labelStream({
        streamPath: stream,
        outDir: part,
        choices: { shardFrames: 1, minMatched: 1, windowPx: 11 },
      }),
      (error: unknown) =>
        error instanceof UserError && /windowPx = 9, this run asks for 11/.test(error.message),
    );
  });

  test('an image the stream names that is not there is a one-line error naming the stream line', () => {
    const moved = join(dir, 'moved.stream');
    writeFileSync(
      moved,
      readFileSync(stream, 'utf8').replace(/^Image filename: .*$/gm, 'Image filename: gone/run.cxi'),
    );
    const result = runCli(['label', '--stream', moved, '--out', join(dir, 'gone'), '--min-matched', '1']);
    assert.equal(result.code, 2);
    assert.match(
      result.stderr.trim().split('\n').at(-1)!,
      /^braggflow: .*moved\.stream: line \d+: image 'gone\/run\.cxi' not found \(tried .*\); --data-root names the folder it is in$/,
    );
    assert.equal(existsSync(join(dir, 'gone', 'shard-00000.h5')), false);
    // --data-root finds it.
    mkdirSync(join(dir, 'root', 'gone'), { recursive: true });
    writeFileSync(join(dir, 'root', 'gone', 'run.cxi'), readFileSync(cxi));
    const found = runCli([
      'label',
      '--stream',
      moved,
      '--out',
      join(dir, 'gone2'),
      '--data-root',
      join(dir, 'root'),
      '--min-matched',
      '1',
      '--json',
    ]);
    assert.equal(found.code, 0, found.stderr);
    assert.ok((JSON.parse(found.stdout) as LabelManifest).totals.labelledFrames >= 1);
  });
});
