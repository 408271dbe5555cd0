/**
 * Unit cells: validation, direct and reciprocal bases, and systematic absences.
 *
 * Convention (the one CrystFEL and most crystallographic programs use): in the crystal's own frame a
 * lies along x, b in the xy plane, c completes a right-handed basis. Matrices are row-major 3x3
 * Float64Arrays whose ROWS are the basis vectors (a, b, c in angstrom; a*, b*, c* in 1/angstrom), so
 * a reflection's scattering vector is q = h a* + k b* + l c* (no 2 pi: |q| = 1/d).
 */
import { UserError } from '../util/errors.js';

export interface UnitCell {
  /** Edges, angstrom. */
  aA: number;
  bA: number;
  cA: number;
  /** Angles, degrees. */
  alphaDeg: number;
  betaDeg: number;
  gammaDeg: number;
  /** Lattice centering: P, A, B, C, I, F or R (rhombohedral obverse on hexagonal axes); H = P. */
  centering: string;
}

export const centerings = ['P', 'A', 'B', 'C', 'I', 'F', 'R', 'H'] as const;

const deg = Math.PI / 180;

/**
 * Throws a UserError (naming `where`, e.g. `--cell`) unless the cell can exist: positive finite edges,
 * angles strictly between 0 and 180 degrees that can close (each less than the sum of the other two,
 * all three less than 360), and a positive volume.
 */
export function validateCell(cell: UnitCell, where = 'cell'): void {
  const edges = [cell.aA, cell.bA, cell.cA];
  const angles = [cell.alphaDeg, cell.betaDeg, cell.gammaDeg];
  for (const [i, name] of ['a', 'b', 'c'].entries()) {
    if (!Number.isFinite(edges[i]) || edges[i] <= 0)
      throw new UserError(
        `edge ${name} must be a positive length in angstrom, got ${edges[i]}`,
        undefined,
        where,
      );
  }
  for (const [i, name] of ['alpha', 'beta', 'gamma'].entries()) {
    if (!Number.isFinite(angles[i]) || angles[i] <= 0 || angles[i] >= 180)
      throw new UserError(
        `angle ${name} must be between 0 and 180 degrees, got ${angles[i]}`,
        undefined,
        where,
      );
  }
  const [al, be, ga] = angles;
  if (al + be + ga >= 360 || al >= be + ga || be >= al + ga || ga >= al + be) {
    throw new UserError(`angles ${al}, ${be}, ${ga} degrees cannot close a cell`, undefined, where);
  }
  if (!(volumeFactorSquared(cell) > 1e-9))
    throw new UserError(`angles ${al}, ${be}, ${ga} degrees give a cell of zero volume`, undefined, where);
  if (!(centerings as readonly string[]).includes(cell.centering)) {
    throw new UserError(
      `unknown centering '${cell.centering}' (expected one of ${centerings.join(', ')})`,
      undefined,
      where,
    );
  }
}

/** 1 - cos^2 al - cos^2 be - cos^2 ga + 2 cos al cos be cos ga: V^2 / (abc)^2. */
function volumeFactorSquared(cell: UnitCell): number {
  const ca = Math.cos(cell.alphaDeg * deg);
  const cb = Math.cos(cell.betaDeg * deg);
  const cg = Math.cos(cell.gammaDeg * deg);
  return 1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg;
}

/** Cell volume, cubic angstrom. */
export function cellVolumeA3(cell: UnitCell): number {
  return cell.aA * cell.bA * cell.cA * Math.sqrt(volumeFactorSquared(cell));
}

/** Rows a, b, c (angstrom) in the crystal frame: a along x, b in the xy plane. */
export function directMatrix(cell: UnitCell): Float64Array {
  const ca = Math.cos(cell.alphaDeg * deg);
  const cb = Math.cos(cell.betaDeg * deg);
  const cg = Math.cos(cell.gammaDeg * deg);
  const sg = Math.sin(cell.gammaDeg * deg);
  const cx = cell.cA * cb;
  const cy = (cell.cA * (ca - cb * cg)) / sg;
  const cz = Math.sqrt(Math.max(0, cell.cA * cell.cA - cx * cx - cy * cy));
  return new Float64Array([cell.aA, 0, 0, cell.bA * cg, cell.bA * sg, 0, cx, cy, cz]);
}

function cross(m: Float64Array, i: number, j: number, out: Float64Array, o: number): void {
  const ax = m[3 * i];
  const ay = m[3 * i + 1];
  const az = m[3 * i + 2];
  const bx = m[3 * j];
  const by = m[3 * j + 1];
  const bz = m[3 * j + 2];
  out[o] = ay * bz - az * by;
  out[o + 1] = az * bx - ax * bz;
  out[o + 2] = ax * by - ay * bx;
}

/** Determinant of a row-major 3x3 matrix. */
export function det3(m: ArrayLike<number>): number {
  return (
    m[0] * (m[4] * m[8] - m[5] * m[7]) -
    m[1] * (m[3] * m[8] - m[5] * m[6]) +
    m[2] * (m[3] * m[7] - m[4] * m[6])
  );
}

/**
 * The reciprocal basis of a basis given as rows: a* = (b x c) / V, ... so that a_i . a*_j = delta_ij.
 * Works both ways (the reciprocal of the reciprocal is the direct basis).
 */
export function reciprocalOf(rows: Float64Array): Float64Array {
  const out = new Float64Array(9);
  cross(rows, 1, 2, out, 0);
  cross(rows, 2, 0, out, 3);
  cross(rows, 0, 1, out, 6);
  const volume = det3(rows);
  for (let i = 0; i < 9; i++) out[i] /= volume;
  return out;
}

