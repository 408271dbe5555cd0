/**
 * One-to-one matching of found peaks to reference positions (truth, predicted reflections, expert
 * labels) within a radius, optimal in the Hungarian sense: the most pairs within the radius, and among
 * those the smallest total distance. Peaks far from everything cannot change the answer, so the work
 * is split into clusters of peaks linked by within-radius pairs (a grid hash finds them) and each small
 * cluster is solved on its own: frames of thousands of peaks stay fast.
 */
import { solveAssignment } from './hungarian.js';

export interface PointSet {
  count: number;
  fs: ArrayLike<number>;
  ss: ArrayLike<number>;
}

export interface Scores {
  precision: number;
  recall: number;
  f1: number;
}

/**
 * Precision and recall from counts (1 when the denominator is empty: nothing found is not a wrong
 * peak, no reference is nothing missed) and their F1. The one formula every score in the project uses.
 */
export function scoresFromCounts(matched: number, found: number, reference: number): Scores {
  const precision = found === 0 ? 1 : matched / found;
  const recall = reference === 0 ? 1 : matched / reference;
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { precision, recall, f1 };
}

export interface MatchResult {
  /** For each found peak, the index of its reference peak, or -1. */
  foundToRef: Int32Array;
  matched: number;
  found: number;
  reference: number;
  /** matched / found (1 when nothing was found). */
  precision: number;
  /** matched / reference (1 when there is no reference). */
  recall: number;
  f1: number;
  /** Mean distance of matched pairs, pixels. */
  meanDistancePx: number;
}

class UnionFind {
  private readonly parent: Int32Array;
  constructor(size: number) {
    this.parent = Int32Array.from({ length: size }, (_, i) => i);
  }
  find(i: number): number {
    while (this.parent[i] !== i) {
      this.parent[i] = this.parent[this.parent[i]];
      i = this.parent[i];
    }
    return i;
  }
  union(a: number, b: number): void {
    this.parent[this.find(a)] = this.find(b);
  }
}

/**
 * Which points may pair: a group per point (a panel index), and only points of the same group pair.
 * A peak and a reflection on two panels that touch in the slab are never the same spot.
 */
export interface MatchGroups {
  found: ArrayLike<number>;
  reference: ArrayLike<number>;
}

/** Grid cells are keyed by one number: cell coordinates stay far below 2^20 for any real detector. */
const CELL_KEY_STRIDE = 2 ** 21;

/** Pairs (found i, reference j, distance) closer than the radius, via a grid of radius-sized cells. */
function closePairs(
  found: PointSet,
  reference: PointSet,
  radiusPx: number,
  groups?: MatchGroups,
): { i: number; j: number; d: number }[] {
  const cell = Math.max(radiusPx, 1e-9);
  const grid = new Map<number, number[]>();
  const cellOf = (fs: number, ss: number) => Math.floor(fs / cell) * CELL_KEY_STRIDE + Math.floor(ss / cell);
  for (let j = 0; j < reference.count; j++) {
    const key = cellOf(reference.fs[j], reference.ss[j]);
    const bucket = grid.get(key);
    if (bucket) bucket.push(j);
    else grid.set(key, [j]);
  }
  const pairs: { i: number; j: number; d: number }[] = [];
  for (let i = 0; i < found.count; i++) {
    const key = cellOf(found.fs[i], found.ss[i]);
    for (let df = -1; df <= 1; df++) {
      for (let ds = -1; ds <= 1; ds++) {
        const bucket = grid.get(key + df * CELL_KEY_STRIDE + ds);
        if (bucket === undefined) continue;
        for (const j of bucket) {
          if (groups !== undefined && groups.found[i] !== groups.reference[j]) continue;
          const d = Math.hypot(found.fs[i] - reference.fs[j], found.ss[i] - reference.ss[j]);
          if (d <= radiusPx) pairs.push({ i, j, d });
        }
      }
    }
  }
  return pairs;
}

/** Optimal one-to-one matching within `radiusPx`; with `groups`, only within the same group (panel). */
export function matchPeaks(
  found: PointSet,
  reference: PointSet,
  radiusPx: number,
  groups?: MatchGroups,
): MatchResult {
  const foundToRef = new Int32Array(found.count).fill(-1);
  const pairs = closePairs(found, reference, radiusPx, groups);
  // Clusters over found (0..n-1) and reference (n..n+m-1) nodes.
  const clusters = new UnionFind(found.count + reference.count);
  for (const { i, j } of pairs) clusters.union(i, found.count + j);
  const byCluster = new Map<number, { i: number; j: number; d: number }[]>();
  for (const pair of pairs) {
    const root = clusters.find(pair.i);
    const list = byCluster.get(root);
    if (list) list.push(pair);
    else byCluster.set(root, [pair]);
  }
  let matched = 0;
  let distanceSum = 0;
  for (const list of byCluster.values()) {
    if (list.length === 1) {
      // The common case by far (a peak near one reflection and nothing else): nothing to solve.
      foundToRef[list[0].i] = list[0].j;
      matched++;
      distanceSum += list[0].d;
      continue;
    }
    const rows = [...new Set(list.map((p) => p.i))];
    const cols = [...new Set(list.map((p) => p.j))];
    const rowIndex = new Map(rows.map((r, k) => [r, k]));
    const colIndex = new Map(cols.map((c, k) => [c, k]));
    // Out-of-radius entries cost more than any set of in-radius pairs, so the solver first maximises
    // the number of matches, then minimises their total distance.
    const forbidden = radiusPx * (Math.min(rows.length, cols.length) + 1) + 1;
    const cost = new Float64Array(rows.length * cols.length).fill(forbidden);
    for (const p of list) cost[rowIndex.get(p.i)! * cols.length + colIndex.get(p.j)!] = p.d;
    const assignment = solveAssignment(cost, rows.length, cols.length);
    for (let r = 0; r < rows.length; r++) {
      const c = assignment[r];
      if (c < 0 || cost[r * cols.length + c] >= forbidden) continue;
      foundToRef[rows[r]] = cols[c];
      matched++;
      distanceSum += cost[r * cols.length + c];
    }
  }
  return {
    foundToRef,
    matched,
    found: found.count,
    reference: reference.count,
    ...scoresFromCounts(matched, found.count, reference.count),
    meanDistancePx: matched === 0 ? 0 : distanceSum / matched,
  };
}
