import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { evaluatePeaks } from '../../src/engine/eval.js';
import { parseJsonPeakLists, readLabelLists, readPeakLists } from '../../src/engine/labels.js';
import { createCxiWriter } from '../../src/io/cxi-writer.js';
import { type PeakList, peakListFrom } from '../../src/peaks/peak-list.js';
import { UserError } from '../../src/util/errors.js';
import { runCli } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-eval-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const points = (...xy: [number, number][]): PeakList =>
  peakListFrom({ fs: xy.map((p) => p[0]), ss: xy.map((p) => p[1]) });

// Frame 0: optimal assignment matters. Taking predictions in order and giving each its nearest free
// truth peak matches P1 -> T1 and leaves P2 alone; the optimum pairs P1 -> T2 and P2 -> T1.
const truthFrames = [
  points([10, 10], [12.5, 10]),
  points([50, 50], [60, 60], [70, 70]),
  points(),
  points([5, 5]),
];
const predFrames = [
  points([11, 10], [8.5, 10]),
  points([50.5, 50.5], [90, 90]),
  points([1, 1]),
  points([5, 7.5]),
];

describe('evaluatePeaks', () => {
  const report = evaluatePeaks(truthFrames, predFrames, { radiusPx: 2, minPeaks: 2 });

  test('counts optimal one-to-one matches per frame', () => {
    assert.deepEqual(
      report.perFrame.map((f) => [f.truth, f.predicted, f.matched]),
      [
        [2, 2, 2],
        [3, 2, 1],
        [0, 1, 0],
        [1, 1, 0],
      ],
    );
    assert.equal(report.perFrame[0].f1, 1);
    assert.equal(report.perFrame[0].meanDistancePx, 1.5);
    // No truth: recall is 1 by convention, precision 0 for the one false peak.
    assert.deepEqual([report.perFrame[2].precision, report.perFrame[2].recall], [0, 1]);
  });

  test('micro scores sum the counts, macro averages the frames', () => {
    assert.deepEqual(
      [report.micro.truePositives, report.micro.falsePositives, report.micro.falseNegatives],
      [3, 3, 3],
    );
    assert.equal(report.micro.precision, 0.5);
    assert.equal(report.micro.recall, 0.5);
    assert.equal(report.micro.f1, 0.5);
    assert.equal(report.truthPeaks, 6);
    assert.equal(report.predictedPeaks, 6);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.equal(report.macro.precision, mean([1, 0.5, 0, 0]));
    assert.equal(report.macro.recall, mean([1, 1 / 3, 1, 0]));
  });

  test('hit finding compares frames with at least minPeaks peaks', () => {
    // Truth hits: frames 0 and 1. Predicted hits: frames 0 and 1.
    assert.deepEqual([report.hits.truthHits, report.hits.predictedHits, report.hits.bothHits], [2, 2, 2]);
    const strict = evaluatePeaks(truthFrames, predFrames, { radiusPx: 2, minPeaks: 3 });
    // Only frame 1 is a truth hit at 3; no prediction has 3 peaks.
    assert.deepEqual([strict.hits.truthHits, strict.hits.predictedHits, strict.hits.bothHits], [1, 0, 0]);
    assert.equal(strict.hits.recall, 0);
    assert.equal(strict.hits.precision, 1);
  });

  test('the radius is inclusive and a larger radius matches more', () => {
    const wide = evaluatePeaks(truthFrames, predFrames, { radiusPx: 2.5, minPeaks: 2 });
    assert.equal(wide.perFrame[3].matched, 1);
    assert.equal(wide.micro.truePositives, 4);
  });

  test('rejects different frame counts and bad options', () => {
    assert.throws(() => evaluatePeaks(truthFrames, predFrames.slice(1)), UserError);
    assert.throws(() => evaluatePeaks(truthFrames, predFrames, { radiusPx: -1, minPeaks: 1 }), UserError);
    assert.throws(() => evaluatePeaks(truthFrames, predFrames, { radiusPx: 2, minPeaks: 1.5 }), UserError);
  });
});

describe('JSON peak lists', () => {
  test('a list per frame, a flat list for one frame, [] for one empty frame', () => {
    const frames = parseJsonPeakLists('[[[1, 2, 30], [3, 4, 50]], [], [[5, 6]]]', 'x.json');
    assert.deepEqual(
      frames.map((f) => f.count),
      [2, 0, 1],
    );
    assert.deepEqual(Array.from(frames[0].ss), [2, 4]);
    assert.deepEqual(Array.from(frames[0].totalIntensity), [30, 50]);
    const flat = parseJsonPeakLists('[[1.5, 2.5, 7]]', 'x.json');
    assert.equal(flat.length, 1);
    assert.deepEqual(Array.from(flat[0].fs), [1.5]);
    assert.deepEqual(
      parseJsonPeakLists('[]', 'x.json').map((f) => f.count),
      [0],
    );
  });

  test('bad JSON names the file, frame and peak', () => {
    const message = (text: string) => {
      try {
        parseJsonPeakLists(text, 'x.json');
      } catch (error) {
        assert.ok(error instanceof UserError);
        return error.toLine();
      }
      assert.fail('no error');
    };
    assert.match(message('{"a": 1}'), /^x\.json: expected a list of frames/);
    assert.match(
      message('[[[1, 2, 3]], [[1, "a", 3]]]'),
      /^x\.json: frame 1, peak 0: expected \[fs, ss, I\]/,
    );
    assert.match(message('[[1, 2, 3, 4]]'), /^x\.json: peak 0: expected/);
    assert.match(message('[[[1, 2]], 7]'), /^x\.json: frame 1: expected a list/);
    assert.match(message('[1, 2'), /^x\.json: not valid JSON/);
  });
});

