/**
 * The `key = value` lines of stream records (header, chunk, crystal): how each is recognised, read
 * into typed fields and written back with CrystFEL's printf formats; and the ordering rules that let a
 * record read from a file be written back line for line.
 */
import {
  formatExponent,
  formatFixed,
  formatInt,
  formatSignedFixed,
  parseCInt,
  parseCNumber,
  sameNumber,
} from './cformat.js';
import type { LineRecordExtras, StreamChunk, StreamCrystal, StreamHeader } from './types.js';

/** One kind of line: `prefix` identifies it; the rest of the line holds one or more values. */
export interface LineField<R> {
  tag: string;
  prefix: string;
  /** The record properties this line sets (all set together). */
  keys: readonly string[];
  /** Parses the text after the prefix into the properties, or returns what is wrong with it. */
  read(rest: string): Partial<R> | string;
  /** The text after the prefix for the record's current values (CrystFEL's format). */
  write(record: R): string;
  /**
   * True for the lines the data engine needs (image, event, beam, cell): malformed, they are an
   * error. Any other line that does not read is kept verbatim as an unmodelled line, with a warning,
   * so a newer CrystFEL's variant of a line nobody needs never stops a run.
   */
  required?: boolean;
}

type Format = (value: number) => string;

interface Slot {
  key: string;
  /** Component of a Vec3 property; absent for a plain number. */
  index?: number;
  format: Format;
  integer?: boolean;
}

const fixed =
  (decimals: number): Format =>
  (v) =>
    formatFixed(v, decimals);
const signedFixed =
  (decimals: number): Format =>
  (v) =>
    formatSignedFixed(v, decimals);
const exponent =
  (decimals: number): Format =>
  (v) =>
    formatExponent(v, decimals);

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A line of numbers and fixed words: `template` is the text after the prefix with `#` for each slot,
 * e.g. `# nm^-1 or # A`. Reading tolerates any run of blanks where the template has one (other
 * writers pad differently; such lines are kept verbatim).
 */
function numbersField<R>(tag: string, prefix: string, template: string, slots: Slot[]): LineField<R> {
  const literals = template.split('#');
  if (literals.length !== slots.length + 1)
    throw new Error(`template ${template} needs ${slots.length} slots`);
  const literal = (text: string) => escapeRegExp(text).replace(/ +/g, '\\s+');
  const pattern = new RegExp(`^\\s*${literals.map(literal).join('(\\S+)')}\\s*$`);
  const keys = [...new Set(slots.map((slot) => slot.key))];
  const shape = `'${prefix}${template.replaceAll('#', 'VALUE')}'`;
  return {
    tag,
    prefix,
    keys,
    read(rest) {
      const match = pattern.exec(rest);
      if (match === null) return `expected ${shape}`;
      const out: Record<string, unknown> = {};
      for (let i = 0; i < slots.length; i++) {
        const slot = slots[i];
        const token = match[i + 1];
        const value = slot.integer ? parseCInt(token) : parseCNumber(token);
        if (value === undefined) return `bad ${slot.integer ? 'integer' : 'number'} '${token}' in ${shape}`;
        if (slot.index === undefined) out[slot.key] = value;
        else {
          if (out[slot.key] === undefined) out[slot.key] = [0, 0, 0];
          (out[slot.key] as number[])[slot.index] = value;
        }
      }
      return out as Partial<R>;
    },
    write(record) {
      const values = record as Record<string, unknown>;
      let text = literals[0];
      for (let i = 0; i < slots.length; i++) {
        const slot = slots[i];
        const raw = values[slot.key];
        const value = slot.index === undefined ? raw : (raw as number[] | undefined)?.[slot.index];
        if (typeof value !== 'number') throw new Error(`stream ${tag}: ${slot.key} must be a number or Vec3`);
        text += slot.format(value) + literals[i + 1];
      }
      return text;
    },
  };
}

function textField<R>(tag: string, prefix: string, key: string): LineField<R> {
  return {
    tag,
    prefix,
    keys: [key],
    read: (rest) => ({ [key]: rest }) as Partial<R>,
    write: (record) => String((record as Record<string, unknown>)[key]),
  };
}

const number = (key: string, format: Format): Slot => ({ key, format });

/**
 * `predict_refine/initial_residual` and `final_residual`: CrystFEL 0.9 writes one number (`%e`),
 * 0.10 and later add the three components in parentheses (`%f (%f %f %f)`).
 */
function residualField<R>(tag: string, prefix: string, key: string): LineField<R> {
  const partsKey = `${key}Parts`;
  const bare = numbersField<R>(tag, prefix, '#', [number(key, exponent(6))]);
  const withParts = numbersField<R>(tag, prefix, '# (# # #)', [
    number(key, fixed(6)),
    ...vector(partsKey, fixed(6)),
  ]);
  return {
    tag,
    prefix,
    keys: [key, partsKey],
    read(rest) {
      const values = withParts.read(rest);
      if (typeof values !== 'string') return values;
      const single = bare.read(rest);
      return typeof single === 'string'
        ? `expected '${prefix}VALUE' or '${prefix}VALUE (VALUE VALUE VALUE)'`
        : single;
    },
    write: (record) =>
      (record as Record<string, unknown>)[partsKey] === undefined
        ? bare.write(record)
        : withParts.write(record),
  };
}
const integer = (key: string): Slot => ({ key, format: formatInt, integer: true });
const vector = (key: string, format: Format): Slot[] => [0, 1, 2].map((index) => ({ key, index, format }));

