/**
 * How pipeline messages travel as Redis Stream entries: a field `h` with a JSON header (the kind and
 * every scalar), `p` with the pixels in their own type (a uint16 frame stays 2 bytes a pixel, no
 * JSON, no base64), and for results `k`, the peak columns as float32 (count x 6, peakColumns order).
 * Decoding checks everything a corrupt or foreign entry could get wrong and says what, so a consumer
 * turns it into a dead letter instead of crashing.
 */
import { createPeakList, type PeakList, peakColumns } from '../../peaks/peak-list.js';
import { bytesOf, dtypeOf, type PixelDtype, pixelsFrom } from '../pixels.js';
import type { FrameId, FrameResult, SourceMessage } from '../protocol.js';

interface Header {
  kind: 'frame' | 'end' | 'error' | 'result';
  [key: string]: unknown;
}

/** Fields of a source message, ready for XADD (flattened field, value pairs). */
export function encodeSourceMessage(message: SourceMessage): (string | Buffer)[] {
  if (message.kind === 'frame') {
    const { pixels, ...rest } = message;
    return ['h', JSON.stringify({ ...rest, dtype: dtypeOf(pixels) }), 'p', bytesOf(pixels)];
  }
  return ['h', JSON.stringify(message)];
}

function fieldsOf(fields: Buffer[]): Map<string, Buffer> {
  const map = new Map<string, Buffer>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i].toString(), fields[i + 1]);
  return map;
}

function headerOf(fields: Map<string, Buffer>): Header {
  const text = fields.get('h');
  if (text === undefined) throw new Error('entry has no header field h');
  let header: unknown;
  try {
    header = JSON.parse(text.toString());
  } catch {
    throw new Error('header is not JSON');
  }
  const kind = (header as Header | null)?.kind;
  if (kind !== 'frame' && kind !== 'end' && kind !== 'error' && kind !== 'result')
    throw new Error(`header kind '${String(kind)}' is not frame, end, error or result`);
  return header as Header;
}

function checkId(header: Header, what: string): FrameId {
  const id = header.id as FrameId | undefined;
  if (
    id === undefined ||
    typeof id.source !== 'string' ||
    typeof id.file !== 'string' ||
    !Number.isInteger(id.event)
  )
    throw new Error(`${what}: header has no frame id {source, file, event}`);
  return id;
}

function slabOf(header: Header, what: string): [number, number] {
  const shape = header.slabShape as unknown;
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((n) => Number.isInteger(n) && n > 0))
    throw new Error(`${what}: slabShape ${JSON.stringify(shape)} is not [ss, fs]`);
  return shape as [number, number];
}

/**
 * A source message from stream fields. A frame whose header names it but whose payload is wrong comes
 * back as an `error` about that frame (the reason says what was wrong); an entry with no usable id throws.
 */
export function decodeSourceMessage(raw: Buffer[]): SourceMessage {
  const fields = fieldsOf(raw);
  const header = headerOf(fields);
  if (header.kind === 'end') {
    if (typeof header.source !== 'string' || !Number.isInteger(header.frames))
      throw new Error('end message without source and frames');
    return { kind: 'end', source: header.source, frames: header.frames as number };
  }
  const id = checkId(header, header.kind);
  const seq = Number.isInteger(header.seq) ? (header.seq as number) : -1;
  if (header.kind === 'error') return { kind: 'error', id, seq, reason: String(header.reason) };
  if (header.kind !== 'frame') throw new Error(`a ${header.kind} entry on the frame stream`);
  try {
    const slabShape = slabOf(header, 'frame');
    const bytes = fields.get('p');
    if (bytes === undefined) throw new Error('frame: no pixel field p');
    const pixels = pixelsFrom(bytes, header.dtype as PixelDtype, slabShape[0] * slabShape[1], 'frame');
    return {
      kind: 'frame',
      id,
      seq,
      slabShape,
      pixels,
      photonEnergyEv: header.photonEnergyEv as number | undefined,
      clenM: header.clenM as number | undefined,
      sentAtMs: Number(header.sentAtMs),
    };
  } catch (error) {
    return { kind: 'error', id, seq, reason: `corrupt frame: ${(error as Error).message}` };
  }
}

/** A result, or what the source told the results stream (its end, its dead letters), as fields. */
export type ResultMessage =
  | { kind: 'result'; result: FrameResult }
  | Extract<SourceMessage, { kind: 'end' | 'error' }>;

function peaksBytes(list: PeakList): Buffer {
  const packed = new Float32Array(list.count * peakColumns.length);
  peakColumns.forEach((column, c) => {
    packed.set(list[column].subarray(0, list.count), c * list.count);
  });
  return bytesOf(packed);
}

function peaksFrom(bytes: Buffer, count: number): PeakList {
  const width = peakColumns.length;
  if (bytes.length !== count * width * 4)
    throw new Error(`result: ${bytes.length} bytes of peaks for ${count} peaks`);
  const copy = new ArrayBuffer(bytes.length);
  new Uint8Array(copy).set(bytes);
  const packed = new Float32Array(copy);
  const list = createPeakList(count);
  list.count = count;
  peakColumns.forEach((column, c) => {
    list[column].set(packed.subarray(c * count, (c + 1) * count));
  });
  return list;
}

export function encodeResultMessage(message: ResultMessage): (string | Buffer)[] {
  if (message.kind !== 'result') return ['h', JSON.stringify(message)];
  const { peaks, pixels, ...rest } = message.result;
  const fields: (string | Buffer)[] = [
    'h',
    JSON.stringify({
      ...rest,
      kind: 'result',
      count: peaks.count,
      dtype: pixels === undefined ? undefined : dtypeOf(pixels),
    }),
    'k',
    peaksBytes(peaks),
  ];
  if (pixels !== undefined) fields.push('p', bytesOf(pixels));
  return fields;
}

export function decodeResultMessage(raw: Buffer[]): ResultMessage {
  const fields = fieldsOf(raw);
  const header = headerOf(fields);
  if (header.kind === 'end' || header.kind === 'error') return decodeSourceMessage(raw) as ResultMessage;
  if (header.kind !== 'result') throw new Error(`a ${header.kind} entry on the results stream`);
  const id = checkId(header, 'result');
  const slabShape = slabOf(header, 'result');
  const count = Number(header.count);
  const peaks = peaksFrom(fields.get('k') ?? Buffer.alloc(0), Number.isInteger(count) ? count : -1);
  const bytes = fields.get('p');
  return {
    kind: 'result',
    result: {
      id,
      seq: Number(header.seq),
      slabShape,
      peaks,
      hit: header.hit === true,
      pixels:
        bytes === undefined
          ? undefined
          : pixelsFrom(bytes, header.dtype as PixelDtype, slabShape[0] * slabShape[1], 'result'),
      photonEnergyEv: header.photonEnergyEv as number | undefined,
      clenM: header.clenM as number | undefined,
      sentAtMs: Number(header.sentAtMs),
      doneAtMs: Number(header.doneAtMs),
    },
  };
}
