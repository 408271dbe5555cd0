/**
 * CrystFEL geometry (`.geom`) files: a parser into plain data structures.
 *
 * Semantics follow CrystFEL (crystfel_geometry(5)), accepting both the 1.0 and the older 0.x dialects:
 * - `key = value` lines; `;` starts a comment; blank lines are ignored.
 * - A top-level panel key (`res`, `adu_per_eV`, `coffset`, `data`, `dimN`, `mask*`, `no_index`, ...) is a
 *   default for the panels *first mentioned after it*; a panel's own `name/key` overrides it.
 * - `clen` and `photon_energy` (also `wavelength`, `electron_voltage`, 0.x `beam/photon_energy`) are
 *   detector-wide: a panel takes the value in force when it was first mentioned, or else the last value in
 *   the file (CrystFEL 1.0 allows them anywhere); a 0.x per-panel `name/clen` overrides.
 * - `badNAME/key` lines are bad regions (fs/ss in data-block coordinates, or x/y in lab pixels), `group_*`
 *   the panel hierarchy, `rigid_group_*` / `rigid_group_collection_*` the older grouping (kept, unused).
 * - Unknown keys are kept in `extraKeys`; malformed lines throw a UserError naming the file and line.
 */
import { readUserFile, UserError } from '../util/errors.js';

export interface Vec3 {
  x: number;
  y: number;
  z: number;
}

/** One axis of the data block: event placeholder, slow scan, fast scan, or a fixed index. */
export type DimSpec = '%' | 'ss' | 'fs' | number;

/** Camera length: a literal (converted to metres) or a data-file location scaled to metres on reading. */
export type ClenSpec = { kind: 'value'; clenM: number } | { kind: 'path'; path: string; scaleToM: number };

/** The unit a beam-energy value read from a data file is in; decides how it converts to photon energy. */
export type BeamUnit = 'eV' | 'keV' | 'm' | 'A' | 'V' | 'kV';

/**
 * Photon energy: a literal in eV (wavelength and electron-voltage literals are converted to the
 * equivalent photon energy, E = hc/λ), or a data-file location with its unit and a 0.x scale factor.
 */
export type PhotonEnergySpec =
  | { kind: 'value'; photonEnergyEv: number }
  | { kind: 'path'; path: string; unit: BeamUnit; scale: number };

/** One bad-pixel mask (CrystFEL 1.0 `maskN_*`; the legacy `mask`, `mask_file`, ... are mask 0). */
export interface MaskSpec {
  index: number;
  /** Dataset in the mask file (or in the image file when `file` is absent). */
  dataPath?: string;
  file?: string;
  /** A pixel is bad unless all these bits are set. */
  goodBits: number;
  /** A pixel is bad if any of these bits is set. */
  badBits: number;
}

/** Pixels flagged bad by value (strict comparisons, as CrystFEL). */
export interface ValueFlag {
  kind: 'lessthan' | 'morethan' | 'equal';
  value: number;
}

export interface Panel {
  name: string;
  /** Line where the panel is first mentioned (for messages). */
  line: number;
  /** Inclusive pixel ranges in the panel's data block. */
  minFs: number;
  maxFs: number;
  minSs: number;
  maxSs: number;
  /** Lab-frame vectors (in pixels) of one step along fast and slow scan. */
  fs: Vec3;
  ss: Vec3;
  /** Lab position of the panel's first corner (not the first pixel's centre), in pixels. */
  cornerXPx: number;
  cornerYPx: number;
  resPxPerM: number;
  clen?: ClenSpec;
  /** Added to clen (metres). */
  coffsetM: number;
  photonEnergy?: PhotonEnergySpec;
  aduPerEv?: number;
  aduPerPhoton?: number;
  /** Saturation value; Infinity when not given. */
  maxAdu: number;
  dataPath: string;
  /** Axes of the data block, slowest first; default ['ss', 'fs']. */
  dims: DimSpec[];
  masks: MaskSpec[];
  noIndex: boolean;
  maskEdgePixels: number;
  valueFlags: ValueFlag[];
  saturationMap?: string;
  saturationMapFile?: string;
  extraKeys: Record<string, string>;
}

export type BadRegion =
  | {
      kind: 'fsss';
      name: string;
      line: number;
      /** Inclusive, in data-block coordinates (as the panel's min_fs etc.). */
      minFs: number;
      maxFs: number;
      minSs: number;
      maxSs: number;
      /** Restricts the region to one panel; without it the region applies to every panel it overlaps. */
      panel?: string;
      extraKeys: Record<string, string>;
    }
  | {
      kind: 'xy';
      name: string;
      line: number;
      /** Lab frame, in pixels; exclusive bounds, as CrystFEL. */
      minX: number;
      maxX: number;
      minY: number;
      maxY: number;
      panel?: string;
      extraKeys: Record<string, string>;
    };

