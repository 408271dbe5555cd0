/**
 * The integer compressions of CBF binary sections, decoded to Int32Array:
 *
 * - byte offset (`x-CBF_BYTE_OFFSET`, Pilatus/Eiger): each value is the previous one plus a delta
 *   stored as int8; the int8 -128 (0x80) escapes to an int16 delta, int16 -32768 (0x8000) to an int32
 *   delta, int32 -2^31 to an int64 delta; all little-endian; the first value's predecessor is 0.
 * - packed (`x-CBF_PACKED`, `x-CBF_PACKED_V2`, CCP4 "pack" by J. P. Abrahams as CBFlib >= 0.7 writes
 *   it): after a 32-byte header (element count, min, max, reserved: 64-bit each) a little-endian,
 *   least-significant-bit-first stream of chunks; a chunk header (6 bits; 7 in V2) gives 2^(h & 7)
 *   values of bits[h >> 3] bits each, signed offsets from a prediction. With array dimensions the
 *   prediction averages already-decoded neighbours (the left pixel, three above, and the same four in
 *   the previous section unless `uncorrelated_sections`); with `flat`, or without dimensions, it is
 *   the previous value.
 *
 * Hot loops work on typed arrays with no allocation per element. Corrupt or truncated input throws a
 * UserError naming the file and section; it never reads out of bounds or loops without progress.
 */
import { UserError } from '../util/errors.js';

/** Names the file and binary section in errors. */
export interface CodecContext {
  file?: string;
  where?: string;
}

function fail(message: string, context: CodecContext): never {
  throw new UserError(message, context.file, context.where);
}

/** Decodes `count` byte-offset values from `src`. */
export function decodeByteOffset(
  src: Uint8Array,
  count: number,
  context: CodecContext = {},
  out: Int32Array = new Int32Array(count),
): Int32Array {
  if (out.length < count) throw new Error(`output holds ${out.length} values, need ${count}`);
  const end = src.length;
  let p = 0;
  let value = 0;
  let i = 0;
  for (; i < count; i++) {
    if (p >= end) break;
    const b = src[p];
    if (b !== 0x80) {
      value = (value + ((b << 24) >> 24)) | 0;
      p += 1;
    } else {
      if (p + 3 > end) break;
      const d16 = src[p + 1] | (src[p + 2] << 8);
      if (d16 !== 0x8000) {
        value = (value + ((d16 << 16) >> 16)) | 0;
        p += 3;
      } else {
        if (p + 7 > end) break;
        const d32 = src[p + 3] | (src[p + 4] << 8) | (src[p + 5] << 16) | (src[p + 6] << 24);
        if (d32 !== -0x80000000) {
          value = (value + d32) | 0;
          p += 7;
        } else {
          if (p + 15 > end) break;
          // int64 delta: only its low 32 bits matter for a result that fits in int32.
          const low = src[p + 7] | (src[p + 8] << 8) | (src[p + 9] << 16) | (src[p + 10] << 24);
          value = (value + low) | 0;
          p += 15;
        }
      }
    }
    out[i] = value;
  }
  if (i < count) fail(`byte-offset data ends after ${i} of ${count} values (truncated or corrupt)`, context);
  return out;
}

/** Bytes the byte-offset encoding of `values` takes. */
export function byteOffsetSize(values: Int32Array): number {
  let size = 0;
  let previous = 0;
  for (let i = 0; i < values.length; i++) {
    const delta = values[i] - previous;
    previous = values[i];
    if (delta >= -127 && delta <= 127) size += 1;
    else if (delta >= -32767 && delta <= 32767) size += 3;
    else if (delta >= -2147483647 && delta <= 2147483647) size += 7;
    else size += 15;
  }
  return size;
}