async function writeTable(path: string, frames: PeakList[], peakGroup?: string): Promise<void> {
  const writer = await createCxiWriter(path, { maxPeaks: 8, ...(peakGroup ? { peakGroup } : {}) });
  for (const peaks of frames) writer.appendFrame({ peaks });
  writer.close();
}

const asJson = (frames: PeakList[]) =>
  JSON.stringify(frames.map((f) => Array.from({ length: f.count }, (_, k) => [f.fs[k], f.ss[k], 1])));

describe('braggflow eval', () => {
  const truthCxi = join(dir, 'truth.cxi');
  const predCxi = join(dir, 'pred.cxi');
  const truthJson = join(dir, 'truth.json');
  const predJson = join(dir, 'pred.json');

  test('reads CXI and JSON inputs and agrees with the library', async () => {
    await writeTable(truthCxi, truthFrames, '/entry_1/truth_1');
    await writeTable(predCxi, predFrames);
    writeFileSync(truthJson, asJson(truthFrames));
    writeFileSync(predJson, asJson(predFrames));
    // Without a group, labels prefer the simulator's truth and fall back to the found-peak table.
    assert.deepEqual(
      (await readLabelLists(truthCxi)).map((f) => f.count),
      [2, 3, 0, 1],
    );
    assert.deepEqual(
      (await readLabelLists(predCxi)).map((f) => f.count),
      [2, 2, 1, 1],
    );
    const fromCxi = await readPeakLists(truthCxi, '/entry_1/truth_1');
    assert.deepEqual(
      fromCxi.map((f) => f.count),
      [2, 3, 0, 1],
    );
    const expected = evaluatePeaks(truthFrames, predFrames, { radiusPx: 2, minPeaks: 2 });
    for (const [truth, pred] of [
      [truthJson, predCxi],
      [truthCxi, predJson],
    ]) {
      const again = evaluatePeaks(await readPeakLists(truth, '/entry_1/truth_1'), await readPeakLists(pred), {
        radiusPx: 2,
        minPeaks: 2,
      });
      assert.deepEqual(again, expected);
    }
    {
      const run = runCli(['eval', '--truth', truthCxi, '--pred', predCxi, '--min-peaks', '2', '--json']);
      assert.equal(run.code, 0, run.stderr);
      const out = JSON.parse(run.stdout);
      assert.equal(out.frames, 4);
      assert.deepEqual(
        [out.micro.truePositives, out.micro.falsePositives, out.micro.falseNegatives],
        [3, 3, 3],
      );
      assert.deepEqual(
        out.perFrame.map((f: { matched: number }) => f.matched),
        [2, 1, 0, 0],
      );
      assert.equal(out.hits.bothHits, 2);
    }
  });

  test('prints a short table', () => {
    const run = runCli(['eval', '--truth', truthJson, '--pred', predJson, '--radius', '2.5']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /micro\s+0\.667\s+0\.667\s+0\.667\s+4\s+2\s+2/);
    assert.match(run.stdout, /^1\s+3\s+2\s+1\s+0\.500\s+0\.333\s+0\.400$/m);
  });

  test('bad inputs give one line and exit 2', async () => {
    await assert.rejects(readPeakLists(join(dir, 'missing.json')), /cannot open/);
    const short = join(dir, 'short.json');
    writeFileSync(short, asJson(predFrames.slice(0, 3)));
    const cases: [string[], RegExp][] = [
      [['--truth', truthJson, '--pred', short], /truth\.json has 4 frames but .*short\.json has 3/],
      [
        ['--truth', truthCxi, '--pred', predCxi, '--truth-group', '/nope'],
        /truth\.cxi: group \/nope: no such group/,
      ],
    ];
    for (const [args, pattern] of cases) {
      const run = runCli(['eval', ...args]);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, pattern);
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    }
  });
});

test('eval --truth-frames scores a prediction of part of the run against those truth frames', () => {
  // Truth for 3 frames; the prediction covers frames 1:3 only (as `peaks --frames 1:3` writes).
  const truthJson = join(dir, 'run-truth.json');
  const predJson = join(dir, 'part-pred.json');
  writeFileSync(
    truthJson,
    JSON.stringify([
      [[1, 1, 9]],
      [
        [20, 20, 9],
        [30, 30, 9],
      ],
      [[40, 40, 9]],
    ]),
  );
  writeFileSync(
    predJson,
    JSON.stringify([
      [[20.5, 20, 5]],
      [
        [40, 41, 5],
        [90, 90, 5],
      ],
    ]),
  );
  const run = runCli(['eval', '--truth', truthJson, '--truth-frames', '1:3', '--pred', predJson, '--json']);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.frames, 2);
  assert.deepEqual(
    [report.micro.truePositives, report.micro.falsePositives, report.micro.falseNegatives],
    [2, 1, 1],
  );
  const mismatch = runCli(['eval', '--truth', truthJson, '--pred', predJson]);
  assert.equal(mismatch.code, 2);
  assert.match(mismatch.stderr, /has 3 frames but .* has 2/);
  const past = runCli(['eval', '--truth', truthJson, '--truth-frames', '2:4', '--pred', predJson]);
  assert.equal(past.code, 2);
  assert.match(past.stderr, /--truth-frames 2:4 is empty or past the last frame \(3 frames\)/);
});
