/**
 * CBF / imgCIF images (mini-CBF from Pilatus and Eiger, multi-array CBFs from cctbx for CSPAD...):
 * the CIF text is scanned for binary sections
 *
 *   --CIF-BINARY-FORMAT-SECTION--
 *   Content-Type: application/octet-stream;
 *        conversions="x-CBF_BYTE_OFFSET"          (or x-CBF_PACKED [; "flat" | "uncorrelated_sections"],
 *   X-Binary-Size: 1234                             x-CBF_PACKED_V2, x-CBF_NONE)
 *   X-Binary-Element-Type: "signed 32-bit integer"
 *   X-Binary-Number-of-Elements / -Size-Fastest-Dimension / -Second- / -Third-
 *   (blank line) 0x0C 0x1A 0x04 0xD5 (X-Binary-Size bytes)
 *
 * and each section decodes to an Int32Array. Detector layout: the `_array_structure_list_section`
 * loop, when present, names each ASIC's index ranges inside its array; the slab stacks those sections
 * along ss in loop order (a CSPAD CBF: 4 quadrant arrays of 388 x 185 x 8 become 64 ASICs of 194 x 185,
 * the [11840, 194] slab CrystFEL's CXI files hold). Without it, each array's 2-D planes are stacked.
 *
 * Every problem with the bytes (truncation, sizes that disagree, unknown compression, a bad MD5) is a
 * UserError naming the file and the section (`binary section 2 (X-Binary-ID 2)`) or header field.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { extname } from 'node:path';
import { readUserFile, UserError } from '../util/errors.js';
import {
  type CodecContext,
  decodeByteOffset,
  decodePacked,
  encodeByteOffset,
  encodePacked,
  type PackedOptions,
} from './cbf-codecs.js';

const boundary = '--CIF-BINARY-FORMAT-SECTION--';
const startMarker = Buffer.from([0x0c, 0x1a, 0x04, 0xd5]);
/** Largest array we agree to allocate from a header's word (2^28 int32 = 1 GiB). */
const maxElements = 2 ** 28;
/** MIME headers longer than this mean the start marker is missing. */
const maxHeaderBytes = 65536;

export type CbfCompression = 'byte_offset' | 'packed' | 'packed_v2' | 'none';

export interface CbfArray {
  /** 1-based position among the binary sections. */
  index: number;
  binaryId?: number;
  /** `_array_data.array_id` of the row holding this section, when it can be told. */
  arrayId?: string;
  compression: CbfCompression;
  elementType: string;
  /** [fastest, second, third] with absent dimensions left out. */
  dims: number[];
  data: Int32Array;
  /** Bytes of compressed data. */
  compressedBytes: number;
}

/** An `_array_structure_list_section` entry: 1-based inclusive ranges per array index (1 = fastest). */
export interface CbfArraySection {
  id: string;
  arrayId: string;
  ranges: Map<number, [number, number]>;
}

export interface CbfFile {
  path: string;
  arrays: CbfArray[];
  sections: CbfArraySection[];
}

interface MimeHeaders {
  fields: Map<string, string>;
}