/** Encodes `values` with the byte-offset compression (exact inverse of decodeByteOffset). */
export function encodeByteOffset(values: Int32Array): Uint8Array {
  const out = new Uint8Array(byteOffsetSize(values));
  let p = 0;
  let previous = 0;
  for (let i = 0; i < values.length; i++) {
    // Deltas of two int32 values span 33 bits: exact as doubles.
    const delta = values[i] - previous;
    previous = values[i];
    if (delta >= -127 && delta <= 127) {
      out[p++] = delta & 0xff;
    } else if (delta >= -32767 && delta <= 32767) {
      out[p] = 0x80;
      out[p + 1] = delta & 0xff;
      out[p + 2] = (delta >> 8) & 0xff;
      p += 3;
    } else if (delta >= -2147483647 && delta <= 2147483647) {
      out[p] = 0x80;
      out[p + 1] = 0x00;
      out[p + 2] = 0x80;
      out[p + 3] = delta & 0xff;
      out[p + 4] = (delta >> 8) & 0xff;
      out[p + 5] = (delta >> 16) & 0xff;
      out[p + 6] = (delta >>> 24) & 0xff;
      p += 7;
    } else {
      out.set([0x80, 0x00, 0x80, 0x00, 0x00, 0x00, 0x80], p);
      const low = delta | 0; // ToInt32: the low 32 bits of the 33-bit delta
      const high = delta < 0 ? -1 : 0;
      for (let k = 0; k < 4; k++) out[p + 7 + k] = (low >>> (8 * k)) & 0xff;
      for (let k = 0; k < 4; k++) out[p + 11 + k] = (high >>> (8 * k)) & 0xff;
      p += 15;
    }
  }
  return out;
}

/** Packed variants and flags, from the MIME `conversions` parameter. */
export interface PackedOptions {
  v2: boolean;
  /** `flat`: predict from the previous value only. */
  flat: boolean;
  /** `uncorrelated_sections`: do not average with the previous section. */
  uncorrelatedSections: boolean;
}

/** Bits per offset by chunk size code; 65 means "full width" (32 bits for 32-bit data). */
const packedBitsV1 = new Uint8Array([0, 4, 5, 6, 7, 8, 16, 65]);
const packedBitsV2 = new Uint8Array([0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 65]);

/** Size of the packed header: element count, minimum, maximum, reserved (64 bits each). */
const packedHeaderBytes = 32;

/**
 * Prediction of value `i` from decoded values, as CBFlib's averaging (cbf_update_jpa_pointers):
 * `col`, `row`, `section` locate `i` in [sections][rows][fast]. Sums wrap like C unsigned ints; the
 * rounding is (sum + n/2) >> log2(n) on int32.
 */
function averagedPrediction(
  out: Int32Array,
  i: number,
  col: number,
  row: number,
  section: number,
  fast: number,
  plane: number,
  correlated: boolean,
): number {
  if (row === 0) {
    if (col > 0) return out[i - 1];
    return section > 0 ? out[i - plane] : 0;
  }
  const above = i - fast;
  const withPrevious = correlated && section > 0;
  if (col === 0) {
    // The right-above and above pixels. For one-pixel rows CBFlib's "right-above" is the pixel being
    // decoded, still unset (zero) in the decoder's buffer: both our coders read it as 0.
    const rightAbove = fast > 1 ? out[above + 1] : 0;
    if (withPrevious) {
      const sum = rightAbove + out[above] + out[above + 1 - plane] + out[above - plane];
      return (((sum | 0) + 2) | 0) >> 2;
    }
    return ((((rightAbove + out[above]) | 0) + 1) | 0) >> 1;
  }
  if (col === fast - 1) {
    if (withPrevious) {
      const sum = out[i - 1] + out[above] + out[i - plane] + out[above - plane];
      return (((sum | 0) + 2) | 0) >> 2;
    }
    return ((((out[i - 1] + out[above]) | 0) + 1) | 0) >> 1;
  }
  const sum4 = out[i - 1] + out[above + 1] + out[above] + out[above - 1];
  if (withPrevious) {
    const below = i - plane;
    const sum = sum4 + out[below] + out[above + 1 - plane] + out[above - plane] + out[above - 1 - plane];
    return (((sum | 0) + 4) | 0) >> 3;
  }
  return (((sum4 | 0) + 2) | 0) >> 2;
}

