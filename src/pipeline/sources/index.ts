/**
 * `--source` specs to sources: `file:PATH` (or a bare path: CXI/HDF5, CBF, or a `.lst` of them),
 * `sim:PRESET[?frames=N&seed=S&hitRate=P]` and `zmq:tcp://HOST:PORT` (a detector stream); and `paced`, which holds any source to a repetition rate
 * as a detector would (`--rate HZ`).
 */
import { existsSync } from 'node:fs';
import type { PixelMaps } from '../../detector/pixel-maps.js';
import type { Geometry } from '../../io/geom.js';
import { presetNames } from '../../simulate/presets.js';
import { UserError } from '../../util/errors.js';
import type { Source, SourceMessage } from '../protocol.js';
import { createFileSource, fileEntries } from './files.js';
import { createSimSource } from './sim.js';
import { createZmqSource, isZmqAddress } from './zmq.js';

export interface SourceContext {
  geometry: Geometry;
  maps: PixelMaps;
  /** Frame dataset in HDF5 files (default /entry_1/data_1/data). */
  dataPath?: string;
  /** Endless sources end when this turns true. */
  stopped?: () => boolean;
  /** Files are read ahead on a thread of their own (default false: on this thread). */
  readThread?: boolean;
}

const SIM_KEYS = ['frames', 'seed', 'hitRate'] as const;

/**
 * A `--source` spec's kind and the rest: `KIND:REST`, or a bare path (kind `file`). A one-letter
 * prefix is a drive (`C:\run.cxi`), not a kind.
 */
export function parseSourceSpec(spec: string): { kind: string; body: string } {
  const colon = spec.indexOf(':');
  return colon > 1
    ? { kind: spec.slice(0, colon), body: spec.slice(colon + 1) }
    : { kind: 'file', body: spec };
}

/** The file (or list) a file source reads, or undefined for other kinds. */
export function sourceFilePath(spec: string): string | undefined {
  const { kind, body } = parseSourceSpec(spec);
  return kind === 'file' ? body : undefined;
}

export function openSource(spec: string, context: SourceContext): Source {
  const { kind, body } = parseSourceSpec(spec);
  if (kind === 'file') {
    if (!existsSync(body)) throw new UserError(`no such file '${body}'`, undefined, '--source');
    return createFileSource({
      name: spec,
      entries: fileEntries(body),
      geometry: context.geometry,
      slabShape: [context.maps.ssSize, context.maps.fsSize],
      dataPath: context.dataPath,
      readAhead: context.readThread ? 4 : 0,
    });
  }
  if (kind === 'sim') {
    const [preset, query = ''] = body.split('?', 2);
    if (!presetNames.includes(preset))
      throw new UserError(
        `unknown preset '${preset}' (known: ${presetNames.join(', ')})`,
        undefined,
        '--source',
      );
    const values: Partial<Record<(typeof SIM_KEYS)[number], number>> = {};
    for (const [key, text] of new URLSearchParams(query)) {
      if (!(SIM_KEYS as readonly string[]).includes(key))
        throw new UserError(
          `unknown sim option '${key}' (known: ${SIM_KEYS.join(', ')})`,
          undefined,
          '--source',
        );
      const value = Number(text);
      if (text.trim() === '' || !Number.isFinite(value))
        throw new UserError(`sim option ${key} must be a number, got '${text}'`, undefined, '--source');
      values[key as (typeof SIM_KEYS)[number]] = value;
    }
    if (values.frames !== undefined && (!Number.isInteger(values.frames) || values.frames < 1))
      throw new UserError(
        `sim option frames must be a positive integer, got ${values.frames}`,
        undefined,
        '--source',
      );
    return createSimSource({
      name: spec,
      preset,
      frames: values.frames,
      seed: values.seed,
      hitRate: values.hitRate,
      geometry: context.geometry,
      maps: context.maps,
      stopped: context.stopped,
    });
  }
  if (kind === 'zmq') {
    if (!isZmqAddress(body))
      throw new UserError(`zmq source must be zmq:tcp://HOST:PORT, got '${spec}'`, undefined, '--source');
    return createZmqSource({
      name: spec,
      address: body,
      slabShape: [context.maps.ssSize, context.maps.fsSize],
      stopped: context.stopped,
    });
  }
  throw new UserError(
    `unknown source kind '${kind}:' (known: file:PATH, sim:PRESET, zmq:tcp://HOST:PORT)`,
    undefined,
    '--source',
  );
}

/** `source` held to `hz` frames per second (frame k leaves no earlier than k / hz after the first). */
export function paced(source: Source, hz: number): Source {
  if (!(hz > 0) || !Number.isFinite(hz))
    throw new UserError(`must be a positive rate in Hz, got ${hz}`, undefined, '--rate');
  return {
    name: source.name,
    async *messages(): AsyncGenerator<SourceMessage> {
      let start: number | undefined;
      let sent = 0;
      for await (const message of source.messages()) {
        if (message.kind === 'frame') {
          start ??= performance.now();
          const due = start + (sent++ * 1000) / hz;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          message.sentAtMs = Date.now();
        }
        yield message;
      }
    },
  };
}
