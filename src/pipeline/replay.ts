/**
 * `braggflow replay`: files streamed as a detector would stream them, to a ZeroMQ PUSH socket bound
 * at `--to` (sources/zmq.ts describes the messages), at `--rate` frames per second or as fast as the
 * receiver takes them (PUSH blocks while the receiver's queue is full). The stream ends with an end
 * message, so `run --source zmq:...` finishes with every frame accounted for.
 */
import { readFileSync } from 'node:fs';
import { computePixelMaps } from '../detector/pixel-maps.js';
import { parseGeometry } from '../io/geom.js';
import { UserError } from '../util/errors.js';
import { bytesOf } from './pixels.js';
import type { PixelArray, Source } from './protocol.js';
import { createFileSource, fileEntries } from './sources/files.js';
import { paced } from './sources/index.js';
import { isZmqAddress, loadZeromq } from './sources/zmq.js';

export type WireDtype = 'float32' | 'uint16' | 'int16' | 'int32';

export interface ReplayOptions {
  inputs: string[];
  geometryPath: string;
  /** tcp://HOST:PORT to bind. */
  to: string;
  rateHz?: number;
  /** Pixel type on the wire (default float32; integer types round and clamp). */
  dtype?: WireDtype;
  dataPath?: string;
  /** Called after each frame is sent. */
  onFrame?: (sent: number) => void;
}

export interface ReplayReport {
  frames: number;
  /** Frames that could not be read (not sent). */
  skipped: number;
  bytes: number;
  seconds: number;
}

function convert(values: PixelArray, dtype: WireDtype): PixelArray {
  if (dtype === 'float32') return values instanceof Float32Array ? values : Float32Array.from(values);
  const [Type, lo, hi] =
    dtype === 'uint16'
      ? ([Uint16Array, 0, 65535] as const)
      : dtype === 'int16'
        ? ([Int16Array, -32768, 32767] as const)
        : ([Int32Array, -(2 ** 31), 2 ** 31 - 1] as const);
  const out = new Type(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Math.min(hi, Math.max(lo, Math.round(values[i])));
  return out;
}

export async function replay(options: ReplayOptions): Promise<ReplayReport> {
  if (!isZmqAddress(options.to))
    throw new UserError(`must be tcp://HOST:PORT, got '${options.to}'`, undefined, '--to');
  const dtype = options.dtype ?? 'float32';
  const geometry = parseGeometry(readFileSync(options.geometryPath, 'utf8'), options.geometryPath);
  const maps = computePixelMaps(geometry);
  let source: Source = createFileSource({
    name: 'replay',
    entries: options.inputs.flatMap(fileEntries),
    geometry,
    slabShape: [maps.ssSize, maps.fsSize],
    dataPath: options.dataPath,
  });
  if (options.rateHz !== undefined) source = paced(source, options.rateHz);
  const zmq = await loadZeromq();
  const socket = new zmq.Push({ sendHighWaterMark: 4, linger: 10_000 });
  try {
    await socket.bind(options.to);
  } catch (error) {
    throw new UserError(`cannot bind ${options.to}: ${(error as Error).message}`, undefined, '--to');
  }
  const started = performance.now();
  let frames = 0;
  let skipped = 0;
  let bytes = 0;
  try {
    for await (const message of source.messages()) {
      if (message.kind === 'error') {
        skipped++;
        continue;
      }
      if (message.kind === 'end') break;
      const pixels = convert(message.pixels, dtype);
      const header = {
        shape: message.slabShape,
        dtype,
        file: message.id.file,
        event: message.id.event,
        photonEnergyEv: message.photonEnergyEv,
        clenM: message.clenM,
      };
      const payload = bytesOf(pixels);
      await socket.send([JSON.stringify(header), payload]);
      frames++;
      bytes += payload.length;
      options.onFrame?.(frames);
    }
    await socket.send([JSON.stringify({ end: true, frames })]);
  } finally {
    socket.close();
  }
  return { frames, skipped, bytes, seconds: (performance.now() - started) / 1000 };
}
