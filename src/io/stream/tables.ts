/**
 * The two tables of a stream: found peaks per chunk and reflections per crystal. Rows are read into
 * growable typed arrays (no object per row) and written with CrystFEL's printf formats:
 *   peaks:       `%7.2f %7.2f %10.2f  %10.2f   %s`
 *   reflections: `%4i %4i %4i %10.2f %10.2f %10.2f %10.2f %6.1f %6.1f %s`
 * (libcrystfel/src/stream.c, write_peaks and write_stream_reflections; formats before 2.3 lack the
 * panel column). Values are kept as float64 so that a parsed `%.2f` token prints back identically.
 */
import { formatFixed, formatInt, padStart, parseCInt, parseCNumber, sameNumber } from './cformat.js';
import type { PeakTable, ReflectionTable } from './types.js';

export const PEAK_HEADER = '  fs/px   ss/px (1/d)/nm^-1   Intensity  Panel';
export const PEAK_HEADER_NO_PANEL = '  fs/px   ss/px (1/d)/nm^-1   Intensity';
export const REFLECTION_HEADER =
  '   h    k    l          I   sigma(I)       peak background  fs/px  ss/px panel';
export const REFLECTION_HEADER_NO_PANEL =
  '   h    k    l          I   sigma(I)       peak background  fs/px  ss/px';

const BLANKS = /\s+/;

function tokens(line: string): string[] {
  const trimmed = line.trim();
  return trimmed === '' ? [] : trimmed.split(BLANKS);
}

/** Growable column storage for one table while its rows are read. */
class Columns {
  rows = 0;
  capacity = 32;
  readonly floats: Float64Array[];
  readonly ints: Int32Array[];
  panelIndex = new Int32Array(32);
  readonly panelNames: string[] = [];
  private readonly panelLookup = new Map<string, number>();
  verbatimRows?: Map<number, string>;

  constructor(floatColumns: number, intColumns: number) {
    this.floats = Array.from({ length: floatColumns }, () => new Float64Array(this.capacity));
    this.ints = Array.from({ length: intColumns }, () => new Int32Array(this.capacity));
  }

  /** Makes room for one more row. */
  grow(): void {
    if (this.rows < this.capacity) return;
    this.capacity *= 2;
    const widen = <T extends Float64Array | Int32Array>(old: T): T => {
      const next = new (old.constructor as new (n: number) => T)(this.capacity);
      next.set(old);
      return next;
    };
    for (let i = 0; i < this.floats.length; i++) this.floats[i] = widen(this.floats[i]);
    for (let i = 0; i < this.ints.length; i++) this.ints[i] = widen(this.ints[i]);
    this.panelIndex = widen(this.panelIndex);
  }

  panel(name: string): number {
    let index = this.panelLookup.get(name);
    if (index === undefined) {
      index = this.panelNames.length;
      this.panelNames.push(name);
      this.panelLookup.set(name, index);
    }
    return index;
  }

  keepRow(line: string): void {
    if (this.verbatimRows === undefined) this.verbatimRows = new Map();
    this.verbatimRows.set(this.rows, line);
  }
}

/** Trims a column to its row count (a copy, so the spare capacity is freed). */
function exact<T extends Float64Array | Int32Array>(column: T, rows: number): T {
  return column.slice(0, rows) as T;
}

function readNumber(token: string, column: string): number | string {
  const value = parseCNumber(token);
  return value === undefined ? `bad number '${token}' in column ${column}` : value;
}

/** One numeric column of a printf row: `sep` blanks, then the value right-aligned in `width`. */
interface ColumnLayout {
  sep: number;
  width: number;
  /** Digits after the point (`%W.Df`), or -1 for an integer (`%Wi`). */
  decimals: number;
}

/** A row as printf writes it: the numeric columns, then `panelSep` blanks and the panel (-1: none). */
interface RowLayout {
  columns: ColumnLayout[];
  panelSep: number;
}

const f2 = (sep: number, width: number): ColumnLayout => ({ sep, width, decimals: 2 });
const PEAK_COLUMNS = [f2(0, 7), f2(1, 7), f2(1, 10), f2(2, 10)];
const REFLECTION_COLUMNS: ColumnLayout[] = [
  { sep: 0, width: 4, decimals: -1 },
  { sep: 1, width: 4, decimals: -1 },
  { sep: 1, width: 4, decimals: -1 },
  f2(1, 10),
  f2(1, 10),
  f2(1, 10),
  f2(1, 10),
  { sep: 1, width: 6, decimals: 1 },
  { sep: 1, width: 6, decimals: 1 },
];
const POWERS_OF_TEN = [1, 10, 100, 1000, 10000, 100000, 1000000];