/** Rows a*, b*, c* (1/angstrom) in the crystal frame. */
export function reciprocalMatrix(cell: UnitCell): Float64Array {
  return reciprocalOf(directMatrix(cell));
}

/** Cell edges (angstrom) and angles (degrees) of a basis given as rows (e.g. a rotated direct basis). */
export function cellOfBasis(rows: ArrayLike<number>): {
  edgesA: [number, number, number];
  anglesDeg: [number, number, number];
} {
  const v = (i: number) => [rows[3 * i], rows[3 * i + 1], rows[3 * i + 2]];
  const len = (x: number[]) => Math.hypot(x[0], x[1], x[2]);
  const angle = (x: number[], y: number[]) =>
    Math.acos(Math.max(-1, Math.min(1, (x[0] * y[0] + x[1] * y[1] + x[2] * y[2]) / (len(x) * len(y))))) / deg;
  const [a, b, c] = [v(0), v(1), v(2)];
  return { edgesA: [len(a), len(b), len(c)], anglesDeg: [angle(b, c), angle(a, c), angle(a, b)] };
}

/** True when the lattice centering allows reflection hkl (the general condition only). */
export function centeringAllows(h: number, k: number, l: number, centering: string): boolean {
  switch (centering) {
    case 'A':
      return ((k + l) & 1) === 0;
    case 'B':
      return ((h + l) & 1) === 0;
    case 'C':
      return ((h + k) & 1) === 0;
    case 'I':
      return ((h + k + l) & 1) === 0;
    case 'F':
      return ((h + k) & 1) === 0 && ((h + l) & 1) === 0;
    case 'R':
      return (((-h + k + l) % 3) + 3) % 3 === 0;
    default:
      return true;
  }
}

/** A screw axis along a cell edge: reflections on that axis need index = n * m (e.g. 6_1 on c: 00l, l = 6m). */
export interface ScrewAxis {
  axis: 'a' | 'b' | 'c';
  /** The index along the axis must be a multiple of this. */
  multiple: number;
}

/** Axial (screw) absences of a few space groups that protein crystals often take. */
const screwAxesBySpaceGroup: Record<string, ScrewAxis[]> = {
  P1: [],
  P21: [{ axis: 'b', multiple: 2 }],
  C2: [],
  P222: [],
  P212121: [
    { axis: 'a', multiple: 2 },
    { axis: 'b', multiple: 2 },
    { axis: 'c', multiple: 2 },
  ],
  P21212: [
    { axis: 'a', multiple: 2 },
    { axis: 'b', multiple: 2 },
  ],
  C2221: [{ axis: 'c', multiple: 2 }],
  I222: [],
  P41212: [
    { axis: 'a', multiple: 2 },
    { axis: 'b', multiple: 2 },
    { axis: 'c', multiple: 4 },
  ],
  P43212: [
    { axis: 'a', multiple: 2 },
    { axis: 'b', multiple: 2 },
    { axis: 'c', multiple: 4 },
  ],
  P3121: [{ axis: 'c', multiple: 3 }],
  P3221: [{ axis: 'c', multiple: 3 }],
  P6122: [{ axis: 'c', multiple: 6 }],
  P6522: [{ axis: 'c', multiple: 6 }],
  P63: [{ axis: 'c', multiple: 2 }],
  I23: [],
  P213: [
    { axis: 'a', multiple: 2 },
    { axis: 'b', multiple: 2 },
    { axis: 'c', multiple: 2 },
  ],
};

export const knownSpaceGroups = Object.keys(screwAxesBySpaceGroup);

/** Screw axes of a space group symbol written without spaces (`P6122`); a UserError for unknown ones. */
export function screwAxesOf(spaceGroup: string, where = 'space group'): ScrewAxis[] {
  const axes = screwAxesBySpaceGroup[spaceGroup.replace(/\s+/g, '')];
  if (axes === undefined)
    throw new UserError(
      `unknown space group '${spaceGroup}' (known: ${knownSpaceGroups.join(', ')})`,
      undefined,
      where,
    );
  return axes;
}

/** True unless a screw axis forbids hkl. */
export function screwAxesAllow(h: number, k: number, l: number, axes: readonly ScrewAxis[]): boolean {
  for (const { axis, multiple } of axes) {
    if (axis === 'a' && k === 0 && l === 0 && h % multiple !== 0) return false;
    if (axis === 'b' && h === 0 && l === 0 && k % multiple !== 0) return false;
    if (axis === 'c' && h === 0 && k === 0 && l % multiple !== 0) return false;
  }
  return true;
}

/** CrystFEL's lattice type name for a cell (used in streams). */
export function latticeTypeOf(cell: UnitCell): string {
  const close = (x: number, y: number) => Math.abs(x - y) < 1e-3;
  const right = (x: number) => close(x, 90);
  const { aA: a, bA: b, cA: c, alphaDeg: al, betaDeg: be, gammaDeg: ga } = cell;
  if (right(al) && right(be) && close(ga, 120) && close(a, b)) return 'hexagonal';
  if (right(al) && right(be) && right(ga)) {
    if (close(a, b) && close(b, c)) return 'cubic';
    if (close(a, b)) return 'tetragonal';
    return 'orthorhombic';
  }
  if (close(al, be) && close(be, ga) && close(a, b) && close(b, c)) return 'rhombohedral';
  if ((right(al) && right(ga)) || (right(al) && right(be)) || (right(be) && right(ga))) return 'monoclinic';
  return 'triclinic';
}