export interface Geometry {
  sourcePath?: string;
  panels: Panel[];
  badRegions: BadRegion[];
  /** CrystFEL 1.0 hierarchy: `group_NAME = members` (panels or other groups). */
  groups: Record<string, string[]>;
  rigidGroups: Record<string, string[]>;
  rigidGroupCollections: Record<string, string[]>;
  /** Detector-wide camera length (the last top-level `clen`), if any. */
  clen?: ClenSpec;
  /** Detector-wide beam energy (the last top-level one), if any. */
  photonEnergy?: PhotonEnergySpec;
  /** Fractional bandwidth (sigma), if given. */
  bandwidth?: number;
  /** `detector_shift_x/y`: literal metres or a data-file location. */
  detectorShiftX?: LengthSpec;
  detectorShiftY?: LengthSpec;
  peakList?: string;
  peakListType?: string;
  /** Top-level keys this parser does not know. */
  extraKeys: Record<string, string>;
}

export type LengthSpec = { kind: 'value'; valueM: number } | { kind: 'path'; path: string; scaleToM: number };

/** Planck constant times speed of light, in eV·m. */
export const HC_EV_M = 1.239841984e-6;
const ELECTRON_REST_ENERGY_EV = 510998.95;

/** Converts a beam value in `unit` (energy, wavelength or accelerating voltage) to photon energy in eV. */
export function toPhotonEnergyEv(value: number, unit: BeamUnit): number {
  switch (unit) {
    case 'eV':
      return value;
    case 'keV':
      return value * 1e3;
    case 'm':
      return HC_EV_M / value;
    case 'A':
      return HC_EV_M / (value * 1e-10);
    case 'V':
    case 'kV': {
      // Relativistic electron wavelength, expressed as the photon energy with the same wavelength.
      const volts = unit === 'kV' ? value * 1e3 : value;
      const pcEv = Math.sqrt(volts * (volts + 2 * ELECTRON_REST_ENERGY_EV));
      return pcEv;
    }
  }
}

/** Photon energy in eV from a value read at a spec's path (applies the unit and any 0.x scale). */
export function photonEnergyEvFromStored(
  spec: Extract<PhotonEnergySpec, { kind: 'path' }>,
  stored: number,
): number {
  return toPhotonEnergyEv(stored * spec.scale, spec.unit);
}

// ---------------------------------------------------------------------------------------------------
// Small value parsers. Each throws a plain Error with a message; the line loop adds file and line.

class LineError extends Error {}

const NUMBER_RE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
/** Largest fs/ss index we accept: far beyond any detector, small enough to allocate maps for. */
const MAX_INDEX = 10_000_000;

function parseNumber(text: string, what: string): number {
  if (!NUMBER_RE.test(text)) throw new LineError(`${what}: expected a number, got '${text}'`);
  const value = Number(text);
  if (!Number.isFinite(value)) throw new LineError(`${what}: number out of range '${text}'`);
  return value;
}

function parseIndex(text: string, what: string): number {
  const value = parseNumber(text, what);
  if (!Number.isInteger(value) || value < 0 || value > MAX_INDEX) {
    throw new LineError(`${what}: expected a whole number from 0 to ${MAX_INDEX}, got '${text}'`);
  }
  return value;
}

function parseBits(text: string, what: string): number {
  let value: number;
  if (/^0x[0-9a-f]{1,8}$/i.test(text)) value = Number.parseInt(text.slice(2), 16);
  else if (/^\d{1,10}$/.test(text)) value = Number(text);
  else throw new LineError(`${what}: expected bits as a number like 0x00ff or 255, got '${text}'`);
  if (value > 0xffffffff) throw new LineError(`${what}: bits wider than 32, got '${text}'`);
  return value >>> 0;
}

function parseBool(text: string, what: string): boolean {
  const lower = text.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  if (/^[+-]?\d{1,9}$/.test(text)) return Number(text) !== 0;
  throw new LineError(`${what}: expected true, false or a number, got '${text}'`);
}

