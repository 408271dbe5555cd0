/**
 * The data engine's matching (`braggflow match`) on one core: found peaks to predicted reflections,
 * one to one within 5 px on the same panel, per indexed chunk. Two figures per input: the matching
 * alone over chunks already parsed, and the whole command's work (read the stream file, parse, match).
 * Inputs: a synthetic stream shaped like indexamajig output (80 peaks and a 250-reflection crystal per
 * chunk, 60 of the peaks within a few pixels of a reflection) and the shared real streams when present.
 * Prints markdown.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isIndexed, matchChunk, matchStream, PanelIndex } from '../src/engine/stream-match.js';
import { parseStreamText } from '../src/io/stream/reader.js';
import type { StreamChunk } from '../src/io/stream/types.js';
import { formatStreamText } from '../src/io/stream/writer.js';
import { syntheticChunk, syntheticHeader } from '../test/stream-fixtures.js';
import { timeIt } from './time-it.js';

const rows: string[] = [];
const work = mkdtempSync(join(tmpdir(), 'braggflow-match-bench-'));

async function measure(label: string, path: string, chunks: StreamChunk[]): Promise<void> {
  const indexed = chunks.filter(isIndexed);
  const panels = new PanelIndex();
  let matched = 0;
  const matchS = await timeIt(() => {
    matched = 0;
    for (let i = 0; i < indexed.length; i++) matched += matchChunk(indexed[i], i, panels).matched;
  });
  const wholeS = await timeIt(() => matchStream(path));
  const found = indexed.reduce((n, c) => n + (c.peaks?.fsPx.length ?? 0), 0);
  const predicted = indexed.reduce(
    (n, c) => n + c.crystals.reduce((m, x) => m + (x.reflections?.h.length ?? 0), 0),
    0,
  );
  rows.push(
    `| ${label} | ${chunks.length} / ${indexed.length} | ${(found / indexed.length).toFixed(0)} / ${(predicted / indexed.length).toFixed(0)} / ${(matched / indexed.length).toFixed(0)} | ${(indexed.length / matchS).toFixed(0)} | ${(chunks.length / wholeS).toFixed(0)} |`,
  );
}

try {
  const chunks: StreamChunk[] = [];
  for (let i = 0; i < 5000; i++) {
    const chunk = syntheticChunk(i, 80, i % 5 === 4 ? 0 : 250);
    const reflections = chunk.crystals[0]?.reflections;
    if (reflections) {
      for (let j = 0; j < 60; j++) {
        reflections.fsPx[j] = Number((chunk.peaks!.fsPx[j] + ((j % 7) - 3) * 0.7).toFixed(1));
        reflections.ssPx[j] = Number((chunk.peaks!.ssPx[j] + ((j % 5) - 2) * 0.9).toFixed(1));
        reflections.panelIndex[j] = chunk.peaks!.panelIndex[j];
      }
    }
    chunks.push(chunk);
  }
  const path = join(work, 'synthetic.stream');
  writeFileSync(path, formatStreamText({ header: syntheticHeader(), chunks }));
  await measure('synthetic, indexamajig-shaped', path, parseStreamText(readFileSync(path, 'utf8')).chunks);
  for (const [name, file] of [
    ['cspad-5ht2b.stream (CrystFEL 0.9.1)', resolve('..', 'shared', 'data', 'streams', 'cspad-5ht2b.stream')],
    [
      'cspad-thermolysin.stream (CrystFEL 0.12.0)',
      resolve('..', 'shared', 'data', 'real', 'cspad-thermolysin.stream'),
    ],
  ]) {
    if (existsSync(file)) await measure(name, file, parseStreamText(readFileSync(file, 'utf8'), file).chunks);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

process.stdout.write(
  [
    '## Peak matching (`braggflow match`)',
    '',
    'One core; median of repeated runs after a warm-up. Found peaks to predicted reflections, one to one (Hungarian) within 5 px on the same panel. "matching" times `matchChunk` over chunks already parsed (per indexed frame); "whole" times `matchStream` on the file: reading, parsing and matching, per chunk read. The goal of issue 12 is 10,000 frames/s on one core.',
    '',
    '| stream | chunks / indexed | per indexed frame: found / predicted / matched | matching, frames/s | whole (read + parse + match), chunks/s |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
  ].join('\n'),
);