/**
 * The fast path for rows exactly as CrystFEL writes them: one pass over the characters reads each
 * value into `out` and checks that the row is the printf output of those values (padding included,
 * numbers in the canonical form printf gives). Returns where the panel name starts (the line's
 * length without a panel column), or -1 for any other row, which then takes the general path.
 */
function scanCanonicalRow(line: string, layout: RowLayout, out: Float64Array): number {
  const n = line.length;
  let pos = 0;
  for (let c = 0; c < layout.columns.length; c++) {
    const column = layout.columns[c];
    let blanks = 0;
    while (pos < n && line.charCodeAt(pos) === 32) {
      pos++;
      blanks++;
    }
    const start = pos;
    const negative = line.charCodeAt(pos) === 45;
    if (negative) pos++;
    const digitsStart = pos;
    let whole = 0;
    while (pos < n) {
      const digit = line.charCodeAt(pos) - 48;
      if (digit < 0 || digit > 9) break;
      whole = whole * 10 + digit;
      pos++;
    }
    const digits = pos - digitsStart;
    // At most 13 digits before the point keeps value*100 exact and its printf output equal to the text.
    if (digits === 0 || digits > 13 || (digits > 1 && line.charCodeAt(digitsStart) === 48)) return -1;
    let value = whole;
    if (column.decimals >= 0) {
      if (line.charCodeAt(pos) !== 46) return -1;
      pos++;
      let fraction = 0;
      for (let i = 0; i < column.decimals; i++) {
        const digit = line.charCodeAt(pos) - 48;
        if (!(digit >= 0 && digit <= 9)) return -1;
        fraction = fraction * 10 + digit;
        pos++;
      }
      const scale = POWERS_OF_TEN[column.decimals];
      // An exact integer divided by a power of ten: the same double as Number(text).
      value = (whole * scale + fraction) / scale;
    } else if (digits > 9 || (negative && whole === 0)) return -1;
    if (pos < n && line.charCodeAt(pos) !== 32) return -1;
    const length = pos - start;
    if (blanks !== column.sep + (length < column.width ? column.width - length : 0)) return -1;
    out[c] = negative ? -value : value;
  }
  if (layout.panelSep < 0) return pos === n ? n : -1;
  let blanks = 0;
  while (pos < n && line.charCodeAt(pos) === 32) {
    pos++;
    blanks++;
  }
  if (blanks !== layout.panelSep || pos === n) return -1;
  const panelStart = pos;
  for (; pos < n; pos++) {
    const code = line.charCodeAt(pos);
    if (code < 33 || code > 126) return -1;
  }
  return panelStart;
}

/** Reads the rows of a peak table. */
export class PeakTableBuilder {
  private readonly columns = new Columns(4, 0);
  private readonly layout: RowLayout;
  private readonly scratch = new Float64Array(4);
  constructor(readonly hasPanelColumn: boolean) {
    this.layout = { columns: PEAK_COLUMNS, panelSep: hasPanelColumn ? 3 : -1 };
  }

  /** Adds one row; returns what is wrong with it, or undefined. */
  addRow(line: string): string | undefined {
    const c = this.columns;
    c.grow();
    const row = c.rows;
    const panelStart = scanCanonicalRow(line, this.layout, this.scratch);
    if (panelStart >= 0) {
      for (let i = 0; i < 4; i++) c.floats[i][row] = this.scratch[i];
      c.panelIndex[row] = this.hasPanelColumn ? c.panel(line.slice(panelStart)) : -1;
      c.rows++;
      return undefined;
    }
    const parts = tokens(line);
    const expected = this.hasPanelColumn ? 5 : 4;
    if (parts.length !== expected) return `a peak row needs ${expected} columns, found ${parts.length}`;
    const names = ['fs/px', 'ss/px', '(1/d)/nm^-1', 'Intensity'];
    for (let i = 0; i < 4; i++) {
      const value = readNumber(parts[i], names[i]);
      if (typeof value === 'string') return value;
      c.floats[i][row] = value;
    }
    c.panelIndex[row] = this.hasPanelColumn ? c.panel(parts[4]) : -1;
    const f = c.floats;
    if (formatPeakRow(f[0][row], f[1][row], f[2][row], f[3][row], parts[4]) !== line) c.keepRow(line);
    c.rows++;
    return undefined;
  }

  finish(): PeakTable {
    const c = this.columns;
    const table: PeakTable = {
      fsPx: exact(c.floats[0], c.rows),
      ssPx: exact(c.floats[1], c.rows),
      oneOverDPerNm: exact(c.floats[2], c.rows),
      intensity: exact(c.floats[3], c.rows),
      panelIndex: exact(c.panelIndex, c.rows),
      panelNames: c.panelNames,
      hasPanelColumn: this.hasPanelColumn,
    };
    if (c.verbatimRows) table.verbatimRows = c.verbatimRows;
    return table;
  }
}