function required<R>(field: LineField<R>): LineField<R> {
  return { ...field, required: true };
}

const hitField: LineField<StreamChunk> = {
  tag: 'hit',
  prefix: 'hit = ',
  keys: ['hit'],
  read(rest) {
    const value = parseCInt(rest.trim());
    if (value !== 0 && value !== 1) return `expected 'hit = 0' or 'hit = 1', found 'hit = ${rest}'`;
    return { hit: value === 1 };
  },
  write: (chunk) => (chunk.hit ? '1' : '0'),
  required: true,
};

/** `CrystFEL stream format 2.3`: the first line of every stream. */
export const FORMAT_LINE = /^CrystFEL stream format (\d+)\.(\d+)$/;
export const FORMAT_PREFIX = 'CrystFEL stream format ';

export const headerFields: LineField<StreamHeader>[] = [
  textField('crystfelVersion', 'Generated by CrystFEL ', 'crystfelVersion'),
  textField('indexingMethods', 'Indexing methods selected: ', 'indexingMethods'),
];

/** Canonical order of the header's parts (after the format line). */
export const headerOrder = [
  'crystfelVersion',
  'commandLine',
  'indexingMethods',
  'other',
  'geometry',
  'unitCell',
];

export const chunkFields: LineField<StreamChunk>[] = [
  required(textField('imageFilename', 'Image filename: ', 'imageFilename')),
  required(textField('event', 'Event: ', 'event')),
  numbersField('serial', 'Image serial number: ', '#', [integer('serial')]),
  hitField,
  textField('indexedBy', 'indexed_by = ', 'indexedBy'),
  numbersField('nIndexingTries', 'n_indexing_tries = ', '#', [integer('nIndexingTries')]),
  required(numbersField('photonEnergyEv', 'photon_energy_eV = ', '#', [number('photonEnergyEv', fixed(6))])),
  numbersField('beamDivergence', 'beam_divergence = ', '# rad', [number('beamDivergenceRad', exponent(2))]),
  numbersField('beamBandwidth', 'beam_bandwidth = ', '# (fraction)', [number('beamBandwidth', exponent(2))]),
  required(
    numbersField('averageCameraLength', 'average_camera_length = ', '# m', [
      number('averageCameraLengthM', fixed(6)),
    ]),
  ),
  numbersField('numPeaks', 'num_peaks = ', '#', [integer('numPeaks')]),
  numbersField('peakResolution', 'peak_resolution = ', '# nm^-1 or # A', [
    number('peakResolutionPerNm', fixed(6)),
    number('peakResolutionA', fixed(6)),
  ]),
];

/**
 * Canonical chunk order, as CrystFEL's stream_write_chunk writes it; `other` sits where CrystFEL
 * writes the cached image-header values (`hdf5/...`, `header/float/...`).
 */
export const chunkOrder = [
  'imageFilename',
  'event',
  'serial',
  'hit',
  'indexedBy',
  'nIndexingTries',
  'photonEnergyEv',
  'beamDivergence',
  'beamBandwidth',
  'other',
  'averageCameraLength',
  'numPeaks',
  'peakResolution',
  'peaks',
  'crystal',
];

export const crystalFields: LineField<StreamCrystal>[] = [
  required(
    numbersField('cell', 'Cell parameters ', '# # # nm, # # # deg', [
      ...vector('cellNm', fixed(5)),
      ...vector('anglesDeg', fixed(5)),
    ]),
  ),
  required(numbersField('astar', 'astar = ', '# # # nm^-1', vector('astarPerNm', signedFixed(7)))),
  required(numbersField('bstar', 'bstar = ', '# # # nm^-1', vector('bstarPerNm', signedFixed(7)))),
  required(numbersField('cstar', 'cstar = ', '# # # nm^-1', vector('cstarPerNm', signedFixed(7)))),
  textField('latticeType', 'lattice_type = ', 'latticeType'),
  textField('centering', 'centering = ', 'centering'),
  textField('uniqueAxis', 'unique_axis = ', 'uniqueAxis'),
  numbersField('profileRadius', 'profile_radius = ', '# nm^-1', [number('profileRadiusPerNm', fixed(5))]),
  residualField('initialResidual', 'predict_refine/initial_residual = ', 'predictRefineInitialResidual'),
  residualField('finalResidual', 'predict_refine/final_residual = ', 'predictRefineFinalResidual'),
  numbersField('detShift', 'predict_refine/det_shift x = ', '# y = # mm', [
    number('detShiftXMm', fixed(3)),
    number('detShiftYMm', fixed(3)),
  ]),
  numbersField('resolutionLimit', 'diffraction_resolution_limit = ', '# nm^-1 or # A', [
    number('resolutionLimitPerNm', fixed(2)),
    number('resolutionLimitA', fixed(2)),
  ]),
  numbersField('numReflections', 'num_reflections = ', '#', [integer('numReflections')]),
  numbersField('numSaturatedReflections', 'num_saturated_reflections = ', '#', [
    integer('numSaturatedReflections'),
  ]),
  numbersField('numImplausibleReflections', 'num_implausible_reflections = ', '#', [
    integer('numImplausibleReflections'),
  ]),
];

