/**
 * CrystFEL stream throughput on one core: parsing from a string, streaming from a file (readStream)
 * and writing (formatChunk, createStreamWriter). A synthetic stream shaped like indexamajig output
 * (80 peaks and one 250-reflection crystal per chunk); also the shared real stream when present.
 * Prints markdown.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseStreamText, readStream } from '../src/io/stream/reader.js';
import type { StreamChunk } from '../src/io/stream/types.js';
import {
  createStreamWriter,
  formatChunk,
  formatStreamHeader,
  formatStreamText,
} from '../src/io/stream/writer.js';
import { syntheticChunk, syntheticHeader } from '../test/stream-fixtures.js';
import { timeIt } from './time-it.js';

const rows: string[] = [];
const row = (...cells: (string | number)[]) => rows.push(`| ${cells.join(' | ')} |`);
const rate = (bytes: number, seconds: number) => (bytes / 1e6 / seconds).toFixed(1);

const work = mkdtempSync(join(tmpdir(), 'braggflow-stream-bench-'));
try {
  const chunkCount = 1000;
  const chunks: StreamChunk[] = [];
  for (let i = 0; i < chunkCount; i++) chunks.push(syntheticChunk(i, 80, 250));
  const text = formatStreamText({ header: syntheticHeader(), chunks });
  const bytes = Buffer.byteLength(text);
  const path = join(work, 'synthetic.stream');
  const writeFile = async () => {
    const writer = createStreamWriter(path);
    await writer.writeHeader(syntheticHeader());
    for (const chunk of chunks) await writer.writeChunk(chunk);
    await writer.close();
  };
  await writeFile();
  const parsed = parseStreamText(text);
  const rowsInFile = parsed.chunks.reduce(
    (sum, c) =>
      sum + (c.peaks?.fsPx.length ?? 0) + c.crystals.reduce((s, x) => s + (x.reflections?.h.length ?? 0), 0),
    0,
  );

  const label = `synthetic, ${chunkCount} chunks, ${(bytes / 1e6).toFixed(1)} MB, ${rowsInFile} table rows`;
  const parseS = await timeIt(() => parseStreamText(text));
  const streamS = await timeIt(async () => {
    const stream = await readStream(path);
    for await (const _chunk of stream.chunks);
  });
  const formatS = await timeIt(() => {
    let n = formatStreamHeader(parsed.header).length;
    for (const chunk of parsed.chunks) n += formatChunk(chunk).length;
    return n;
  });
  const writeS = await timeIt(writeFile);
  row(label, 'parseStreamText (string)', (parseS * 1e3).toFixed(0), rate(bytes, parseS));
  row(label, 'readStream (file, 1 MiB blocks)', (streamS * 1e3).toFixed(0), rate(bytes, streamS));
  row(label, 'formatChunk (string)', (formatS * 1e3).toFixed(0), rate(bytes, formatS));
  row(label, 'createStreamWriter (file)', (writeS * 1e3).toFixed(0), rate(bytes, writeS));

  const shared = resolve('..', 'shared', 'data', 'streams', 'cspad-5ht2b.stream');
  if (existsSync(shared)) {
    const real = readFileSync(shared, 'utf8');
    const realBytes = statSync(shared).size;
    const realLabel = `cspad-5ht2b.stream (CrystFEL 0.9.1), ${(realBytes / 1e6).toFixed(2)} MB`;
    const realParseS = await timeIt(() => parseStreamText(real), 2);
    const realParsed = parseStreamText(real);
    const realFormatS = await timeIt(() => formatStreamText(realParsed), 2);
    row(realLabel, 'parseStreamText (string)', (realParseS * 1e3).toFixed(1), rate(realBytes, realParseS));
    row(realLabel, 'formatStreamText (string)', (realFormatS * 1e3).toFixed(1), rate(realBytes, realFormatS));
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

process.stdout.write(
  [
    '## CrystFEL stream reader and writer',
    '',
    'One core; median of repeated runs after a warm-up. MB = 10^6 bytes of stream text.',
    '',
    '| input | operation | ms | MB/s |',
    '| --- | --- | ---: | ---: |',
    ...rows,
    '',
  ].join('\n'),
);