/** Reads the rows of a reflection table. */
export class ReflectionTableBuilder {
  private readonly columns = new Columns(6, 3);
  private readonly layout: RowLayout;
  private readonly scratch = new Float64Array(9);
  constructor(readonly hasPanelColumn: boolean) {
    this.layout = { columns: REFLECTION_COLUMNS, panelSep: hasPanelColumn ? 1 : -1 };
  }

  addRow(line: string): string | undefined {
    const c = this.columns;
    c.grow();
    const row = c.rows;
    const panelStart = scanCanonicalRow(line, this.layout, this.scratch);
    if (panelStart >= 0) {
      const s = this.scratch;
      for (let i = 0; i < 3; i++) c.ints[i][row] = s[i];
      for (let i = 0; i < 6; i++) c.floats[i][row] = s[i + 3];
      c.panelIndex[row] = this.hasPanelColumn ? c.panel(line.slice(panelStart)) : -1;
      c.rows++;
      return undefined;
    }
    const parts = tokens(line);
    const expected = this.hasPanelColumn ? 10 : 9;
    if (parts.length !== expected) return `a reflection row needs ${expected} columns, found ${parts.length}`;
    const intNames = ['h', 'k', 'l'];
    for (let i = 0; i < 3; i++) {
      const value = parseCInt(parts[i]);
      if (value === undefined) return `bad integer '${parts[i]}' in column ${intNames[i]}`;
      c.ints[i][row] = value;
    }
    const floatNames = ['I', 'sigma(I)', 'peak', 'background', 'fs/px', 'ss/px'];
    for (let i = 0; i < 6; i++) {
      const value = readNumber(parts[i + 3], floatNames[i]);
      if (typeof value === 'string') return value;
      c.floats[i][row] = value;
    }
    c.panelIndex[row] = this.hasPanelColumn ? c.panel(parts[9]) : -1;
    const f = c.floats;
    const [h, k, l] = [c.ints[0][row], c.ints[1][row], c.ints[2][row]];
    const text = formatReflectionRow(
      h,
      k,
      l,
      f[0][row],
      f[1][row],
      f[2][row],
      f[3][row],
      f[4][row],
      f[5][row],
      parts[9],
    );
    if (text !== line) c.keepRow(line);
    c.rows++;
    return undefined;
  }

  finish(): ReflectionTable {
    const c = this.columns;
    const table: ReflectionTable = {
      h: exact(c.ints[0], c.rows),
      k: exact(c.ints[1], c.rows),
      l: exact(c.ints[2], c.rows),
      intensity: exact(c.floats[0], c.rows),
      sigma: exact(c.floats[1], c.rows),
      peak: exact(c.floats[2], c.rows),
      background: exact(c.floats[3], c.rows),
      fsPx: exact(c.floats[4], c.rows),
      ssPx: exact(c.floats[5], c.rows),
      panelIndex: exact(c.panelIndex, c.rows),
      panelNames: c.panelNames,
      hasPanelColumn: this.hasPanelColumn,
    };
    if (c.verbatimRows) table.verbatimRows = c.verbatimRows;
    return table;
  }
}

/** One peak row as CrystFEL writes it; `panel` undefined for the panel-less format. */
export function formatPeakRow(
  fs: number,
  ss: number,
  oneOverD: number,
  intensity: number,
  panel?: string,
): string {
  const text = `${padStart(formatFixed(fs, 2), 7)} ${padStart(formatFixed(ss, 2), 7)} ${padStart(formatFixed(oneOverD, 2), 10)}  ${padStart(formatFixed(intensity, 2), 10)}`;
  return panel === undefined ? text : `${text}   ${panel}`;
}

export function formatReflectionRow(
  h: number,
  k: number,
  l: number,
  intensity: number,
  sigma: number,
  peak: number,
  background: number,
  fs: number,
  ss: number,
  panel?: string,
): string {
  const text =
    `${padStart(formatInt(h), 4)} ${padStart(formatInt(k), 4)} ${padStart(formatInt(l), 4)} ` +
    `${padStart(formatFixed(intensity, 2), 10)} ${padStart(formatFixed(sigma, 2), 10)} ` +
    `${padStart(formatFixed(peak, 2), 10)} ${padStart(formatFixed(background, 2), 10)} ` +
    `${padStart(formatFixed(fs, 1), 6)} ${padStart(formatFixed(ss, 1), 6)}`;
  return panel === undefined ? text : `${text} ${panel}`;
}