function readUint64Low(src: Uint8Array, at: number): number {
  const low = (src[at] | (src[at + 1] << 8) | (src[at + 2] << 16) | (src[at + 3] << 24)) >>> 0;
  const high = (src[at + 4] | (src[at + 5] << 8) | (src[at + 6] << 16) | (src[at + 7] << 24)) >>> 0;
  return high === 0 ? low : Number.POSITIVE_INFINITY;
}

/**
 * Decodes `count` packed 32-bit values. `dims` = [fastest, second, third] (0 for absent) as in the
 * section's MIME headers; any non-zero dimension turns averaging on unless `flat`.
 */
export function decodePacked(
  src: Uint8Array,
  count: number,
  dims: [number, number, number],
  options: PackedOptions,
  context: CodecContext = {},
): Int32Array {
  if (src.length < packedHeaderBytes)
    fail(`packed data is ${src.length} bytes, shorter than its 32-byte header`, context);
  const declared = readUint64Low(src, 0);
  if (declared !== count) fail(`packed header says ${declared} elements, the MIME header ${count}`, context);
  const averaged = !options.flat && (dims[0] !== 0 || dims[1] !== 0 || dims[2] !== 0);
  const mid = dims[1] || 1;
  const slow = dims[2] || 1;
  const fast = dims[0] || Math.floor(count / (mid * slow));
  if (fast * mid * slow !== count)
    fail(`dimensions ${dims.join(' x ')} do not hold ${count} elements`, context);
  const plane = fast * mid;
  const correlated = !options.uncorrelatedSections;

  // A copy with 8 zero bytes of slack so the 5-byte window of the bit reader never leaves the array.
  const dataBytes = src.length - packedHeaderBytes;
  const buf = new Uint8Array(dataBytes + 8);
  buf.set(src.subarray(packedHeaderBytes));
  const totalBits = dataBytes * 8;
  const headerBits = options.v2 ? 7 : 6;
  const sizeMask = options.v2 ? 15 : 7;
  const table = options.v2 ? packedBitsV2 : packedBitsV1;

  const out = new Int32Array(count);
  let bitPos = 0;
  let i = 0;
  let col = 0;
  let row = 0;
  let section = 0;
  while (i < count) {
    if (bitPos + headerBits > totalBits)
      fail(`packed data ends after ${i} of ${count} values (truncated)`, context);
    let byte = bitPos >>> 3;
    let shift = bitPos & 7;
    const header = ((buf[byte] | (buf[byte + 1] << 8)) >>> shift) & ((1 << headerBits) - 1);
    bitPos += headerBits;
    let pixels = 1 << (header & 7);
    let bits = table[(header >> 3) & sizeMask];
    // Full width: 32 bits when averaging (CBFlib clips to the element size); otherwise CBFlib reads
    // 65 bits and keeps the first 32.
    let skip = 0;
    if (bits === 65) {
      skip = averaged ? 0 : 33;
      bits = 32;
    }
    if (pixels > count - i) pixels = count - i;
    if (bits > 0 && bitPos + pixels * (bits + skip) > totalBits) {
      fail(`packed data ends after ${i} of ${count} values (truncated)`, context);
    }
    const signShift = 32 - bits;
    for (let k = 0; k < pixels; k++) {
      let offset = 0;
      if (bits > 0) {
        byte = bitPos >>> 3;
        shift = bitPos & 7;
        let word =
          (buf[byte] | (buf[byte + 1] << 8) | (buf[byte + 2] << 16) | (buf[byte + 3] << 24)) >>> shift;
        if (shift + bits > 32) word |= buf[byte + 4] << (32 - shift);
        offset = (word << signShift) >> signShift;
        bitPos += bits + skip;
      }
      const prediction = averaged
        ? averagedPrediction(out, i, col, row, section, fast, plane, correlated)
        : i === 0
          ? 0
          : out[i - 1];
      out[i] = (prediction + offset) | 0;
      i++;
      if (++col === fast) {
        col = 0;
        if (++row === mid) {
          row = 0;
          section++;
        }
      }
    }
  }
  return out;
}

/** Little-endian, least-significant-bit-first bit writer for the packed encoder. */
class BitWriter {
  bytes = new Uint8Array(1024);
  bitPos = 0;

