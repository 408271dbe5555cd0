/**
 * Writes streams: records read by reader.ts come back out line for line (see types.ts on how), and
 * records built in code come out in CrystFEL's own order and printf formats, so CrystFEL's tools
 * (partialator, check_hkl, ...) read what the simulator writes.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { UserError } from '../../util/errors.js';
import { formatFixed } from './cformat.js';
import {
  chunkFields,
  chunkOrder,
  crystalFields,
  crystalOrder,
  FORMAT_PREFIX,
  hasField,
  headerFields,
  headerOrder,
  type LineField,
  orderUnits,
  type RecordUnit,
  writeFieldLine,
} from './fields.js';
import { formatPeakTable, formatReflectionTable } from './tables.js';
import {
  type LineRecordExtras,
  MARKERS,
  type StreamChunk,
  type StreamCrystal,
  type StreamHeader,
  type StreamUnitCell,
} from './types.js';

function fieldUnits<R extends LineRecordExtras>(record: R, fields: readonly LineField<R>[]): RecordUnit[] {
  const units: RecordUnit[] = [];
  for (const field of fields) {
    if (hasField(record, field)) units.push({ tag: field.tag, text: `${writeFieldLine(record, field)}\n` });
  }
  for (const line of record.otherLines ?? []) units.push({ tag: 'other', text: `${line}\n` });
  return units;
}

function withNewline(text: string): string {
  return text === '' || text.endsWith('\n') ? text : `${text}\n`;
}

function linesText(lines: readonly string[] | undefined): string {
  return lines && lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/** A CrystFEL unit cell file for `cell`, as CrystFEL's write_cell writes one (lengths in A). */
export function formatUnitCellText(cell: StreamUnitCell): string {
  const lines = ['CrystFEL unit cell file version 1.0', ''];
  if (cell.latticeType !== undefined) lines.push(`lattice_type = ${cell.latticeType}`);
  if (cell.centering !== undefined) lines.push(`centering = ${cell.centering}`);
  if (cell.uniqueAxis !== undefined) lines.push(`unique_axis = ${cell.uniqueAxis}`);
  const { axesNm, anglesDeg } = cell;
  if (axesNm)
    for (const [i, name] of ['a', 'b', 'c'].entries())
      lines.push(`${name} = ${formatFixed(axesNm[i] * 10, 2)} A`);
  if (anglesDeg)
    for (const [i, name] of ['al', 'be', 'ga'].entries())
      lines.push(`${name} = ${formatFixed(anglesDeg[i], 2)} deg`);
  return `${lines.join('\n')}\n`;
}

/** Everything before the first chunk. */
export function formatStreamHeader(header: StreamHeader): string {
  if (!/^\d+\.\d+$/.test(header.formatVersion))
    throw new Error(`stream header: bad formatVersion '${header.formatVersion}'`);
  const units = fieldUnits(header, headerFields);
  if (header.commandLine !== undefined) units.push({ tag: 'commandLine', text: `${header.commandLine}\n` });
  if (header.geometryText !== undefined) {
    units.push({
      tag: 'geometry',
      text: `${MARKERS.geometryBegin}\n${withNewline(header.geometryText)}${MARKERS.geometryEnd}\n`,
    });
  }
  if (header.unitCell !== undefined) {
    const text = header.unitCell.text ?? formatUnitCellText(header.unitCell);
    units.push({ tag: 'unitCell', text: `${MARKERS.cellBegin}\n${withNewline(text)}${MARKERS.cellEnd}\n` });
  }
  return `${FORMAT_PREFIX}${header.formatVersion}\n${orderUnits(units, headerOrder, header.lineOrder)}`;
}

export function formatCrystal(crystal: StreamCrystal): string {
  const units = fieldUnits(crystal, crystalFields);
  if (crystal.reflections) {
    const text = formatReflectionTable(crystal.reflections, MARKERS.reflectionsBegin, MARKERS.reflectionsEnd);
    units.push({ tag: 'reflections', text });
  }
  return `${MARKERS.crystalBegin}\n${orderUnits(units, crystalOrder, crystal.lineOrder)}${MARKERS.crystalEnd}\n`;
}

