import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { solveAssignment } from '../src/engine/hungarian.js';
import { matchPeaks } from '../src/engine/match.js';

function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  return permutations(n - 1).flatMap((p) =>
    Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]),
  );
}

/** Brute force over all injective row -> column maps. */
function bruteForceCost(cost: number[][]): number {
  const rows = cost.length;
  const cols = cost[0].length;
  let best = Number.POSITIVE_INFINITY;
  const pick = (r: number, used: Set<number>, sum: number): void => {
    if (r === rows) {
      best = Math.min(best, sum);
      return;
    }
    for (let c = 0; c < cols; c++) {
      if (used.has(c)) continue;
      used.add(c);
      pick(r + 1, used, sum + cost[r][c]);
      used.delete(c);
    }
  };
  pick(0, new Set(), 0);
  return best;
}

test('solveAssignment finds the optimum of random square and rectangular problems', () => {
  assert.equal(permutations(3).length, 6);
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 25, maxLength: 25 }),
      (rows, cols, values) => {
        const cost = Array.from({ length: rows }, (_, r) =>
          Array.from({ length: cols }, (_, c) => values[r * 5 + c]),
        );
        const assignment = solveAssignment(Float64Array.from(cost.flat()), rows, cols);
        const assigned = [...assignment].filter((c) => c >= 0);
        assert.equal(assigned.length, Math.min(rows, cols));
        assert.equal(new Set(assigned).size, assigned.length, 'columns are distinct');
        let total = 0;
        assignment.forEach((c, r) => {
          if (c >= 0) total += cost[r][c];
        });
        const optimum =
          rows <= cols
            ? bruteForceCost(cost)
            : bruteForceCost(cost[0].map((_, c) => cost.map((row) => row[c])));
        assert.equal(total, optimum);
      },
    ),
    { numRuns: 200, seed: 7 },
  );
});

test('matchPeaks beats nearest-neighbour matching: the one-to-one optimum keeps both pairs', () => {
  // A's nearest reference is X, but only A can reach Y: the optimum pairs A-Y and B-X.
  const found = { count: 2, fs: [0, 1.6], ss: [0, 0] };
  const reference = { count: 2, fs: [0.8, -0.95], ss: [0, 0] };
  const result = matchPeaks(found, reference, 1);
  assert.equal(result.matched, 2);
  assert.deepEqual([...result.foundToRef], [1, 0]);
  assert.equal(result.precision, 1);
  assert.equal(result.recall, 1);
  assert.ok(Math.abs(result.meanDistancePx - (0.95 + 0.8) / 2) < 1e-12);
});

test('matchPeaks counts precision and recall, with nothing beyond the radius', () => {
  const found = { count: 3, fs: [10, 50, 200], ss: [10, 50, 200] };
  const reference = { count: 4, fs: [11, 52.5, 300, 400], ss: [10, 50, 300, 400] };
  const result = matchPeaks(found, reference, 2);
  assert.equal(result.matched, 1, '2.5 px is outside a 2 px radius');
  assert.equal(result.precision, 1 / 3);
  assert.equal(result.recall, 1 / 4);
  assert.ok(Math.abs(result.f1 - (2 * (1 / 3) * (1 / 4)) / (1 / 3 + 1 / 4)) < 1e-12);
  assert.equal(matchPeaks(found, reference, 3).matched, 2);
  const empty = matchPeaks({ count: 0, fs: [], ss: [] }, reference, 2);
  assert.equal(empty.precision, 1);
  assert.equal(empty.recall, 0);
});

test('matchPeaks agrees with brute force on random crowded frames', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(fc.float({ min: 0, max: 12, noNaN: true }), fc.float({ min: 0, max: 12, noNaN: true })),
        { maxLength: 6 },
      ),
      fc.array(
        fc.tuple(fc.float({ min: 0, max: 12, noNaN: true }), fc.float({ min: 0, max: 12, noNaN: true })),
        { maxLength: 6 },
      ),
      (a, b) => {
        const found = { count: a.length, fs: a.map((p) => p[0]), ss: a.map((p) => p[1]) };
        const reference = { count: b.length, fs: b.map((p) => p[0]), ss: b.map((p) => p[1]) };
        const radius = 3;
        const result = matchPeaks(found, reference, radius);
        // Brute force the maximum number of within-radius pairs.
        let best = 0;
        const search = (i: number, used: Set<number>, count: number): void => {
          if (i === a.length) {
            best = Math.max(best, count);
            return;
          }
          search(i + 1, used, count);
          for (let j = 0; j < b.length; j++) {
            if (used.has(j) || Math.hypot(a[i][0] - b[j][0], a[i][1] - b[j][1]) > radius) continue;
            used.add(j);
            search(i + 1, used, count + 1);
            used.delete(j);
          }
        };
        search(0, new Set(), 0);
        assert.equal(result.matched, best);
      },
    ),
    { numRuns: 200, seed: 11 },
  );
});
