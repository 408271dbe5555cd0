/**
 * Frames from a detector stream over ZeroMQ: a PULL socket connected to `tcp://HOST:PORT` (the
 * detector side, or `braggflow replay`, binds a PUSH socket). Each message has two parts:
 *
 *   1. a JSON header: {"shape": [ss, fs], "dtype": "uint16"|"int16"|"int32"|"float32", "event"?,
 *      "file"?, "photonEnergyEv"?, "clenM"?} — or {"end": true, "frames": N} when the stream ends
 *   2. the pixels, ss * fs values of that type, little-endian, fs fastest
 *
 * A message that does not fit (bad JSON, wrong byte count, a shape that is not the geometry's) is a
 * dead letter with the reason, and the stream goes on. Without an end message the source runs until
 * the run is stopped. The receive high-water mark is small, so a slow pipeline holds the sender back
 * (its PUSH blocks) instead of queueing frames here. zeromq is an optional dependency, loaded here on
 * use: its npm package ships prebuilt add-ons, nothing is compiled.
 */
import { UserError } from '../../util/errors.js';
import { type PixelDtype, pixelsFrom } from '../pixels.js';
import type { PixelArray, SourceMessage } from '../protocol.js';

export interface ZmqSourceOptions {
  name: string;
  /** tcp://HOST:PORT to connect to. */
  address: string;
  slabShape: [number, number];
  /** Checked between messages: true ends the source. */
  stopped?: () => boolean;
  /** Messages queued in the socket before the sender is held back (default 4). */
  highWaterMark?: number;
}

/** The pixel types a stream message may carry. */
const STREAM_DTYPES = ['uint16', 'int16', 'int32', 'float32'];

/** A ZeroMQ endpoint braggflow speaks: tcp://HOST:PORT (or ipc://PATH). */
export function isZmqAddress(text: string): boolean {
  return /^(tcp|ipc):\/\/\S+$/.test(text);
}

/** zeromq, loaded on use (an optional dependency). */
export async function loadZeromq(): Promise<typeof import('zeromq')> {
  try {
    return await import('zeromq');
  } catch (error) {
    throw new UserError(
      `the zeromq package is not installed (npm install zeromq): ${(error as Error).message.split('\n')[0]}`,
    );
  }
}

/** One stream message as a pipeline message (`seq` and the source name filled in). */
export function decodeZmqFrame(
  parts: Buffer[],
  seq: number,
  name: string,
  slabShape: [number, number],
): SourceMessage | { kind: 'stream-end'; frames: number } {
  const fallback = { source: name, file: '', event: seq };
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(parts[0]?.toString() ?? '');
  } catch {
    return { kind: 'error', id: fallback, seq, reason: 'stream message: header is not JSON' };
  }
  if (header.end === true) return { kind: 'stream-end', frames: Number(header.frames) };
  const id = {
    source: name,
    file: typeof header.file === 'string' ? header.file : '',
    event: Number.isInteger(header.event) ? (header.event as number) : seq,
  };
  const fail = (reason: string): SourceMessage => ({
    kind: 'error',
    id,
    seq,
    reason: `stream message: ${reason}`,
  });
  const shape = header.shape as unknown;
  if (!Array.isArray(shape) || shape.length !== 2 || shape[0] !== slabShape[0] || shape[1] !== slabShape[1])
    return fail(`shape ${JSON.stringify(shape)} is not the geometry's slab [${slabShape.join(', ')}]`);
  const dtype = String(header.dtype);
  if (!STREAM_DTYPES.includes(dtype)) return fail(`dtype '${dtype}' is not uint16, int16, int32 or float32`);
  let pixels: PixelArray;
  try {
    pixels = pixelsFrom(
      parts[1] ?? Buffer.alloc(0),
      dtype as PixelDtype,
      slabShape[0] * slabShape[1],
      'frame',
    );
  } catch (error) {
    return fail((error as Error).message);
  }
  return {
    kind: 'frame',
    id,
    seq,
    slabShape,
    pixels,
    photonEnergyEv: typeof header.photonEnergyEv === 'number' ? header.photonEnergyEv : undefined,
    clenM: typeof header.clenM === 'number' ? header.clenM : undefined,
    sentAtMs: Date.now(),
  };
}

export function createZmqSource(options: ZmqSourceOptions) {
  const { name, slabShape } = options;
  return {
    name,
    async *messages(): AsyncGenerator<SourceMessage> {
      const zmq = await loadZeromq();
      const socket = new zmq.Pull({ receiveHighWaterMark: options.highWaterMark ?? 4, receiveTimeout: 250 });
      socket.connect(options.address);
      let seq = 0;
      // What the sender says it sent, from its end message: frames lost on the way then show as lost.
      let announced: number | undefined;
      try {
        while (!(options.stopped?.() ?? false)) {
          let parts: Buffer[];
          try {
            parts = await socket.receive();
          } catch (error) {
            // The receive timeout: nothing arrived; look at the stop flag again.
            if ((error as { code?: string }).code === 'EAGAIN') continue;
            throw error;
          }
          const message = decodeZmqFrame(parts, seq, name, slabShape);
          if (message.kind === 'stream-end') {
            if (Number.isInteger(message.frames) && message.frames >= seq) announced = message.frames;
            break;
          }
          seq++;
          yield message;
        }
      } finally {
        socket.close();
      }
      yield { kind: 'end', source: name, frames: announced ?? seq };
    },
  };
}
