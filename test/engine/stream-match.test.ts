import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { matchChunk, PanelIndex, type StreamMatchReport } from '../../src/engine/stream-match.js';
import { parseGeometry } from '../../src/io/geom.js';
import type { StreamChunk } from '../../src/io/stream/types.js';
import { formatStreamText } from '../../src/io/stream/writer.js';
import { needsShared, runCli, sharedPath } from '../helpers.js';
import { syntheticChunk, syntheticHeader } from '../stream-fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'braggflow-match-'));
after(() => rmSync(work, { recursive: true, force: true }));

/**
 * The most pairs any one-to-one assignment can make (Kuhn's augmenting paths): an independent check
 * that the Hungarian matcher found a maximum matching.
 */
function maximumMatching(edges: number[][], right: number): number {
  const owner = new Int32Array(right).fill(-1);
  const tryAssign = (i: number, seen: Uint8Array): boolean => {
    for (const j of edges[i]) {
      if (seen[j]) continue;
      seen[j] = 1;
      if (owner[j] < 0 || tryAssign(owner[j], seen)) {
        owner[j] = i;
        return true;
      }
    }
    return false;
  };
  let count = 0;
  for (let i = 0; i < edges.length; i++) if (tryAssign(i, new Uint8Array(right))) count++;
  return count;
}

function tableChunk(
  peaks: [number, number, string][],
  reflections: [number, number, string][],
  names = ['a', 'b'],
): StreamChunk {
  const peakTable = {
    fsPx: Float64Array.from(peaks, (p) => p[0]),
    ssPx: Float64Array.from(peaks, (p) => p[1]),
    oneOverDPerNm: new Float64Array(peaks.length),
    intensity: new Float64Array(peaks.length).fill(100),
    panelIndex: Int32Array.from(peaks, (p) => names.indexOf(p[2])),
    panelNames: names,
    hasPanelColumn: true,
  };
  const n = reflections.length;
  const reflectionTable = {
    h: new Int32Array(n),
    k: new Int32Array(n),
    l: new Int32Array(n),
    intensity: new Float64Array(n),
    sigma: new Float64Array(n),
    peak: new Float64Array(n),
    background: new Float64Array(n),
    fsPx: Float64Array.from(reflections, (r) => r[0]),
    ssPx: Float64Array.from(reflections, (r) => r[1]),
    panelIndex: Int32Array.from(reflections, (r) => names.indexOf(r[2])),
    panelNames: names,
    hasPanelColumn: true,
  };
  return {
    imageFilename: 'x.h5',
    event: '//3',
    crystals: [{ otherLines: [], reflections: reflectionTable }],
    peaks: peakTable,
    otherLines: [],
  };
}

describe('matching a chunk', () => {
  test('pairs only within the radius and on the same panel; positions shift to CXI centres', () => {
    // Panel a is ss 0-9, panel b ss 10-19: the peak at ss 9.8 (a) and the reflection at ss 10.2 (b)
    // are 0.4 px apart but on two panels.
    const chunk = tableChunk(
      [
        [5, 9.8, 'a'],
        [20, 5, 'a'],
        [40, 15, 'b'],
      ],
      [
        [5, 10.2, 'b'],
        [23, 5, 'a'],
        [40, 19.9, 'b'],
      ],
    );
    const match = matchChunk(chunk, 0, new PanelIndex(), { radiusPx: 4 });
    assert.deepEqual([...match.foundToPredicted], [-1, 1, -1]);
    assert.equal(match.matched, 1);
    assert.equal(match.precision, 1 / 3);
    assert.equal(match.recall, 1 / 3);
    assert.equal(match.foundPoints.fs[1], 19.5);
    assert.equal(match.predictedPoints.ss[2], 19.4);
    const wider = matchChunk(chunk, 0, new PanelIndex(), { radiusPx: 5 });
    assert.deepEqual([...wider.foundToPredicted], [-1, 1, 2]);
  });

  test('tables without a panel column (format 2.1/2.2) take panels from the geometry', () => {
    const geometry = parseGeometry(
      'clen = 0.1\nres = 10000\na/min_fs = 0\na/max_fs = 99\na/min_ss = 0\na/max_ss = 9\na/corner_x = 0\na/corner_y = 0\na/fs = x\na/ss = y\nb/min_fs = 0\nb/max_fs = 99\nb/min_ss = 10\nb/max_ss = 19\nb/corner_x = 0\nb/corner_y = 20\nb/fs = x\nb/ss = y\n',
    );
    const chunk = tableChunk([[5, 9.8, 'a']], [[5, 10.8, 'b']]);
    for (const table of [chunk.peaks!, chunk.crystals[0].reflections!]) {
      table.hasPanelColumn = false;
      table.panelIndex.fill(-1);
    }
    // CXI 9.3 is on panel a, 10.3 on panel b: no match however wide the radius.
    assert.equal(matchChunk(chunk, 0, new PanelIndex(geometry), { radiusPx: 3 }).matched, 0);
    // Without a geometry every point is on "no panel" and they pair.
    assert.equal(matchChunk(chunk, 0, new PanelIndex(), { radiusPx: 3 }).matched, 1);
  });

  test('the matching is maximum and one to one on crowded random frames', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const chunk = syntheticChunk(seed, 300, 400);
      // Crowd the reflections around the peaks so clusters form.
      const reflections = chunk.crystals[0].reflections!;
      const peaks = chunk.peaks!;
      for (let j = 0; j < reflections.fsPx.length && j < peaks.fsPx.length; j++) {
        reflections.fsPx[j] = peaks.fsPx[j] + ((j * 7919) % 11) - 5;
        reflections.ssPx[j] = peaks.ssPx[j] + ((j * 104729) % 9) - 4;
        reflections.panelIndex[j] = peaks.panelIndex[j];
      }
      const radius = 6;
      const match = matchChunk(chunk, 0, new PanelIndex(), { radiusPx: radius });
      const f = match.foundPoints;
      const p = match.predictedPoints;
      const edges = Array.from({ length: f.count }, (_, i) => {
        const out: number[] = [];
        for (let j = 0; j < p.count; j++)
          if (f.panel[i] === p.panel[j] && Math.hypot(f.fs[i] - p.fs[j], f.ss[i] - p.ss[j]) <= radius)
            out.push(j);
        return out;
      });
      const used = new Set<number>();
      for (let i = 0; i < f.count; i++) {
        const j = match.foundToPredicted[i];
        if (j < 0) continue;
        assert.ok(edges[i].includes(j), `seed ${seed}: pair ${i}-${j} is not an allowed pair`);
        assert.ok(!used.has(j), `seed ${seed}: reflection ${j} used twice`);
        used.add(j);
      }
      assert.equal(match.matched, maximumMatching(edges, p.count), `seed ${seed}`);
    }
  });
});