/** One chunk, from the lines before its begin marker to its end marker. */
export function formatChunk(chunk: StreamChunk): string {
  if (typeof chunk.imageFilename !== 'string') throw new Error('stream chunk: imageFilename is required');
  const units = fieldUnits(chunk, chunkFields);
  if (chunk.peaks)
    units.push({ tag: 'peaks', text: formatPeakTable(chunk.peaks, MARKERS.peaksBegin, MARKERS.peaksEnd) });
  for (const crystal of chunk.crystals ?? []) units.push({ tag: 'crystal', text: formatCrystal(crystal) });
  const body = orderUnits(units, chunkOrder, chunk.lineOrder);
  return `${linesText(chunk.linesBefore)}${MARKERS.chunkBegin}\n${body}${MARKERS.chunkEnd}\n`;
}

/** A whole stream as text (for tests and small streams; use createStreamWriter for large ones). */
export function formatStreamText(stream: {
  header: StreamHeader;
  chunks: Iterable<StreamChunk>;
  trailingLines?: readonly string[];
}): string {
  const parts = [formatStreamHeader(stream.header)];
  for (const chunk of stream.chunks) parts.push(formatChunk(chunk));
  parts.push(linesText(stream.trailingLines));
  return parts.join('');
}

export interface StreamWriter {
  /** Writes the header; call once, first. */
  writeHeader(header: StreamHeader): Promise<void>;
  /** Writes one chunk, waiting while the destination's buffer is full. */
  writeChunk(chunk: StreamChunk): Promise<void>;
  /** Writes `trailingLines` (what a reader found after the last chunk, usually none) and finishes. */
  close(trailingLines?: readonly string[]): Promise<void>;
}

export interface StreamWriterOptions {
  /** End the destination on close: default true for a path, false for a Writable you passed. */
  end?: boolean;
}

/** A streaming writer to a file path or any Writable (a socket, process.stdout, a gzip stream...). */
export function createStreamWriter(
  target: string | Writable,
  options: StreamWriterOptions = {},
): StreamWriter {
  const path = typeof target === 'string' ? target : undefined;
  const out = typeof target === 'string' ? createWriteStream(target) : target;
  const endOnClose = options.end ?? path !== undefined;
  let failure: Error | undefined;
  out.on('error', (error: NodeJS.ErrnoException) => {
    failure = error.code && path ? new UserError(`cannot write the file (${error.code})`, path) : error;
  });
  let state: 'new' | 'open' | 'closed' = 'new';

  const write = async (text: string) => {
    if (failure) throw failure;
    if (!out.write(text)) {
      // Wait for room (or for the destination to go away); the abort drops the losing listener.
      const abort = new AbortController();
      const signal = abort.signal;
      try {
        await Promise.race([once(out, 'drain', { signal }), once(out, 'close', { signal })]);
      } catch {
        // An 'error' event: recorded by the listener above.
      } finally {
        abort.abort();
      }
    }
    if (failure) throw failure;
  };

  return {
    async writeHeader(header) {
      if (state !== 'new') throw new Error('stream writer: the header is written once, before any chunk');
      state = 'open';
      await write(formatStreamHeader(header));
    },
    async writeChunk(chunk) {
      if (state !== 'open')
        throw new Error(`stream writer: ${state === 'new' ? 'write the header first' : 'closed'}`);
      await write(formatChunk(chunk));
    },
    async close(trailingLines) {
      if (state === 'closed') return;
      if (state === 'new') throw new Error('stream writer: closed before the header was written');
      state = 'closed';
      if (trailingLines && trailingLines.length > 0) await write(linesText(trailingLines));
      if (endOnClose) {
        out.end();
        try {
          await finished(out);
        } catch {
          // An 'error' event: recorded by the listener above.
        }
      }
      if (failure) throw failure;
    },
  };
}