  put(value: number, bits: number): void {
    while (bits > 0) {
      const take = Math.min(bits, 24);
      this.ensure(this.bitPos + take + 8);
      const chunk = value & ((1 << take) - 1);
      let byte = this.bitPos >>> 3;
      let shift = this.bitPos & 7;
      let pending = chunk << shift;
      let pendingBits = take + shift;
      while (pendingBits > 0) {
        this.bytes[byte] |= pending & 0xff;
        pending >>>= 8;
        pendingBits -= 8;
        byte++;
        shift = 0;
      }
      this.bitPos += take;
      value = Math.floor(value / 2 ** take); // works for the 32-bit values we pass (two's complement bits)
      bits -= take;
    }
  }

  private ensure(bits: number): void {
    const need = (bits >>> 3) + 1;
    if (need <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(need, this.bytes.length * 2));
    grown.set(this.bytes);
    this.bytes = grown;
  }

  finish(): Uint8Array {
    return this.bytes.slice(0, (this.bitPos + 7) >>> 3);
  }
}

/** Smallest size code whose bit width holds every offset in `offsets[from, to)`. */
function sizeCode(offsets: Int32Array, from: number, to: number, table: Uint8Array): number {
  let need = 0;
  for (let k = from; k < to; k++) {
    const v = offsets[k];
    if (v === 0) continue;
    // Bits for a signed value: magnitude bits + sign bit.
    const magnitude = v < 0 ? ~v : v;
    const bits = 33 - Math.clz32(magnitude);
    if (bits > need) need = bits;
  }
  for (let code = 0; code < table.length; code++) {
    const width = table[code] === 65 ? 32 : table[code];
    if (width >= need) return code;
  }
  return table.length - 1;
}

/**
 * Packed encoder (for round-trip tests and small files; CBFlib's chunk choice is smarter, our chunks
 * are fixed runs of 8). Output decodes with decodePacked and, by construction of the format, CBFlib.
 */
export function encodePacked(
  values: Int32Array,
  dims: [number, number, number],
  options: PackedOptions,
): Uint8Array {
  const count = values.length;
  const averaged = !options.flat && (dims[0] !== 0 || dims[1] !== 0 || dims[2] !== 0);
  const mid = dims[1] || 1;
  const slow = dims[2] || 1;
  const fast = dims[0] || Math.floor(count / (mid * slow));
  if (fast * mid * slow !== count)
    throw new Error(`dimensions ${dims.join(' x ')} do not hold ${count} elements`);
  const plane = fast * mid;
  const offsets = new Int32Array(count);
  let col = 0;
  let row = 0;
  let section = 0;
  for (let i = 0; i < count; i++) {
    const prediction = averaged
      ? averagedPrediction(values, i, col, row, section, fast, plane, !options.uncorrelatedSections)
      : i === 0
        ? 0
        : values[i - 1];
    offsets[i] = (values[i] - prediction) | 0;
    if (++col === fast) {
      col = 0;
      if (++row === mid) {
        row = 0;
        section++;
      }
    }
  }
  const table = options.v2 ? packedBitsV2 : packedBitsV1;
  const headerBits = options.v2 ? 7 : 6;
  const writer = new BitWriter();
  const chunkLog2 = 3;
  for (let start = 0; start < count; start += 1 << chunkLog2) {
    const end = Math.min(count, start + (1 << chunkLog2));
    const code = sizeCode(offsets, start, end, table);
    writer.put((code << 3) | chunkLog2, headerBits);
    let bits = table[code];
    let skip = 0;
    if (bits === 65) {
      skip = averaged ? 0 : 33;
      bits = 32;
    }
    if (bits === 0) continue;
    for (let k = start; k < end; k++) {
      writer.put(offsets[k] >>> 0, bits);
      if (skip > 0) {
        // CBFlib pads a 65-bit field with zero bits after the 32 it uses.
        writer.put(0, 32);
        writer.put(0, 1);
      }
    }
  }
  const body = writer.finish();
  const out = new Uint8Array(packedHeaderBytes + body.length);
  const header = new DataView(out.buffer);
  header.setUint32(0, count, true);
  out.set(body, packedHeaderBytes);
  return out;
}