function parseMime(text: string): MimeHeaders {
  const fields = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split(/\r?\n|\r/)) {
    if (line.trim() === '') continue;
    if (/^[ \t]/.test(line) && last !== undefined) {
      fields.set(last, `${fields.get(last)} ${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    last = line.slice(0, colon).trim().toLowerCase();
    fields.set(last, line.slice(colon + 1).trim());
  }
  return { fields };
}

function headerInteger(
  headers: MimeHeaders,
  name: string,
  context: CodecContext,
  required: boolean,
): number | undefined {
  const raw = headers.fields.get(name.toLowerCase());
  if (raw === undefined) {
    if (required) throw new UserError(`missing header ${name}`, context.file, context.where);
    return undefined;
  }
  const value = Number(raw.replace(/^"|"$/g, ''));
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new UserError(
      `header ${name} is '${raw}', expected a non-negative integer`,
      context.file,
      context.where,
    );
  }
  return value;
}

interface ElementType {
  signed: boolean;
  bytes: 1 | 2 | 4;
}

function parseElementType(raw: string, context: CodecContext): ElementType {
  const m = /^"?\s*(signed|unsigned)\s+(8|16|32)-bit\s+integer\s*"?$/i.exec(raw.trim());
  if (m === null) {
    throw new UserError(
      `X-Binary-Element-Type '${raw}' is not supported (integer types only)`,
      context.file,
      context.where,
    );
  }
  return { signed: m[1].toLowerCase() === 'signed', bytes: (Number(m[2]) / 8) as 1 | 2 | 4 };
}

function parseCompression(
  contentType: string,
  context: CodecContext,
): { compression: CbfCompression; packed: PackedOptions } {
  const m = /conversions\s*=\s*"?([^";\s]+)"?/i.exec(contentType);
  const name = (m?.[1] ?? 'x-CBF_NONE').toLowerCase();
  const lower = contentType.toLowerCase();
  const packed: PackedOptions = {
    v2: name === 'x-cbf_packed_v2',
    flat: /\bflat\b/.test(lower.slice((m?.index ?? 0) + (m?.[0].length ?? 0))),
    uncorrelatedSections: lower.includes('uncorrelated_sections'),
  };
  switch (name) {
    case 'x-cbf_byte_offset':
      return { compression: 'byte_offset', packed };
    case 'x-cbf_packed':
      return { compression: 'packed', packed };
    case 'x-cbf_packed_v2':
      return { compression: 'packed_v2', packed };
    case 'x-cbf_none':
      return { compression: 'none', packed };
    default:
      throw new UserError(`unknown compression '${m?.[1]}' in Content-Type`, context.file, context.where);
  }
}

/** Uncompressed elements of any integer type and byte order, widened to int32 (uint32 wraps). */
function decodeNone(
  src: Uint8Array,
  count: number,
  type: ElementType,
  bigEndian: boolean,
  context: CodecContext,
): Int32Array {
  if (src.length < count * type.bytes) {
    throw new UserError(
      `uncompressed data has ${src.length} bytes, ${count} elements need ${count * type.bytes}`,
      context.file,
      context.where,
    );
  }
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const out = new Int32Array(count);
  const little = !bigEndian;
  for (let i = 0; i < count; i++) {
    const at = i * type.bytes;
    if (type.bytes === 1) out[i] = type.signed ? view.getInt8(at) : view.getUint8(at);
    else if (type.bytes === 2) out[i] = type.signed ? view.getInt16(at, little) : view.getUint16(at, little);
    else out[i] = view.getInt32(at, little);
  }
  return out;
}

/** The `array_id binary_id` row just before a section's text field, e.g. ` ARRAY_D0Q0 1`. */
function arrayIdBefore(text: string, binaryId: number | undefined): string | undefined {
  const lines = text.replace(/[\s;]+$/, '').split(/\r?\n|\r/);
  const tokens = (lines[lines.length - 1] ?? '').trim().split(/\s+/);
  if (
    tokens.length === 2 &&
    !tokens[0].startsWith('_') &&
    (binaryId === undefined || Number(tokens[1]) === binaryId)
  ) {
    return tokens[0];
  }
  return undefined;
}

/** CIF tokens of a text: whitespace-separated words, quoted strings; text fields (`;`) skipped. */
function cifTokens(text: string): string[] {
  const tokens: string[] = [];
  const re = /'([^']*)'(?=\s|$)|"([^"]*)"(?=\s|$)|^;[\s\S]*?^;|#[^\n]*|(\S+)/gm;
  for (const m of text.matchAll(re)) {
    if (m[1] !== undefined) tokens.push(m[1]);
    else if (m[2] !== undefined) tokens.push(m[2]);
    else if (m[3] !== undefined) tokens.push(m[3]);
  }
  return tokens;
}

/** The `_array_structure_list_section` loop of the CIF text, if any. */
function parseArraySections(text: string, file: string): CbfArraySection[] {
  const start = text.search(/^\s*_array_structure_list_section\./m);
  if (start < 0) return [];
  const tokens = cifTokens(text.slice(start));
  const columns: string[] = [];
  let t = 0;
  while (t < tokens.length && tokens[t].toLowerCase().startsWith('_array_structure_list_section.')) {
    columns.push(tokens[t].slice('_array_structure_list_section.'.length).toLowerCase());
    t++;
  }
  const values: string[] = [];
  while (
    t < tokens.length &&
    !tokens[t].startsWith('_') &&
    tokens[t].toLowerCase() !== 'loop_' &&
    !/^data_/i.test(tokens[t])
  ) {
    values.push(tokens[t]);
    t++;
  }
  const col = (name: string) => columns.indexOf(name);
  const [cArray, cId, cIndex, cStart, cEnd] = ['array_id', 'id', 'index', 'start', 'end'].map(col);
  if ([cArray, cId, cIndex, cStart, cEnd].some((c) => c < 0) || values.length % columns.length !== 0) {
    throw new UserError('malformed loop', file, '_array_structure_list_section');
  }
  const byId = new Map<string, CbfArraySection>();
  for (let r = 0; r < values.length; r += columns.length) {
    const id = values[r + cId];
    const index = Number(values[r + cIndex]);
    const first = Number(values[r + cStart]);
    const last = Number(values[r + cEnd]);
    if (![index, first, last].every(Number.isInteger) || index < 1 || first < 1 || last < first) {
      throw new UserError(`bad index range for section ${id}`, file, '_array_structure_list_section');
    }
    let section = byId.get(id);
    if (section === undefined) {
      section = { id, arrayId: values[r + cArray], ranges: new Map() };
      byId.set(id, section);
    }
    section.ranges.set(index, [first, last]);
  }
  return [...byId.values()];
}

export interface ParseCbfOptions {
  /** Check each section's Content-MD5 when present (default true). */
  verifyMd5?: boolean;
}

/** Parses a CBF held in memory; `path` is only used in messages. */
export function parseCbf(bytes: Uint8Array, path: string, options: ParseCbfOptions = {}): CbfFile {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const arrays: CbfArray[] = [];
  const textParts: string[] = [];
  let pos = 0;
  while (true) {
    const at = buf.indexOf(boundary, pos, 'latin1');
    if (at < 0) {
      textParts.push(buf.toString('latin1', pos));
      break;
    }
    const before = buf.toString('latin1', pos, at);
    textParts.push(before);
    if (buf[at + boundary.length] === 0x2d && buf[at + boundary.length + 1] === 0x2d) {
      pos = at + boundary.length + 2; // the closing boundary `--CIF-BINARY-FORMAT-SECTION----`
      continue;
    }
    const index = arrays.length + 1;
    const context: CodecContext = { file: path, where: `binary section ${index}` };
    const marker = buf.indexOf(startMarker, at);
    if (marker < 0 || marker - at > maxHeaderBytes) {
      throw new UserError('no binary start marker (0C 1A 04 D5) after the MIME header', path, context.where);
    }
    const headers = parseMime(buf.toString('latin1', at + boundary.length, marker));
    const binaryId = headerInteger(headers, 'X-Binary-ID', context, false);
    if (binaryId !== undefined) context.where = `binary section ${index} (X-Binary-ID ${binaryId})`;
    const encoding = headers.fields.get('content-transfer-encoding') ?? 'BINARY';
    if (encoding.toUpperCase() !== 'BINARY') {
      throw new UserError(
        `Content-Transfer-Encoding '${encoding}' is not supported (BINARY only)`,
        path,
        context.where,
      );
    }
    const size = headerInteger(headers, 'X-Binary-Size', context, true)!;
    const count = headerInteger(headers, 'X-Binary-Number-of-Elements', context, true)!;
    const dims: number[] = [];
    for (const name of ['Fastest', 'Second', 'Third']) {
      const field = `X-Binary-Size-${name}-Dimension`;
      const d = headerInteger(headers, field, context, false);
      if (d === undefined) break; // later dimensions without earlier ones are ignored
      if (d === 0) throw new UserError(`header ${field} is 0`, path, context.where);
      dims.push(d);
    }
    const dataStart = marker + startMarker.length;
    if (dataStart + size > buf.length) {
      throw new UserError(
        `X-Binary-Size is ${size} but only ${buf.length - dataStart} bytes follow (truncated file)`,
        path,
        context.where,
      );
    }
    if (count > maxElements)
      throw new UserError(`X-Binary-Number-of-Elements ${count} is too large`, path, context.where);
    if (dims.length > 0 && dims.reduce((a, b) => a * b, 1) !== count) {
      throw new UserError(
        `dimensions ${dims.join(' x ')} do not match X-Binary-Number-of-Elements ${count}`,
        path,
        context.where,
      );
    }
    const data = buf.subarray(dataStart, dataStart + size);
    const md5 = headers.fields.get('content-md5');
    if (md5 !== undefined && options.verifyMd5 !== false) {
      const actual = createHash('md5').update(data).digest('base64');
      if (actual !== md5.trim())
        throw new UserError('Content-MD5 does not match the data (corrupt section)', path, context.where);
    }
    const elementType = headers.fields.get('x-binary-element-type') ?? '"signed 32-bit integer"';
    const type = parseElementType(elementType, context);
    const { compression, packed } = parseCompression(headers.fields.get('content-type') ?? '', context);
    let values: Int32Array;
    switch (compression) {
      case 'byte_offset':
        // Every element takes at least one byte: refuse before allocating for a corrupt count.
        if (count > size)
          throw new UserError(
            `${count} elements cannot fit in ${size} bytes of byte-offset data`,
            path,
            context.where,
          );
        values = decodeByteOffset(data, count, context);
        break;
      case 'packed':
      case 'packed_v2': {
        if (type.bytes !== 4)
          throw new UserError(`packed ${type.bytes * 8}-bit elements are not supported`, path, context.where);
        // A chunk header (>= 6 bits) codes at most 128 elements.
        if (count > (Math.floor((size * 8) / 6) + 1) * 128) {
          throw new UserError(
            `${count} elements cannot fit in ${size} bytes of packed data`,
            path,
            context.where,
          );
        }
        const d = [dims[0] ?? 0, dims[1] ?? 0, dims[2] ?? 0] as [number, number, number];
        values = decodePacked(data, count, d, packed, context);
        break;
      }
      case 'none': {
        const order = (headers.fields.get('x-binary-element-byte-order') ?? 'LITTLE_ENDIAN').toUpperCase();
        values = decodeNone(data, count, type, order.includes('BIG'), context);
        break;
      }
    }
    arrays.push({
      index,
      binaryId,
      arrayId: arrayIdBefore(before, binaryId),
      compression,
      elementType: elementType.replace(/^"|"$/g, ''),
      dims: dims.length > 0 ? dims : [count],
      data: values,
      compressedBytes: size,
    });
    pos = dataStart + size;
  }
  if (arrays.length === 0) throw new UserError('no binary sections (not a CBF image)', path);
  const sections = parseArraySections(textParts.join('\n'), path);
  return { path, arrays, sections };
}

/** Reads and decodes a CBF file. */
export function readCbf(path: string, options: ParseCbfOptions = {}): CbfFile {
  return parseCbf(readUserFile(path), path, options);
}

/** One ASIC/panel placed in the slab. */
export interface SlabPanel {
  name: string;
  /** First slab row (ss) of the panel. */
  ssOffset: number;
  ss: number;
  fs: number;
}

export interface CbfSlab {
  /** [ss, fs] */
  shape: [number, number];
  data: Int32Array;
  panels: SlabPanel[];
}

/**
 * Stacks the image into one slab along ss: the CIF's array sections when present, else every 2-D plane
 * of every array. All panels must share one width (fs); otherwise a UserError says which differs.
 */
export function cbfToSlab(cbf: CbfFile): CbfSlab {
  interface Piece {
    name: string;
    array: CbfArray;
    fs: [number, number]; // 0-based inclusive
    ss: [number, number];
    plane: number;
  }
  const pieces: Piece[] = [];
  const byId = new Map(cbf.arrays.filter((a) => a.arrayId !== undefined).map((a) => [a.arrayId!, a]));
  const useSections = cbf.sections.length > 0 && cbf.sections.every((s) => byId.has(s.arrayId));
  if (useSections) {
    for (const section of cbf.sections) {
      const array = byId.get(section.arrayId)!;
      const [fast, second = 1, third = 1] = array.dims;
      const range = (index: number, size: number): [number, number] => {
        const r = section.ranges.get(index) ?? [1, size];
        if (r[1] > size) {
          throw new UserError(
            `section ${section.id} index ${index} ends at ${r[1]} beyond the array's ${size}`,
            cbf.path,
            '_array_structure_list_section',
          );
        }
        return [r[0] - 1, r[1] - 1];
      };
      const planes = range(3, third);
      if (planes[0] !== planes[1]) {
        throw new UserError(
          `section ${section.id} spans several planes`,
          cbf.path,
          '_array_structure_list_section',
        );
      }
      pieces.push({ name: section.id, array, fs: range(1, fast), ss: range(2, second), plane: planes[0] });
    }
  } else {
    for (const array of cbf.arrays) {
      const [fast, second = 1, third = 1] = array.dims;
      for (let plane = 0; plane < third; plane++) {
        const name = `${array.arrayId ?? `array ${array.index}`}${third > 1 ? ` plane ${plane + 1}` : ''}`;
        pieces.push({ name, array, fs: [0, fast - 1], ss: [0, second - 1], plane });
      }
    }
  }
  const width = pieces[0].fs[1] - pieces[0].fs[0] + 1;
  const odd = pieces.find((p) => p.fs[1] - p.fs[0] + 1 !== width);
  if (odd !== undefined) {
    throw new UserError(
      `panels differ in width (${odd.name} is ${odd.fs[1] - odd.fs[0] + 1}, ${pieces[0].name} is ${width}); cannot stack along ss`,
      cbf.path,
    );
  }
  const totalSs = pieces.reduce((n, p) => n + p.ss[1] - p.ss[0] + 1, 0);
  const data = new Int32Array(totalSs * width);
  const panels: SlabPanel[] = [];
  let ssOffset = 0;
  for (const piece of pieces) {
    const fast = piece.array.dims[0];
    const second = piece.array.dims[1] ?? 1;
    const rows = piece.ss[1] - piece.ss[0] + 1;
    for (let r = 0; r < rows; r++) {
      const from = (piece.plane * second + piece.ss[0] + r) * fast + piece.fs[0];
      data.set(piece.array.data.subarray(from, from + width), (ssOffset + r) * width);
    }
    panels.push({ name: piece.name, ssOffset, ss: rows, fs: width });
    ssOffset += rows;
  }
  return { shape: [totalSs, width], data, panels };
}

