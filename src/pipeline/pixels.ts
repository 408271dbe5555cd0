/**
 * Pixels on the wire (Redis entries, ZeroMQ messages): the detector's own element type, as bytes,
 * and back. One place for the types a frame may travel in and the checks on its byte count. And
 * pixels lent: a source's frame memory, used again for later frames once everyone let go.
 */
import { sharedFloat32 } from '../util/worker-pool.js';
import type { PixelArray } from './protocol.js';

/**
 * A frame's pixel memory, lent by its source. The run lets go (`done`) when the frame has been
 * processed and handed to the sinks; whatever keeps the pixels longer holds the loan first (a writing
 * thread's queue, the monitor's gallery) and lets go when it no longer reads them. Then the source
 * reads a later frame into the same memory: no allocation per frame, where each frame's fresh 4 MiB
 * (mapped, faulted in, zeroed, unmapped, with the other threads' TLBs flushed) cost the reading
 * thread 1 to 30 ms a frame on the 2-core VM, depending on the load.
 */
export interface PixelLoan {
  /** One more holder (before `done`); returns its let-go (once). */
  hold(): () => void;
  /** The run done with the frame: its own hold let go (once). */
  done(): void;
}

/** Frame memory (float32 in SharedArrayBuffers, for threads) lent frame by frame and taken back. */
export function createFramePool(length: number, keep = 32) {
  const free: Float32Array[] = [];
  return {
    /** Memory for one frame (reused, else new) and its loan. */
    take(): { pixels: Float32Array; loan: PixelLoan } {
      const pixels = free.pop() ?? sharedFloat32(length);
      let holders = 1;
      const once = (letGo: () => void) => {
        let called = false;
        return () => {
          if (called) return;
          called = true;
          letGo();
        };
      };
      const letGo = () => {
        holders--;
        if (holders === 0 && free.length < keep) free.push(pixels);
      };
      return {
        pixels,
        loan: {
          hold() {
            if (holders === 0) throw new Error('a frame loan held after everyone let go');
            holders++;
            return once(letGo);
          },
          done: once(letGo),
        },
      };
    },
  };
}

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