function panelName(
  names: string[],
  index: number,
  hasPanelColumn: boolean,
  table: string,
  row: number,
): string | undefined {
  if (!hasPanelColumn) return undefined;
  const name = names[index];
  if (name === undefined)
    throw new Error(`${table} row ${row}: panelIndex ${index} has no entry in panelNames`);
  return name;
}

function checkLengths(table: string, columns: ArrayLike<number>[]): number {
  const rows = columns[0].length;
  if (columns.some((column) => column.length !== rows)) throw new Error(`${table}: columns differ in length`);
  return rows;
}

/** Re-reading a kept row gives the row's current values: the kept text may still be written. */
function keptRowStillValid(
  kept: string,
  expected: number[],
  panel: string | undefined,
  integerColumns: number,
): boolean {
  const parts = tokens(kept);
  if (parts.length !== expected.length + (panel === undefined ? 0 : 1)) return false;
  for (let i = 0; i < expected.length; i++) {
    const value = i < integerColumns ? parseCInt(parts[i]) : parseCNumber(parts[i]);
    if (value === undefined || !sameNumber(value, expected[i])) return false;
  }
  return panel === undefined || parts[expected.length] === panel;
}

/** The peak table's lines (markers included), each ending in a newline. */
export function formatPeakTable(table: PeakTable, begin: string, end: string): string {
  const rows = checkLengths('peak table', [
    table.fsPx,
    table.ssPx,
    table.oneOverDPerNm,
    table.intensity,
    table.panelIndex,
  ]);
  const parts: string[] = [begin, table.hasPanelColumn ? PEAK_HEADER : PEAK_HEADER_NO_PANEL];
  for (let i = 0; i < rows; i++) {
    const panel = panelName(table.panelNames, table.panelIndex[i], table.hasPanelColumn, 'peak table', i);
    const values = [table.fsPx[i], table.ssPx[i], table.oneOverDPerNm[i], table.intensity[i]];
    const kept = table.verbatimRows?.get(i);
    if (kept !== undefined && keptRowStillValid(kept, values, panel, 0)) parts.push(kept);
    else parts.push(formatPeakRow(values[0], values[1], values[2], values[3], panel));
  }
  parts.push(end, '');
  return parts.join('\n');
}

/** The reflection table's lines (markers included), each ending in a newline. */
export function formatReflectionTable(table: ReflectionTable, begin: string, end: string): string {
  const t = table;
  const rows = checkLengths('reflection table', [
    t.h,
    t.k,
    t.l,
    t.intensity,
    t.sigma,
    t.peak,
    t.background,
    t.fsPx,
    t.ssPx,
    t.panelIndex,
  ]);
  const parts: string[] = [begin, t.hasPanelColumn ? REFLECTION_HEADER : REFLECTION_HEADER_NO_PANEL];
  for (let i = 0; i < rows; i++) {
    const panel = panelName(t.panelNames, t.panelIndex[i], t.hasPanelColumn, 'reflection table', i);
    const kept = t.verbatimRows?.get(i);
    const values = [
      t.h[i],
      t.k[i],
      t.l[i],
      t.intensity[i],
      t.sigma[i],
      t.peak[i],
      t.background[i],
      t.fsPx[i],
      t.ssPx[i],
    ];
    if (kept !== undefined && keptRowStillValid(kept, values, panel, 3)) parts.push(kept);
    else
      parts.push(
        formatReflectionRow(
          t.h[i],
          t.k[i],
          t.l[i],
          t.intensity[i],
          t.sigma[i],
          t.peak[i],
          t.background[i],
          t.fsPx[i],
          t.ssPx[i],
          panel,
        ),
      );
  }
  parts.push(end, '');
  return parts.join('\n');
}

/** Which layout a table header line announces, or undefined for one this reader does not know. */
export function peakHeaderLayout(line: string): { hasPanelColumn: boolean } | undefined {
  if (line === PEAK_HEADER) return { hasPanelColumn: true };
  if (line === PEAK_HEADER_NO_PANEL) return { hasPanelColumn: false };
  return undefined;
}

export function reflectionHeaderLayout(line: string): { hasPanelColumn: boolean } | undefined {
  if (line === REFLECTION_HEADER) return { hasPanelColumn: true };
  if (line === REFLECTION_HEADER_NO_PANEL) return { hasPanelColumn: false };
  return undefined;
}

/** An empty peak table with room for nothing; fill its arrays in code. */
export function emptyPeakTable(panelNames: string[] = []): PeakTable {
  return {
    fsPx: new Float64Array(0),
    ssPx: new Float64Array(0),
    oneOverDPerNm: new Float64Array(0),
    intensity: new Float64Array(0),
    panelIndex: new Int32Array(0),
    panelNames,
    hasPanelColumn: true,
  };
}