/** Canonical crystal order, as CrystFEL's write_crystal writes it (`other`: the crystal's notes). */
export const crystalOrder = [
  'cell',
  'astar',
  'bstar',
  'cstar',
  'latticeType',
  'centering',
  'uniqueAxis',
  'profileRadius',
  'initialResidual',
  'finalResidual',
  'other',
  'detShift',
  'resolutionLimit',
  'numReflections',
  'numSaturatedReflections',
  'numImplausibleReflections',
  'reflections',
];

/** The field whose prefix starts `line`, if any. */
export function findField<R>(fields: readonly LineField<R>[], line: string): LineField<R> | undefined {
  for (const field of fields) if (line.startsWith(field.prefix)) return field;
  return undefined;
}

/**
 * Reads one field line into `record`: sets its properties, notes its place in `lineOrder` and keeps
 * its text when CrystFEL's format would not reproduce it. Returns an error message, or undefined.
 */
export function readFieldLine<R extends LineRecordExtras>(
  record: R,
  field: LineField<R>,
  line: string,
  seen: Set<string>,
): string | undefined {
  if (seen.has(field.tag)) return `second '${field.prefix.trim()}' line in the same record`;
  seen.add(field.tag);
  const values = field.read(line.slice(field.prefix.length));
  if (typeof values === 'string') return values;
  Object.assign(record, values);
  if (record.lineOrder === undefined) record.lineOrder = [];
  record.lineOrder.push(field.tag);
  if (field.prefix + field.write(record) !== line) {
    if (record.verbatim === undefined) record.verbatim = {};
    record.verbatim[field.tag] = line;
  }
  return undefined;
}

/** True when the record sets any property of `field`. */
export function hasField<R>(record: R, field: LineField<R>): boolean {
  const values = record as Record<string, unknown>;
  return field.keys.some((key) => values[key] !== undefined);
}

/** The line for `field`: its kept text while the values still match it, else CrystFEL's format. */
export function writeFieldLine<R extends LineRecordExtras>(record: R, field: LineField<R>): string {
  const kept = record.verbatim?.[field.tag];
  if (kept?.startsWith(field.prefix)) {
    const values = field.read(kept.slice(field.prefix.length));
    if (typeof values !== 'string' && sameValues(values as Record<string, unknown>, record, field.keys))
      return kept;
  }
  return field.prefix + field.write(record);
}

function sameValues(a: Record<string, unknown>, record: unknown, keys: readonly string[]): boolean {
  const b = record as Record<string, unknown>;
  for (const key of keys) {
    const x = a[key];
    const y = b[key];
    if (Array.isArray(x) && Array.isArray(y)) {
      if (x.length !== y.length || x.some((v, i) => !sameNumber(v, y[i]))) return false;
    } else if (typeof x === 'number' && typeof y === 'number') {
      if (!sameNumber(x, y)) return false;
    } else if (x !== y) return false;
  }
  return true;
}

/** A piece of a record to write: its tag and its text (one or more whole lines). */
export interface RecordUnit {
  tag: string;
  text: string;
}

/**
 * Puts a record's pieces in order: first as `lineOrder` lists them (what the file had), then each
 * piece it does not list right after the last piece that canonically comes no later than it.
 */
export function orderUnits(
  units: RecordUnit[],
  canonical: readonly string[],
  lineOrder?: readonly string[],
): string {
  const rank = (tag: string) => {
    const index = canonical.indexOf(tag);
    return index < 0 ? canonical.length : index;
  };
  const queues = new Map<string, RecordUnit[]>();
  for (const unit of units) {
    const queue = queues.get(unit.tag);
    if (queue) queue.push(unit);
    else queues.set(unit.tag, [unit]);
  }
  const out: RecordUnit[] = [];
  for (const tag of lineOrder ?? []) {
    const unit = queues.get(tag)?.shift();
    if (unit) out.push(unit);
  }
  const leftovers = [...queues.values()].flat().sort((a, b) => rank(a.tag) - rank(b.tag));
  for (const unit of leftovers) {
    const r = rank(unit.tag);
    let at = out.length;
    while (at > 0 && rank(out[at - 1].tag) > r) at--;
    out.splice(at, 0, unit);
  }
  let text = '';
  for (const unit of out) text += unit.text;
  return text;
}