const VECTOR_TERM_RE = /([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)?([xyz])/y;

/** `+0.0055x -0.9999y`, `-x`, `1.0x +0.2y +0.1z`: a lab vector in pixels (repeated axes add up). */
export function parseVector(text: string, what: string): Vec3 {
  const compact = text.replace(/\s+/g, '');
  const vector: Vec3 = { x: 0, y: 0, z: 0 };
  if (compact.length === 0) throw new LineError(`${what}: empty direction`);
  let position = 0;
  let terms = 0;
  while (position < compact.length) {
    VECTOR_TERM_RE.lastIndex = position;
    const match = VECTOR_TERM_RE.exec(compact);
    // Every term after the first needs its own sign, so `1x2y` is rejected rather than misread.
    if (match === null || (terms > 0 && match[1] === '')) {
      throw new LineError(`${what}: expected a direction like '+0.99x -0.01y', got '${text}'`);
    }
    const magnitude = match[2] === undefined ? 1 : Number(match[2]);
    if (!Number.isFinite(magnitude)) throw new LineError(`${what}: number out of range in '${text}'`);
    const value = match[1] === '-' ? -magnitude : magnitude;
    vector[match[3] as 'x' | 'y' | 'z'] += value;
    position = VECTOR_TERM_RE.lastIndex;
    terms++;
  }
  if (vector.x === 0 && vector.y === 0 && vector.z === 0)
    throw new LineError(`${what}: zero-length direction`);
  return vector;
}

/** Splits `value [unit]` at the last space (paths and numbers have no spaces). */
function splitUnit(text: string): { body: string; unit?: string } {
  const space = text.lastIndexOf(' ');
  if (space < 0) return { body: text };
  return { body: text.slice(0, space).trim(), unit: text.slice(space + 1) };
}

function isPath(text: string): boolean {
  return text.startsWith('/') && !/\s/.test(text);
}

function parseClen(text: string): ClenSpec {
  const { body, unit } = splitUnit(text);
  if (unit !== undefined && unit !== 'm' && unit !== 'mm') {
    throw new LineError(`clen: unknown unit '${unit}' (expected m or mm)`);
  }
  if (isPath(body)) {
    // CrystFEL: a data-file location without units is in millimetres (for historical reasons).
    return { kind: 'path', path: body, scaleToM: unit === 'm' ? 1 : 1e-3 };
  }
  const value = parseNumber(body, 'clen (metres, or a data path starting with /)');
  return { kind: 'value', clenM: unit === 'mm' ? value * 1e-3 : value };
}

function parseLength(text: string, what: string): LengthSpec {
  const { body, unit } = splitUnit(text);
  if (unit !== undefined && unit !== 'm' && unit !== 'mm') {
    throw new LineError(`${what}: unknown unit '${unit}' (expected m or mm)`);
  }
  const scaleToM = unit === 'mm' ? 1e-3 : 1;
  if (isPath(body)) return { kind: 'path', path: body, scaleToM };
  return { kind: 'value', valueM: parseNumber(body, what) * scaleToM };
}

function parseBeam(text: string, key: string, units: BeamUnit[], defaultUnit?: BeamUnit): PhotonEnergySpec {
  const { body, unit } = splitUnit(text);
  const chosen = (unit ?? defaultUnit) as BeamUnit | undefined;
  if (chosen === undefined) throw new LineError(`${key}: give a unit (${units.join(' or ')})`);
  if (!units.includes(chosen))
    throw new LineError(`${key}: unknown unit '${unit}' (expected ${units.join(' or ')})`);
  if (isPath(body)) return { kind: 'path', path: body, unit: chosen, scale: 1 };
  const value = parseNumber(body, key);
  if (value <= 0) throw new LineError(`${key}: must be positive, got '${body}'`);
  return { kind: 'value', photonEnergyEv: toPhotonEnergyEv(value, chosen) };
}

function parseMembers(text: string, what: string): string[] {
  const members = text
    .split(',')
    .map((member) => member.trim())
    .filter((member) => member.length > 0);
  if (members.length === 0) throw new LineError(`${what}: no members`);
  return members;
}

/** Sets a record entry as an own property, even for names like `__proto__`. */
function setEntry<T>(record: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}

// ---------------------------------------------------------------------------------------------------
// Panel fields: shared by the top-level defaults and the panels themselves.

interface PanelDraft {
  minFs?: number;
  maxFs?: number;
  minSs?: number;
  maxSs?: number;
  fs?: Vec3;
  ss?: Vec3;
  cornerXPx?: number;
  cornerYPx?: number;
  resPxPerM?: number;
  clen?: ClenSpec;
  coffsetM: number;
  photonEnergy?: PhotonEnergySpec;
  aduPerEv?: number;
  aduPerPhoton?: number;
  maxAdu: number;
  dataPath: string;
  dims: (DimSpec | undefined)[];
  masks: (MaskDraft | undefined)[];
  noIndex: boolean;
  maskEdgePixels: number;
  valueFlags: ValueFlag[];
  saturationMap?: string;
  saturationMapFile?: string;
  extraKeys: Record<string, string>;
  /** Line each key was last set on, for range and consistency messages. */
  lines: Record<string, number>;
}

interface MaskDraft {
  dataPath?: string;
  file?: string;
  goodBits: number;
  badBits: number;
  line: number;
}

const MAX_MASKS = 8;
const MAX_DIMS = 16;

function emptyDraft(): PanelDraft {
  return {
    coffsetM: 0,
    maxAdu: Number.POSITIVE_INFINITY,
    dataPath: '/data/data',
    dims: ['ss', 'fs'],
    masks: [],
    noIndex: false,
    maskEdgePixels: 0,
    valueFlags: [],
    extraKeys: {},
    lines: {},
  };
}

function copyDraft(draft: PanelDraft): PanelDraft {
  const extraKeys: Record<string, string> = {};
  for (const [key, value] of Object.entries(draft.extraKeys)) setEntry(extraKeys, key, value);
  const lines: Record<string, number> = {};
  for (const [key, value] of Object.entries(draft.lines)) setEntry(lines, key, value);
  return {
    ...draft,
    fs: draft.fs && { ...draft.fs },
    ss: draft.ss && { ...draft.ss },
    dims: [...draft.dims],
    masks: draft.masks.map((mask) => mask && { ...mask }),
    valueFlags: draft.valueFlags.map((flag) => ({ ...flag })),
    extraKeys,
    lines,
  };
}

const LEGACY_MASK_KEYS = new Map([
  ['mask', 'mask0_data'],
  ['mask_file', 'mask0_file'],
  ['mask_good', 'mask0_goodbits'],
  ['mask_bad', 'mask0_badbits'],
]);

function applyMaskKey(draft: PanelDraft, key: string, value: string, line: number): void {
  const match = /^mask([0-9]+)_(data|file|goodbits|badbits)$/.exec(key);
  if (match === null) throw new LineError(`unknown mask key '${key}' (expected maskN_data, maskN_file, ...)`);
  const index = Number(match[1]);
  if (index >= MAX_MASKS) throw new LineError(`${key}: mask number must be 0 to ${MAX_MASKS - 1}`);
  const mask = draft.masks[index] ?? { goodBits: 0, badBits: 0, line };
  mask.line = line;
  switch (match[2]) {
    case 'data':
      if (!value.startsWith('/'))
        throw new LineError(`${key}: mask location must start with '/', got '${value}'`);
      mask.dataPath = value;
      break;
    case 'file':
      mask.file = value;
      break;
    case 'goodbits':
      mask.goodBits = parseBits(value, key);
      break;
    case 'badbits':
      mask.badBits = parseBits(value, key);
      break;
  }
  draft.masks[index] = mask;
}

/** Applies one panel key; returns false when the key is not a panel key (the caller decides). */
function applyPanelKey(draft: PanelDraft, key: string, value: string, line: number): boolean {
  const legacyMask = LEGACY_MASK_KEYS.get(key);
  if (legacyMask !== undefined) {
    applyMaskKey(draft, legacyMask, value, line);
    return true;
  }
  switch (key) {
    case 'min_fs':
      draft.minFs = parseIndex(value, key);
      break;
    case 'max_fs':
      draft.maxFs = parseIndex(value, key);
      break;
    case 'min_ss':
      draft.minSs = parseIndex(value, key);
      break;
    case 'max_ss':
      draft.maxSs = parseIndex(value, key);
      break;
    case 'corner_x':
      draft.cornerXPx = parseNumber(value, key);
      break;
    case 'corner_y':
      draft.cornerYPx = parseNumber(value, key);
      break;
    case 'fs':
      draft.fs = parseVector(value, 'fs');
      break;
    case 'ss':
      draft.ss = parseVector(value, 'ss');
      break;
    case 'res': {
      const res = parseNumber(value, 'res (pixels per metre)');
      if (res <= 0) throw new LineError(`res: must be positive, got '${value}'`);
      draft.resPxPerM = res;
      break;
    }
    case 'clen':
      draft.clen = parseClen(value);
      break;
    case 'coffset':
      draft.coffsetM = parseNumber(value, 'coffset (metres)');
      break;
    case 'adu_per_eV':
      draft.aduPerEv = parseNumber(value, key);
      draft.aduPerPhoton = undefined;
      break;
    case 'adu_per_photon':
      draft.aduPerPhoton = parseNumber(value, key);
      draft.aduPerEv = undefined;
      break;
    case 'max_adu':
      draft.maxAdu = parseNumber(value, key);
      break;
    case 'data':
      draft.dataPath = value;
      break;
    case 'no_index':
      draft.noIndex = parseBool(value, key);
      break;
    case 'mask_edge_pixels':
      draft.maskEdgePixels = parseIndex(value, key);
      break;
    case 'flag_lessthan':
    case 'flag_morethan':
    case 'flag_equal':
      draft.valueFlags.push({ kind: key.slice(5) as ValueFlag['kind'], value: parseNumber(value, key) });
      break;
    case 'saturation_map':
      draft.saturationMap = value;
      break;
    case 'saturation_map_file':
      draft.saturationMapFile = value;
      break;
    case 'photon_energy':
      // CrystFEL 0.x allowed a per-panel photon energy; 1.0 makes it top-level (handled by the caller).
      draft.photonEnergy = parseBeam(value, key, ['eV', 'keV'], 'eV');
      break;
    default:
      if (/^mask[0-9]+_/.test(key)) {
        applyMaskKey(draft, key, value, line);
        break;
      }
      if (/^dim/.test(key)) {
        applyDimKey(draft, key, value);
        break;
      }
      return false;
  }
  setEntry(draft.lines, key, line);
  return true;
}

function applyDimKey(draft: PanelDraft, key: string, value: string): void {
  const match = /^dim([0-9]{1,2})$/.exec(key);
  if (match === null) throw new LineError(`'${key}': expected dim followed by a number, e.g. dim0`);
  const index = Number(match[1]);
  if (index >= MAX_DIMS) throw new LineError(`${key}: at most ${MAX_DIMS} dimensions`);
  let dim: DimSpec;
  if (value === '%' || value === 'ss' || value === 'fs') dim = value;
  else if (/^[0-9]{1,9}$/.test(value)) dim = Number(value);
  else throw new LineError(`${key}: expected %, ss, fs or a fixed index, got '${value}'`);
  draft.dims[index] = dim;
}

// ---------------------------------------------------------------------------------------------------

interface BadDraft {
  name: string;
  line: number;
  kind?: 'fsss' | 'xy';
  values: Record<string, number>;
  lines: Record<string, number>;
  panel?: string;
  extraKeys: Record<string, string>;
}

const BAD_FSSS_KEYS = ['min_fs', 'max_fs', 'min_ss', 'max_ss'];
const BAD_XY_KEYS = ['min_x', 'max_x', 'min_y', 'max_y'];

function applyBadKey(region: BadDraft, key: string, value: string, line: number): void {
  if (key === 'panel') {
    region.panel = value;
    return;
  }
  const kind = BAD_FSSS_KEYS.includes(key) ? 'fsss' : BAD_XY_KEYS.includes(key) ? 'xy' : undefined;
  if (kind === undefined) {
    setEntry(region.extraKeys, key, value);
    return;
  }
  if (region.kind !== undefined && region.kind !== kind) {
    throw new LineError(`bad region '${region.name}' mixes x/y and fs/ss coordinates`);
  }
  region.kind = kind;
  setEntry(region.values, key, kind === 'fsss' ? parseIndex(value, key) : parseNumber(value, key));
  setEntry(region.lines, key, line);
}

interface ParseState {
  defaults: PanelDraft;
  panels: Map<
    string,
    { draft: PanelDraft; line: number; clenAtCreation?: ClenSpec; beamAtCreation?: PhotonEnergySpec }
  >;
  bad: Map<string, BadDraft>;
  geometry: Geometry;
  /** Group lines, checked once every panel and group is known. */
  groupLines: Map<string, number>;
}

function handleTopLevel(state: ParseState, key: string, value: string, line: number): void {
  const { geometry } = state;
  switch (key) {
    case 'clen':
      geometry.clen = parseClen(value);
      return;
    case 'photon_energy':
      geometry.photonEnergy = parseBeam(value, key, ['eV', 'keV'], 'eV');
      return;
    case 'wavelength':
      geometry.photonEnergy = parseBeam(value, key, ['m', 'A']);
      return;
    case 'electron_voltage':
      geometry.photonEnergy = parseBeam(value, key, ['V', 'kV']);
      return;
    case 'photon_energy_scale':
      applyEnergyScale(geometry, value);
      return;
    case 'bandwidth':
      geometry.bandwidth = parseNumber(value, key);
      return;
    case 'detector_shift_x':
      geometry.detectorShiftX = parseLength(value, key);
      return;
    case 'detector_shift_y':
      geometry.detectorShiftY = parseLength(value, key);
      return;
    case 'peak_list':
      geometry.peakList = value;
      return;
    case 'peak_list_type':
      geometry.peakListType = value;
      return;
  }
  if (key.startsWith('rigid_group_collection_')) {
    setEntry(
      geometry.rigidGroupCollections,
      key.slice('rigid_group_collection_'.length),
      parseMembers(value, key),
    );
    return;
  }
  if (key.startsWith('rigid_group_')) {
    setEntry(geometry.rigidGroups, key.slice('rigid_group_'.length), parseMembers(value, key));
    return;
  }
  if (key.startsWith('group_')) {
    const name = key.slice('group_'.length);
    if (name.length === 0) throw new LineError(`'${key}': group needs a name, e.g. group_q0`);
    if (Object.hasOwn(geometry.groups, name)) throw new LineError(`group '${name}' defined twice`);
    setEntry(geometry.groups, name, parseMembers(value, key));
    state.groupLines.set(name, line);
    return;
  }
  if (!applyPanelKey(state.defaults, key, value, line)) setEntry(geometry.extraKeys, key, value);
}

function applyEnergyScale(geometry: Geometry, value: string): void {
  const scale = parseNumber(value, 'photon_energy_scale');
  const energy = geometry.photonEnergy;
  if (energy?.kind === 'path') energy.scale = scale;
  else if (energy?.kind === 'value') energy.photonEnergyEv *= scale;
  else throw new LineError('photon_energy_scale given before photon_energy');
}

/** 0.x beam-file keys (`beam/photon_energy`, ...); others are kept as extra keys. */
function handleBeamKey(state: ParseState, key: string, value: string, line: number): void {
  if (key === 'photon_energy' || key === 'photon_energy_scale' || key === 'bandwidth') {
    handleTopLevel(state, key, value, line);
    return;
  }
  setEntry(state.geometry.extraKeys, `beam/${key}`, value);
}

function handleLine(state: ParseState, key: string, value: string, line: number): void {
  const slash = key.indexOf('/');
  if (slash < 0) {
    handleTopLevel(state, key, value, line);
    return;
  }
  const name = key.slice(0, slash).trim();
  const field = key.slice(slash + 1).trim();
  if (name.length === 0) throw new LineError(`'${key}': missing panel name before '/'`);
  if (field.length === 0) throw new LineError(`'${key}': missing key after '/'`);
  if (name === 'beam') {
    handleBeamKey(state, field, value, line);
    return;
  }
  if (name.startsWith('bad')) {
    let region = state.bad.get(name);
    if (region === undefined) {
      region = { name, line, values: {}, lines: {}, extraKeys: {} };
      state.bad.set(name, region);
    }
    applyBadKey(region, field, value, line);
    return;
  }
  if (name.startsWith('group') || name.startsWith('rigid_group')) {
    throw new LineError(
      `'${name}' is not a panel name (names starting with group or rigid_group are reserved)`,
    );
  }
  let entry = state.panels.get(name);
  if (entry === undefined) {
    entry = {
      draft: copyDraft(state.defaults),
      line,
      clenAtCreation: state.geometry.clen,
      beamAtCreation: state.geometry.photonEnergy,
    };
    state.panels.set(name, entry);
  }
  if (!applyPanelKey(entry.draft, field, value, line)) setEntry(entry.draft.extraKeys, field, value);
}

/** Strips the comment and splits `key = value`; null for a blank or comment-only line. */
function splitLine(raw: string): { key: string; value: string } | null {
  const comment = raw.indexOf(';');
  const text = (comment >= 0 ? raw.slice(0, comment) : raw).trim();
  if (text.length === 0) return null;
  const eq = text.indexOf('=');
  if (eq < 0) throw new LineError(`expected 'key = value', got '${clip(text)}'`);
  const key = text.slice(0, eq).trim();
  const value = text.slice(eq + 1).trim();
  if (key.length === 0) throw new LineError(`missing key before '=' in '${clip(text)}'`);
  if (value.length === 0) throw new LineError(`missing value for '${clip(key)}'`);
  return { key, value };
}

function clip(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

// ---------------------------------------------------------------------------------------------------
// Finishing: required fields, ranges and cross references.

function finishPanel(
  name: string,
  entry: { draft: PanelDraft; line: number; clenAtCreation?: ClenSpec; beamAtCreation?: PhotonEnergySpec },
  geometry: Geometry,
  fail: (line: number, message: string) => never,
): Panel {
  const { draft, line } = entry;
  const required: [keyof PanelDraft, string][] = [
    ['minFs', 'min_fs'],
    ['maxFs', 'max_fs'],
    ['minSs', 'min_ss'],
    ['maxSs', 'max_ss'],
    ['fs', 'fs'],
    ['ss', 'ss'],
    ['cornerXPx', 'corner_x'],
    ['cornerYPx', 'corner_y'],
    ['resPxPerM', 'res'],
  ];
  for (const [field, key] of required) {
    if (draft[field] === undefined) fail(line, `panel '${name}' has no ${key}`);
  }
  const minFs = draft.minFs as number;
  const maxFs = draft.maxFs as number;
  const minSs = draft.minSs as number;
  const maxSs = draft.maxSs as number;
  if (minFs > maxFs) {
    fail(
      Math.max(draft.lines.min_fs ?? line, draft.lines.max_fs ?? line),
      `panel '${name}': min_fs ${minFs} > max_fs ${maxFs}`,
    );
  }
  if (minSs > maxSs) {
    fail(
      Math.max(draft.lines.min_ss ?? line, draft.lines.max_ss ?? line),
      `panel '${name}': min_ss ${minSs} > max_ss ${maxSs}`,
    );
  }
  const dims = finishDims(draft.dims, name, line, fail);
  const masks: MaskSpec[] = [];
  draft.masks.forEach((mask, index) => {
    if (mask === undefined) return;
    if (mask.file !== undefined && mask.dataPath === undefined) {
      fail(
        mask.line,
        `panel '${name}': mask ${index} has a file but no data location (mask${index}_data or mask)`,
      );
    }
    if (mask.dataPath === undefined) {
      if (mask.goodBits !== 0 || mask.badBits !== 0) {
        fail(mask.line, `panel '${name}': mask ${index} has good/bad bits but no data location`);
      }
      return;
    }
    masks.push({
      index,
      dataPath: mask.dataPath,
      file: mask.file,
      goodBits: mask.goodBits,
      badBits: mask.badBits,
    });
  });
  const panel: Panel = {
    name,
    line,
    minFs,
    maxFs,
    minSs,
    maxSs,
    fs: draft.fs as Vec3,
    ss: draft.ss as Vec3,
    cornerXPx: draft.cornerXPx as number,
    cornerYPx: draft.cornerYPx as number,
    resPxPerM: draft.resPxPerM as number,
    coffsetM: draft.coffsetM,
    maxAdu: draft.maxAdu,
    dataPath: draft.dataPath,
    dims,
    masks,
    noIndex: draft.noIndex,
    maskEdgePixels: draft.maskEdgePixels,
    valueFlags: draft.valueFlags,
    extraKeys: draft.extraKeys,
  };
  const clen = draft.clen ?? entry.clenAtCreation ?? geometry.clen;
  if (clen !== undefined) panel.clen = clen;
  const photonEnergy = draft.photonEnergy ?? entry.beamAtCreation ?? geometry.photonEnergy;
  if (photonEnergy !== undefined) panel.photonEnergy = photonEnergy;
  if (draft.aduPerEv !== undefined) panel.aduPerEv = draft.aduPerEv;
  if (draft.aduPerPhoton !== undefined) panel.aduPerPhoton = draft.aduPerPhoton;
  if (draft.saturationMap !== undefined) panel.saturationMap = draft.saturationMap;
  if (draft.saturationMapFile !== undefined) panel.saturationMapFile = draft.saturationMapFile;
  return panel;
}

function finishDims(
  draftDims: (DimSpec | undefined)[],
  name: string,
  line: number,
  fail: (line: number, message: string) => never,
): DimSpec[] {
  const dims: DimSpec[] = [];
  for (let i = 0; i < draftDims.length; i++) {
    const dim = draftDims[i];
    if (dim === undefined)
      fail(line, `panel '${name}': dim${i} is missing (dimensions must be numbered from 0 up)`);
    dims.push(dim);
  }
  const ss = dims.indexOf('ss');
  const fs = dims.indexOf('fs');
  if (ss < 0 || fs < 0) fail(line, `panel '${name}': dims must include both ss and fs`);
  if (dims.lastIndexOf('ss') !== ss || dims.lastIndexOf('fs') !== fs) {
    fail(line, `panel '${name}': ss and fs may each appear in only one dim`);
  }
  if (fs < ss) fail(line, `panel '${name}': the fs dimension must come after the ss dimension`);
  return dims;
}

function finishBadRegion(
  draft: BadDraft,
  panels: Panel[],
  fail: (line: number, message: string) => never,
): BadRegion {
  const { name, line, values } = draft;
  if (draft.kind === undefined) fail(line, `bad region '${name}' has no coordinates (min_fs... or min_x...)`);
  const keys = draft.kind === 'fsss' ? BAD_FSSS_KEYS : BAD_XY_KEYS;
  for (const key of keys) {
    if (!Object.hasOwn(values, key)) fail(line, `bad region '${name}' has no ${key}`);
  }
  const checkOrder = (min: string, max: string) => {
    if (values[min] > values[max]) {
      fail(
        Math.max(draft.lines[min], draft.lines[max]),
        `bad region '${name}': ${min} ${values[min]} > ${max} ${values[max]}`,
      );
    }
  };
  let panel: Panel | undefined;
  if (draft.panel !== undefined) {
    panel = panels.find((candidate) => candidate.name === draft.panel);
    if (panel === undefined) fail(line, `bad region '${name}': no panel named '${draft.panel}'`);
  }
  if (draft.kind === 'fsss') {
    checkOrder('min_fs', 'max_fs');
    checkOrder('min_ss', 'max_ss');
    if (
      panel !== undefined &&
      (values.min_fs < panel.minFs ||
        values.max_fs > panel.maxFs ||
        values.min_ss < panel.minSs ||
        values.max_ss > panel.maxSs)
    ) {
      fail(
        line,
        `bad region '${name}' lies outside panel '${panel.name}' (fs ${panel.minFs}-${panel.maxFs}, ss ${panel.minSs}-${panel.maxSs})`,
      );
    }
    return {
      kind: 'fsss',
      name,
      line,
      minFs: values.min_fs,
      maxFs: values.max_fs,
      minSs: values.min_ss,
      maxSs: values.max_ss,
      ...(draft.panel !== undefined ? { panel: draft.panel } : {}),
      extraKeys: draft.extraKeys,
    };
  }
  checkOrder('min_x', 'max_x');
  checkOrder('min_y', 'max_y');
  return {
    kind: 'xy',
    name,
    line,
    minX: values.min_x,
    maxX: values.max_x,
    minY: values.min_y,
    maxY: values.max_y,
    ...(draft.panel !== undefined ? { panel: draft.panel } : {}),
    extraKeys: draft.extraKeys,
  };
}

/**
 * Parses the text of a CrystFEL geometry file. Throws a UserError naming `sourcePath` and the line for
 * anything malformed; never any other error for any input.
 */
export function parseGeometry(text: string, sourcePath?: string): Geometry {
  const fail = (line: number, message: string): never => {
    throw new UserError(message, sourcePath, `line ${line}`);
  };
  const geometry: Geometry = {
    ...(sourcePath !== undefined ? { sourcePath } : {}),
    panels: [],
    badRegions: [],
    groups: {},
    rigidGroups: {},
    rigidGroupCollections: {},
    extraKeys: {},
  };
  const state: ParseState = {
    defaults: emptyDraft(),
    panels: new Map(),
    bad: new Map(),
    geometry,
    groupLines: new Map(),
  };
  // A byte-order mark from Windows editors would otherwise become part of the first key.
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = index + 1;
    try {
      const parts = splitLine(lines[index]);
      if (parts !== null) handleLine(state, parts.key, parts.value, line);
    } catch (error) {
      if (error instanceof LineError) fail(line, error.message);
      throw error;
    }
  }
  if (state.panels.size === 0) {
    fail(lines.length, "no panels defined (expected lines like 'p0/min_fs = 0')");
  }
  for (const [name, entry] of state.panels) geometry.panels.push(finishPanel(name, entry, geometry, fail));
  for (const region of state.bad.values())
    geometry.badRegions.push(finishBadRegion(region, geometry.panels, fail));
  checkGroups(geometry, state.groupLines, fail);
  return geometry;
}

function checkGroups(
  geometry: Geometry,
  groupLines: Map<string, number>,
  fail: (line: number, message: string) => never,
): void {
  const panelNames = new Set(geometry.panels.map((panel) => panel.name));
  for (const [name, members] of Object.entries(geometry.groups)) {
    const line = groupLines.get(name) ?? 0;
    const seen = new Set<string>();
    for (const member of members) {
      if (seen.has(member)) fail(line, `group '${name}' lists '${member}' twice`);
      seen.add(member);
      if (!panelNames.has(member) && !Object.hasOwn(geometry.groups, member)) {
        fail(line, `group '${name}': '${member}' is neither a panel nor a group`);
      }
    }
  }
}

/** Reads and parses a geometry file; a missing or unreadable file is a UserError. */
export function readGeometry(path: string): Geometry {
  const text = readUserFile(path, 'utf8');
  return parseGeometry(text, path);
}