export interface CbfWriteArray {
  data: Int32Array;
  /** [fastest, second?, third?]; default [data.length]. */
  dims?: number[];
  arrayId?: string;
}

export interface CbfWriteOptions {
  compression?: 'byte_offset' | 'packed' | 'packed_v2' | 'none';
  /** For packed: `flat` or `uncorrelated_sections`. */
  packedFlag?: 'flat' | 'uncorrelated_sections';
}

const crlf = '\r\n';

/** Encodes arrays as an imgCIF file (CBFlib's layout, with MD5s and 4095 bytes of padding). */
export function encodeCbf(arrays: CbfWriteArray[], options: CbfWriteOptions = {}): Uint8Array {
  const compression = options.compression ?? 'byte_offset';
  const parts: Uint8Array[] = [];
  const text = (s: string) => parts.push(Buffer.from(s.replaceAll('\n', crlf), 'latin1'));
  text(
    '###CBF: VERSION 1.5\n# CBF file written by braggflow\n\ndata_braggflow\n\nloop_\n_array_data.array_id\n_array_data.binary_id\n_array_data.data\n',
  );
  arrays.forEach((array, k) => {
    const dims = array.dims ?? [array.data.length];
    if (dims.reduce((a, b) => a * b, 1) !== array.data.length) {
      throw new Error(`array ${k + 1}: dims ${dims.join(' x ')} do not hold ${array.data.length} values`);
    }
    const packed: PackedOptions = {
      v2: compression === 'packed_v2',
      flat: options.packedFlag === 'flat',
      uncorrelatedSections: options.packedFlag === 'uncorrelated_sections',
    };
    const dims3 = [dims[0] ?? 0, dims[1] ?? 0, dims[2] ?? 0] as [number, number, number];
    let payload: Uint8Array;
    let conversions: string;
    if (compression === 'byte_offset') {
      payload = encodeByteOffset(array.data);
      conversions = 'conversions="x-CBF_BYTE_OFFSET"';
    } else if (compression === 'none') {
      payload = new Uint8Array(array.data.length * 4);
      const view = new DataView(payload.buffer);
      for (let i = 0; i < array.data.length; i++) view.setInt32(i * 4, array.data[i], true);
      conversions = 'conversions="x-CBF_NONE"';
    } else {
      payload = encodePacked(array.data, dims3, packed);
      conversions = `conversions="x-CBF_${compression === 'packed' ? 'PACKED' : 'PACKED_V2'}"${options.packedFlag ? `; "${options.packedFlag}"` : ''}`;
    }
    const binaryId = k + 1;
    const md5 = createHash('md5').update(payload).digest('base64');
    const dimNames = ['Fastest', 'Second', 'Third'];
    text(
      [
        `${array.arrayId ?? `ARRAY_${binaryId}`} ${binaryId}`,
        ';',
        boundary,
        'Content-Type: application/octet-stream;',
        `     ${conversions}`,
        'Content-Transfer-Encoding: BINARY',
        `X-Binary-Size: ${payload.length}`,
        `X-Binary-ID: ${binaryId}`,
        'X-Binary-Element-Type: "signed 32-bit integer"',
        'X-Binary-Element-Byte-Order: LITTLE_ENDIAN',
        `Content-MD5: ${md5}`,
        `X-Binary-Number-of-Elements: ${array.data.length}`,
        ...dims.map((d, i) => `X-Binary-Size-${dimNames[i]}-Dimension: ${d}`),
        'X-Binary-Size-Padding: 4095',
        '',
        '',
      ].join('\n'),
    );
    parts.push(startMarker, payload, new Uint8Array(4095));
    text(`\n${boundary}--\n;\n`);
  });
  text('\n');
  return Buffer.concat(parts);
}

/** Writes arrays as a CBF file. */
export function writeCbf(path: string, arrays: CbfWriteArray[], options: CbfWriteOptions = {}): void {
  writeFileSync(path, encodeCbf(arrays, options));
}

/** True for a path CBF readers take (by its extension, as CrystFEL tells CBF from HDF5). */
export function isCbfPath(path: string): boolean {
  return extname(path).toLowerCase() === '.cbf';
}

/**
 * A CBF file's image as one float32 frame of the geometry's slab ([ss * fs], fs fastest); a shape the
 * geometry does not expect is a one-line error naming the file and both shapes.
 */
export function readCbfFrame(path: string, slabShape: readonly [number, number]): Float32Array {
  const slab = cbfToSlab(readCbf(path));
  if (slab.shape[0] !== slabShape[0] || slab.shape[1] !== slabShape[1]) {
    throw new UserError(
      `image [ss, fs] = [${slab.shape.join(', ')}] does not match the geometry's slab [${slabShape.join(', ')}]`,
      path,
    );
  }
  return Float32Array.from(slab.data);
}
