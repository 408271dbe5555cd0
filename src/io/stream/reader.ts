/**
 * Reads CrystFEL streams. `readStream` streams a file of any size in constant memory: it reads the
 * header, then hands out chunks one at a time as the file is read (1 MiB at a time). `parseStreamText`
 * reads a whole stream held in a string.
 *
 * Malformed content (a table row with the wrong number of columns, a bad number, a chunk, crystal or
 * table left open, a truncated file) throws a UserError naming the file and `line N`.
 *
 * Text is read as UTF-8 with `\n` line ends. A file whose last line lacks its newline is read as if it
 * had one, and the writer writes it with one: the only way reading and writing back changes a file.
 */
import { createReadStream } from 'node:fs';
import { UserError } from '../../util/errors.js';
import { StreamParser } from './parser.js';
import type { StreamChunk, StreamHeader, StreamUnitCell } from './types.js';

/** Longer than any line CrystFEL writes by far; past it the file is not a stream (and memory stays bounded). */
const MAX_LINE_CHARS = 4 * 2 ** 20;

export interface StreamFile {
  header: StreamHeader;
  /** The geometry block's text (also `header.geometryText`). */
  geometryText?: string;
  /** The target unit cell (also `header.unitCell`). */
  unitCell?: StreamUnitCell;
  /** The chunks in file order; iterate once. Breaking out of the loop closes the file. */
  chunks: AsyncIterable<StreamChunk>;
  /** Lines after the last chunk (normally none); filled in once `chunks` has been read to the end. */
  trailingLines: string[];
}

export interface ParsedStream {
  header: StreamHeader;
  geometryText?: string;
  unitCell?: StreamUnitCell;
  chunks: StreamChunk[];
  trailingLines: string[];
}

/** The file's lines, a batch per block read; the last line may lack its newline. */
async function* lineBatches(
  path: string,
  blockBytes: number,
  onBytesRead?: (bytes: number) => void,
): AsyncGenerator<string[]> {
  const input = createReadStream(path, { encoding: 'utf8', highWaterMark: blockBytes });
  let carry = '';
  let lines = 0;
  try {
    for await (const block of input as AsyncIterable<string>) {
      onBytesRead?.(input.bytesRead);
      const text = carry + block;
      const batch = text.split('\n');
      carry = batch.pop() ?? '';
      lines += batch.length;
      if (carry.length > MAX_LINE_CHARS) {
        throw new UserError(
          `line is longer than ${MAX_LINE_CHARS} characters: not a CrystFEL stream`,
          path,
          `line ${lines + 1}`,
        );
      }
      if (batch.length > 0) yield batch;
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError('no such file', path);
    if (code !== undefined && !(error instanceof UserError))
      throw new UserError(`cannot read the file (${code})`, path);
    throw error;
  } finally {
    input.destroy();
  }
  if (carry !== '') yield [carry];
}

/**
 * Opens a stream file: resolves once the header is read; `chunks` then reads the rest lazily. At most
 * one block of text and the chunks parsed from it are held at a time.
 */
export interface StreamReadOptions {
  blockBytes?: number;
  /** Hears, once per key, of lines kept verbatim without being read (see StreamParser). */
  onWarning?: (message: string) => void;
  /** Bytes of the file read so far, after each block (for progress bars over a file of unknown chunks). */
  onBytesRead?: (bytes: number) => void;
}

export async function readStream(path: string, options: StreamReadOptions = {}): Promise<StreamFile> {
  const parser = new StreamParser(path, options.onWarning);
  const source = lineBatches(path, options.blockBytes ?? 2 ** 20, options.onBytesRead);
  let ended = false;
  let pending: unknown;

  /** Reads one more block into the parser; false at the end of the file. */
  const pump = async (): Promise<boolean> => {
    const next = await source.next();
    if (next.done) {
      ended = true;
      file.trailingLines.push(...parser.finish().trailingLines);
      return false;
    }
    try {
      for (const line of next.value) parser.push(line);
    } catch (error) {
      // Chunks completed before the bad line are still handed out first.
      pending = error;
    }
    return true;
  };

  const file: StreamFile = {
    header: undefined as unknown as StreamHeader,
    chunks: chunkIterable(),
    trailingLines: [],
  };

  async function* chunkIterable(): AsyncGenerator<StreamChunk> {
    try {
      while (true) {
        while (parser.ready.length > 0) yield parser.ready.shift() as StreamChunk;
        if (pending !== undefined) throw pending;
        if (ended || !(await pump())) {
          while (parser.ready.length > 0) yield parser.ready.shift() as StreamChunk;
          return;
        }
      }
    } finally {
      await source.return(undefined);
    }
  }

  try {
    while (!parser.headerComplete && !ended) {
      await pump();
      if (pending !== undefined && !parser.headerComplete) throw pending;
    }
  } catch (error) {
    await source.return(undefined);
    throw error;
  }
  const header = parser.header as StreamHeader;
  file.header = header;
  if (header.geometryText !== undefined) file.geometryText = header.geometryText;
  if (header.unitCell !== undefined) file.unitCell = header.unitCell;
  return file;
}

/** Reads a whole stream from a string; `source` names it in error messages. */
export function parseStreamText(
  text: string,
  source = '<stream text>',
  options: Pick<StreamReadOptions, 'onWarning'> = {},
): ParsedStream {
  const parser = new StreamParser(source, options.onWarning);
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    parser.push(text.slice(start, end));
    start = end + 1;
  }
  const { trailingLines } = parser.finish();
  const header = parser.header as StreamHeader;
  const parsed: ParsedStream = { header, chunks: parser.ready, trailingLines };
  if (header.geometryText !== undefined) parsed.geometryText = header.geometryText;
  if (header.unitCell !== undefined) parsed.unitCell = header.unitCell;
  return parsed;
}
