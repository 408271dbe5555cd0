/**
 * Pixels on the wire (Redis entries, ZeroMQ messages): the detector's own element type, as bytes,
 * and back. One place for the types a frame may travel in and the checks on its byte count.
 */
import type { PixelArray } from './protocol.js';

export type PixelDtype = 'uint16' | 'int16' | 'int32' | 'uint32' | 'float32';

const DTYPES: Record<
  PixelDtype,
  { bytes: number; make: (b: ArrayBuffer, o: number, n: number) => PixelArray }
> = {
  uint16: { bytes: 2, make: (b, o, n) => new Uint16Array(b, o, n) },
  int16: { bytes: 2, make: (b, o, n) => new Int16Array(b, o, n) },
  int32: { bytes: 4, make: (b, o, n) => new Int32Array(b, o, n) },
  uint32: { bytes: 4, make: (b, o, n) => new Uint32Array(b, o, n) },
  float32: { bytes: 4, make: (b, o, n) => new Float32Array(b, o, n) },
};

export function dtypeOf(pixels: PixelArray): PixelDtype {
  if (pixels instanceof Uint16Array) return 'uint16';
  if (pixels instanceof Int16Array) return 'int16';
  if (pixels instanceof Int32Array) return 'int32';
  if (pixels instanceof Uint32Array) return 'uint32';
  return 'float32';
}

export function bytesOf(array: ArrayBufferView): Buffer {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
}

/** Pixels from bytes, copied into an aligned buffer of their type; `what` starts an error. */
export function pixelsFrom(bytes: Buffer, dtype: PixelDtype, count: number, what: string): PixelArray {
  const spec = DTYPES[dtype];
  if (spec === undefined) throw new Error(`${what}: unknown pixel type '${dtype}'`);
  if (bytes.length !== count * spec.bytes)
    throw new Error(
      `${what}: ${bytes.length} bytes of pixels, expected ${count * spec.bytes} (${count} ${dtype})`,
    );
  const copy = new ArrayBuffer(bytes.length);
  new Uint8Array(copy).set(bytes);
  return spec.make(copy, 0, count);
}