describe('braggflow match', () => {
  test('reads a synthetic stream: per-frame and overall figures, CSV and plot', () => {
    const chunks = [syntheticChunk(1, 40, 60), syntheticChunk(2, 10, 0), syntheticChunk(3, 25, 30)];
    // Chunk 3: every found peak sits on a reflection 1 px away on its own panel.
    const c3 = chunks[2];
    for (let i = 0; i < 25; i++) {
      c3.crystals[0].reflections!.fsPx[i] = c3.peaks!.fsPx[i] + 1;
      c3.crystals[0].reflections!.ssPx[i] = c3.peaks!.ssPx[i];
      c3.crystals[0].reflections!.panelIndex[i] = c3.peaks!.panelIndex[i];
    }
    const stream = join(work, 'synthetic.stream');
    writeFileSync(stream, formatStreamText({ header: syntheticHeader(), chunks, trailingLines: [] }));
    const csv = join(work, 'm.csv');
    const plot = join(work, 'm.svg');
    const result = runCli(['match', '--stream', stream, '--csv', csv, '--plot', plot, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as StreamMatchReport;
    assert.equal(report.summary.chunks, 3);
    assert.equal(report.summary.indexedFrames, 2);
    assert.deepEqual(
      report.frames.map((f) => [f.chunk, f.event, f.found, f.predicted]),
      [
        [0, '//1', 40, 60],
        [2, '//3', 25, 30],
      ],
    );
    const third = report.frames[1];
    assert.ok(third.matched >= 25 && third.precision === 1, JSON.stringify(third));
    assert.equal(report.summary.matched, report.frames[0].matched + third.matched);
    assert.equal(report.summary.precision, report.summary.matched / 65);
    const rows = readFileSync(csv, 'utf8').trim().split('\n');
    assert.equal(rows.length, 3);
    assert.match(
      rows[0],
      /^chunk,file,event,serial,indexedBy,crystals,found,predicted,matched,precision,recall/,
    );
    assert.match(rows[2], /^2,run0001\/data_3\.h5,\/\/3,3,xgandalf-nolatt-cell,1,25,30,/);
    const svg = readFileSync(plot, 'utf8');
    assert.match(svg, /^<svg/);
    assert.equal((svg.match(/<circle /g) ?? []).length, 2);
  });

  test(
    "the shared CrystFEL 0.12.0 stream: indexamajig's pf8 peaks against its predictions",
    needsShared,
    () => {
      const result = runCli([
        'match',
        '--stream',
        sharedPath('data', 'real', 'cspad-thermolysin.stream'),
        '--json',
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.doesNotMatch(result.stderr, /warning/);
      const report = JSON.parse(result.stdout) as StreamMatchReport;
      const text = readFileSync(sharedPath('data', 'real', 'cspad-thermolysin.stream'), 'utf8');
      const found = Number(/^num_peaks = (\d+)$/m.exec(text)![1]);
      const predicted = Number(/^num_reflections = (\d+)$/m.exec(text)![1]);
      assert.deepEqual(
        [report.summary.indexedFrames, report.summary.found, report.summary.predicted],
        [1, found, predicted],
      );
      // An indexed frame: most of what pf8 found is predicted; most predictions are too weak to be found.
      assert.ok(report.summary.precision > 0.6, `precision ${report.summary.precision}`);
      assert.ok(report.summary.recall < 0.3, `recall ${report.summary.recall}`);
    },
  );

  test('a missing stream is a one-line error naming it', () => {
    const result = runCli(['match', '--stream', join(work, 'nope.stream')]);
    assert.equal(result.code, 2);
    assert.match(result.stderr.trim(), /^braggflow: .*nope\.stream: no such file$/);
  });
});
