import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  formatExponent,
  formatFixed,
  formatSignedFixed,
  parseCInt,
  parseCNumber,
} from '../src/io/stream/cformat.js';
import { crystfelColumnToCxi, crystfelToCxiPx, cxiToCrystfelPx } from '../src/io/stream/pixels.js';
import { parseStreamText, readStream } from '../src/io/stream/reader.js';
import type { StreamChunk } from '../src/io/stream/types.js';
import { createStreamWriter, formatChunk, formatStreamText } from '../src/io/stream/writer.js';
import { UserError } from '../src/util/errors.js';
import { needsShared, runCli, sharedPath } from './helpers.js';
import { syntheticChunk, syntheticHeader } from './stream-fixtures.js';

const STREAM = sharedPath('data', 'streams', 'cspad-5ht2b.stream');
const work = mkdtempSync(join(tmpdir(), 'braggflow-stream-'));
after(() => rmSync(work, { recursive: true, force: true }));

function sharedText(): string {
  return readFileSync(STREAM, 'utf8');
}

/** Whitespace-separated fields of the line right after the first line equal to `marker`, and its number. */
function rowAfter(text: string, marker: string): { fields: string[]; line: number } {
  const lines = text.split('\n');
  const at = lines.indexOf(marker);
  assert.ok(at >= 0, `no ${marker}`);
  return { fields: lines[at + 2].trim().split(/\s+/), line: at + 3 };
}

function firstValue(text: string, prefix: string): string {
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  assert.ok(line !== undefined, `no ${prefix}`);
  return line.slice(prefix.length);
}

describe('the shared CrystFEL 0.9.1 stream', needsShared, () => {
  test('counts chunks, crystals, peak rows and reflection rows', () => {
    const text = sharedText();
    const parsed = parseStreamText(text, STREAM);
    const crystals = parsed.chunks.flatMap((chunk) => chunk.crystals);
    const peaks = parsed.chunks.reduce((sum, chunk) => sum + (chunk.peaks?.fsPx.length ?? 0), 0);
    const reflections = crystals.reduce((sum, crystal) => sum + (crystal.reflections?.h.length ?? 0), 0);
    assert.equal(parsed.chunks.length, 70);
    assert.equal(crystals.length, 32);
    assert.equal(peaks, 2172);
    assert.equal(reflections, 7966);
    // Each table has the rows its record announces.
    for (const chunk of parsed.chunks) assert.equal(chunk.peaks?.fsPx.length, chunk.numPeaks);
    for (const crystal of crystals) assert.equal(crystal.reflections?.h.length, crystal.numReflections);
  });

  test('reads the header, geometry and target cell', () => {
    const text = sharedText();
    const { header, geometryText, unitCell } = parseStreamText(text, STREAM);
    assert.equal(header.formatVersion, '2.3');
    assert.equal(header.crystfelVersion, '0.9.1+2c51b20e');
    assert.match(
      header.commandLine ?? '',
      /^\/home\/taw\/.*indexamajig -i files\.lst .*--indexing=xgandalf$/,
    );
    assert.equal(header.indexingMethods, 'xgandalf');
    const begin =
      text.indexOf('----- Begin geometry file -----\n') + '----- Begin geometry file -----\n'.length;
    assert.equal(geometryText, text.slice(begin, text.indexOf('----- End geometry file -----')));
    assert.equal(unitCell?.latticeType, 'orthorhombic');
    assert.equal(unitCell?.centering, 'C');
    assert.deepEqual(unitCell?.axesNm, [6.14, 12.26, 16.8]);
    assert.deepEqual(unitCell?.anglesDeg, [90, 90, 90]);
  });

  test("the first chunk's fields and peaks match the file text", () => {
    const text = sharedText();
    const chunk = parseStreamText(text, STREAM).chunks[0];
    assert.equal(chunk.imageFilename, firstValue(text, 'Image filename: '));
    assert.equal(chunk.serial, Number(firstValue(text, 'Image serial number: ')));
    assert.equal(chunk.hit, firstValue(text, 'hit = ') === '1');
    assert.equal(chunk.indexedBy, firstValue(text, 'indexed_by = '));
    assert.equal(chunk.photonEnergyEv, Number(firstValue(text, 'photon_energy_eV = ')));
    assert.equal(chunk.beamBandwidth, Number(firstValue(text, 'beam_bandwidth = ').split(' ')[0]));
    assert.equal(
      chunk.averageCameraLengthM,
      Number(firstValue(text, 'average_camera_length = ').split(' ')[0]),
    );
    assert.equal(chunk.numPeaks, Number(firstValue(text, 'num_peaks = ')));
    const [perNm, , , angstrom] = firstValue(text, 'peak_resolution = ').split(' ');
    assert.equal(chunk.peakResolutionPerNm, Number(perNm));
    assert.equal(chunk.peakResolutionA, Number(angstrom));
    assert.deepEqual(
      chunk.otherLines,
      text
        .split('\n')
        .filter((l) => l.startsWith('hdf5/'))
        .slice(0, 2),
    );
    assert.equal(chunk.event, undefined);
    const { fields } = rowAfter(text, 'Peaks from peak search');
    const peaks = chunk.peaks!;
    assert.deepEqual(
      [peaks.fsPx[0], peaks.ssPx[0], peaks.oneOverDPerNm[0], peaks.intensity[0]],
      fields.slice(0, 4).map(Number),
    );
    assert.equal(peaks.panelNames[peaks.panelIndex[0]], fields[4]);
  });

  test("the first crystal's cell and first reflection row match the file text", () => {
    const text = sharedText();
    const crystal = parseStreamText(text, STREAM).chunks[0].crystals[0];
    const cell = firstValue(text, 'Cell parameters ')
      .replace(' nm,', '')
      .replace(' deg', '')
      .split(' ')
      .map(Number);
    assert.deepEqual(crystal.cellNm, cell.slice(0, 3));
    assert.deepEqual(crystal.anglesDeg, cell.slice(3));
    assert.deepEqual(crystal.astarPerNm, firstValue(text, 'astar = ').split(' ').slice(0, 3).map(Number));
    assert.equal(crystal.latticeType, 'orthorhombic');
    assert.equal(crystal.uniqueAxis, '?');
    assert.equal(crystal.profileRadiusPerNm, Number(firstValue(text, 'profile_radius = ').split(' ')[0]));
    assert.equal(crystal.detShiftXMm, 0.022);
    assert.equal(crystal.detShiftYMm, -0.009);
    assert.equal(
      crystal.resolutionLimitPerNm,
      Number(firstValue(text, 'diffraction_resolution_limit = ').split(' ')[0]),
    );
    const { fields } = rowAfter(text, 'Reflections measured after indexing');
    const r = crystal.reflections!;
    const row = [
      r.h[0],
      r.k[0],
      r.l[0],
      r.intensity[0],
      r.sigma[0],
      r.peak[0],
      r.background[0],
      r.fsPx[0],
      r.ssPx[0],
    ];
    assert.deepEqual(row, fields.slice(0, 9).map(Number));
    assert.equal(r.panelNames[r.panelIndex[0]], fields[9]);
    assert.ok(r.h instanceof Int32Array && r.intensity instanceof Float64Array);
  });

  test('parse then write gives the original text byte for byte', () => {
    const text = sharedText();
    const parsed = parseStreamText(text, STREAM);
    assert.equal(formatStreamText(parsed), text);
    // ...and not by keeping text: every line is what our printf formats write for the parsed values.
    assert.equal(parsed.header.verbatim, undefined);
    for (const chunk of parsed.chunks) {
      assert.equal(chunk.verbatim, undefined);
      assert.equal(chunk.peaks?.verbatimRows, undefined);
      for (const crystal of chunk.crystals) {
        assert.equal(crystal.verbatim, undefined);
        assert.equal(crystal.reflections?.verbatimRows, undefined);
      }
    }
  });

  test('readStream then createStreamWriter copies the file byte for byte', async () => {
    const stream = await readStream(STREAM);
    const out = join(work, 'copy.stream');
    const writer = createStreamWriter(out);
    await writer.writeHeader(stream.header);
    let chunks = 0;
    for await (const chunk of stream.chunks) {
      await writer.writeChunk(chunk);
      chunks++;
    }
    await writer.close(stream.trailingLines);
    assert.equal(chunks, 70);
    assert.ok(readFileSync(out).equals(readFileSync(STREAM)));
  });

  test('readStream gives the same chunks as parseStreamText, whatever the block size', async () => {
    const parsed = parseStreamText(sharedText(), STREAM);
    for (const blockBytes of [97, 65536]) {
      const stream = await readStream(STREAM, { blockBytes });
      const chunks: StreamChunk[] = [];
      for await (const chunk of stream.chunks) chunks.push(chunk);
      assert.deepStrictEqual(stream.header, parsed.header);
      assert.deepStrictEqual(chunks, parsed.chunks);
    }
  });

  test('canonical order: a chunk stripped of its bookkeeping is written exactly as CrystFEL wrote it', () => {
    const text = sharedText();
    const parsed = parseStreamText(text, STREAM);
    const strip = (chunk: StreamChunk): StreamChunk => {
      const { lineOrder: _order, verbatim: _kept, sourceLine: _line, ...rest } = chunk;
      return {
        ...rest,
        crystals: chunk.crystals.map(({ lineOrder: _o, verbatim: _v, ...crystal }) => crystal),
      };
    };
    for (const chunk of parsed.chunks.slice(0, 5)) {
      const begin =
        text
          .split('\n')
          .slice(0, chunk.sourceLine! - 1)
          .join('\n').length + 1;
      const original = text.slice(begin, text.indexOf('----- End chunk -----\n', begin) + 22);
      assert.equal(formatChunk(strip(chunk)), original);
    }
  });

  test('streams concatenated with cat read as one and write back identically', () => {
    const text = sharedText();
    const doubled = `${text}${text}`;
    const parsed = parseStreamText(doubled, 'double.stream');
    assert.equal(parsed.chunks.length, 140);
    assert.equal(parsed.chunks[70].linesBefore?.[0], 'CrystFEL stream format 2.3');
    assert.equal(formatStreamText(parsed), doubled);
  });

  test('inspect --json prints the counts', () => {
    const result = runCli(['inspect', STREAM, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout);
    assert.equal(summary.chunks, 70);
    assert.equal(summary.crystals, 32);
    assert.equal(summary.peaks, 2172);
    assert.equal(summary.reflections, 7966);
    assert.equal(summary.indexedChunks, 32);
    assert.deepEqual(summary.indexers, { xgandalf: 32 });
    assert.equal(summary.crystfelVersion, '0.9.1+2c51b20e');
    assert.equal(summary.cell.latticeType, 'orthorhombic');
  });
});

describe('lossless details', () => {
  const header = 'CrystFEL stream format 2.3\nGenerated by CrystFEL 0.9.1\n';
  const chunk = (body: string) =>
    `${header}----- Begin chunk -----\nImage filename: a.h5\n${body}----- End chunk -----\n`;

  test('a line printf would not write is kept, and edits still take effect', () => {
    const text = chunk('photon_energy_eV = 9511.8684\nhit = 01\n');
    const parsed = parseStreamText(text);
    const c = parsed.chunks[0];
    assert.equal(c.photonEnergyEv, 9511.8684);
    assert.equal(c.hit, true);
    assert.equal(formatStreamText(parsed), text);
    c.photonEnergyEv = 9000;
    c.hit = false;
    assert.match(formatStreamText(parsed), /photon_energy_eV = 9000\.000000\nhit = 0\n/);
  });

  test('table rows with other spacing are kept; edited rows are reformatted', () => {
    const peaks =
      'Peaks from peak search\n  fs/px   ss/px (1/d)/nm^-1   Intensity  Panel\n 1.5  2.5  0.10  7  p0\n  33.50   10.98       2.35      -78.50   p1\nEnd of peak list\n';
    const text = chunk(peaks);
    const parsed = parseStreamText(text);
    const table = parsed.chunks[0].peaks!;
    assert.deepEqual([...table.fsPx], [1.5, 33.5]);
    assert.deepEqual(table.panelNames, ['p0', 'p1']);
    assert.equal(table.verbatimRows?.size, 1);
    assert.equal(formatStreamText(parsed), text);
    table.intensity[0] = 8;
    assert.match(formatStreamText(parsed), /\n {3}1\.50 {4}2\.50 {7}0\.10 {8}8\.00 {3}p0\n/);
  });

  test('unknown lines, lines out of canonical order, nan and -0.00 survive', () => {
    const text = chunk(
      'hit = 1\nmy_note = hello\nImage serial number: 4\n\n' +
        '--- Begin crystal\nastar = +0.1000000 -0.0000000 +0.0000000 nm^-1\nNo integrated reflections.\n' +
        'Reflections measured after indexing\n   h    k    l          I   sigma(I)       peak background  fs/px  ss/px panel\n' +
        '   1   -2    3        nan      -0.00       1.00       2.00   10.0   20.0 q0\n' +
        '   1   -2    3       -nan       1e3       1.00       2.00   10.0   20.0 q0\nEnd of reflections\n--- End crystal\n',
    );
    const parsed = parseStreamText(text);
    const crystal = parsed.chunks[0].crystals[0];
    assert.deepEqual(parsed.chunks[0].otherLines, ['my_note = hello', '']);
    assert.ok(Number.isNaN(crystal.reflections!.intensity[0]));
    assert.ok(Object.is(crystal.reflections!.sigma[0], -0));
    assert.equal(crystal.reflections!.sigma[1], 1000);
    assert.ok(Object.is(crystal.astarPerNm![1], -0));
    assert.equal(formatStreamText(parsed), text);
  });

  test('a stream built in code is written in CrystFEL formats and reads back equal', async () => {
    const header = syntheticHeader();
    const chunks = [syntheticChunk(1, 12, 30), syntheticChunk(2, 0, 0), syntheticChunk(3, 5, 7)];
    const out = join(work, 'built.stream');
    const writer = createStreamWriter(out);
    await writer.writeHeader(header);
    for (const c of chunks) await writer.writeChunk(c);
    await writer.close();
    const text = readFileSync(out, 'utf8');
    assert.match(
      text,
      /^CrystFEL stream format 2\.3\nGenerated by CrystFEL 0\.9\.1\nbraggflow simulate --test\n/,
    );
    assert.match(text, /\nbeam_bandwidth = 1\.00e-08 \(fraction\)\n/);
    assert.match(text, /\nastar = \+0\.0706577 -0\.1444151 \+0\.0270631 nm\^-1\n/);
    assert.match(text, /\na = 61\.40 A\n/);
    const back = parseStreamText(text, out);
    assert.equal(back.chunks.length, 3);
    for (let i = 0; i < chunks.length; i++) {
      const a = chunks[i];
      const b = back.chunks[i];
      // Panel indices count panels in order of first appearance, so compare the names row by row.
      const names = (t?: { panelIndex: Int32Array; panelNames: string[] }) =>
        t && [...t.panelIndex].map((i) => t.panelNames[i]);
      assert.deepStrictEqual(names(b.peaks), names(a.peaks));
      assert.deepStrictEqual(names(b.crystals[0]?.reflections), names(a.crystals[0]?.reflections));
      assert.deepStrictEqual(b.peaks?.fsPx, a.peaks?.fsPx);
      assert.deepStrictEqual(b.peaks?.intensity, a.peaks?.intensity);
      for (const column of [
        'h',
        'k',
        'l',
        'intensity',
        'sigma',
        'peak',
        'background',
        'fsPx',
        'ssPx',
      ] as const) {
        assert.deepStrictEqual(
          b.crystals[0]?.reflections?.[column],
          a.crystals[0]?.reflections?.[column],
          column,
        );
      }
      assert.equal(b.photonEnergyEv, a.photonEnergyEv);
      assert.deepEqual(b.crystals[0]?.cellNm, a.crystals[0]?.cellNm);
      assert.deepEqual(b.otherLines, a.otherLines);
    }
    // And the writer's own output is a fixed point.
    assert.equal(formatStreamText(back), text);
  });

  test('writing to a Writable leaves it open unless asked', async () => {
    const pieces: string[] = [];
    const { Writable } = await import('node:stream');
    const sink = new Writable({
      write(piece, _encoding, done) {
        pieces.push(String(piece));
        done();
      },
    });
    const writer = createStreamWriter(sink);
    await writer.writeHeader(syntheticHeader());
    await writer.writeChunk(syntheticChunk(9, 3, 0));
    await writer.close();
    assert.equal(sink.writableEnded, false);
    assert.equal(parseStreamText(pieces.join('')).chunks[0].serial, 9);
  });
});

describe('printf-compatible numbers', () => {
  test('formats like glibc printf', () => {
    assert.equal(formatFixed(0.125, 2), '0.12'); // exact tie: to even, where toFixed says 0.13
    assert.equal(formatFixed(0.375, 2), '0.38');
    assert.equal(formatFixed(2.5, 0), '2');
    assert.equal(formatFixed(-2.5, 0), '-2');
    assert.equal(formatFixed(1.005, 2), '1.00'); // 1.005 is below the tie as a double
    assert.equal(formatFixed(-0, 2), '-0.00');
    assert.equal(formatFixed(-0.001, 2), '-0.00');
    assert.equal(formatFixed(Number.NaN, 2), 'nan');
    assert.equal(formatFixed(-Infinity, 1), '-inf');
    assert.equal(formatFixed(1e21, 2), '1000000000000000000000.00');
    assert.equal(formatSignedFixed(0, 7), '+0.0000000');
    assert.equal(formatSignedFixed(-0.0612585, 7), '-0.0612585');
    assert.equal(formatExponent(1e-8, 2), '1.00e-08');
    assert.equal(formatExponent(0, 2), '0.00e+00');
    assert.equal(formatExponent(3.289294e-7, 6), '3.289294e-07');
    assert.equal(formatExponent(-1.5e123, 1), '-1.5e+123');
  });

  test('parses strictly', () => {
    assert.equal(parseCNumber('-78.50'), -78.5);
    assert.equal(parseCNumber('1e3'), 1000);
    assert.ok(Number.isNaN(parseCNumber('-nan')!));
    for (const bad of ['', '0x10', '1,5', 'Infinityx', '--1', '1.2.3'])
      assert.equal(parseCNumber(bad), undefined, bad);
    assert.equal(parseCInt('-28'), -28);
    assert.ok(Object.is(parseCInt('-0'), 0));
    assert.equal(parseCInt('2147483648'), undefined);
    assert.equal(parseCInt('1.0'), undefined);
  });

  test('pixel conventions: stream 0.5 is the centre of the first pixel, CXI 0.0', () => {
    assert.equal(crystfelToCxiPx(0.5), 0);
    assert.equal(cxiToCrystfelPx(0), 0.5);
    assert.deepEqual([...crystfelColumnToCxi([33.5, 10.98])], [33, 10.48]);
  });
});

describe('streams of CrystFEL 0.10 to 0.12', () => {
  const REAL = sharedPath('data', 'real', 'cspad-thermolysin.stream');
  const head = 'CrystFEL stream format 2.3\nGenerated by CrystFEL 0.12.0\n';
  const chunkWith = (chunkLines: string, crystalLines = '') =>
    `----- Begin chunk -----\nImage filename: a.h5\nEvent: //0\n${chunkLines}--- Begin crystal\n${crystalLines}--- End crystal\n----- End chunk -----\n`;

  test(
    'the shared 0.12.0 stream reads, with its residual components, and writes back byte for byte',
    needsShared,
    () => {
      const text = readFileSync(REAL, 'utf8');
      const warnings: string[] = [];
      const parsed = parseStreamText(text, REAL, { onWarning: (m) => warnings.push(m) });
      assert.deepEqual(warnings, []);
      assert.equal(parsed.header.crystfelVersion, '0.12.0');
      const crystal = parsed.chunks[0].crystals[0];
      assert.equal(crystal.predictRefineFinalResidual, 163.073086);
      assert.deepEqual(crystal.predictRefineFinalResidualParts, [16.03356, 79.819282, 67.220244]);
      assert.equal(crystal.predictRefineInitialResidual, 163.379508);
      assert.equal(crystal.reflections?.h.length, crystal.numReflections);
      assert.equal(formatStreamText(parsed), text);
    },
  );

  test('an edited residual is written in the form it was read in', () => {
    const text = `${head}${chunkWith('', 'predict_refine/final_residual = 1.500000 (0.500000 0.500000 0.500000)\n')}`;
    const parsed = parseStreamText(text);
    parsed.chunks[0].crystals[0].predictRefineFinalResidual = 2;
    assert.match(formatStreamText(parsed), /final_residual = 2\.000000 \(0\.500000 0\.500000 0\.500000\)\n/);
    const old = parseStreamText(`${head}${chunkWith('', 'predict_refine/final_residual = 3.289294e-07\n')}`);
    assert.equal(old.chunks[0].crystals[0].predictRefineFinalResidualParts, undefined);
    assert.match(formatStreamText(old), /final_residual = 3\.289294e-07\n/);
  });

  test('unknown keys and unreadable optional fields are kept verbatim, with one warning per key', () => {
    const crystal = 'mosaicity = 0.12 deg\nnum_reflections = many\n';
    const text = `${head}${chunkWith('hdf5/LCLS/detector0-EncoderValue = -443.2\n', crystal)}${chunkWith('', crystal)}`;
    const warnings: string[] = [];
    const parsed = parseStreamText(text, 'x.stream', { onWarning: (m) => warnings.push(m) });
    assert.equal(warnings.length, 2, warnings.join('\n'));
    assert.match(warnings[0], /^x\.stream: line 8: 'mosaicity' is not a field this reader models/);
    assert.match(warnings[1], /^x\.stream: line 9: .*num_reflections.*kept as it is/);
    assert.equal(parsed.chunks[1].crystals[0].numReflections, undefined);
    assert.deepEqual(parsed.chunks[1].crystals[0].otherLines, [
      'mosaicity = 0.12 deg',
      'num_reflections = many',
    ]);
    assert.equal(formatStreamText(parsed), text);
  });

  test('a malformed field the engine needs is still an error naming the line', () => {
    for (const [line, pattern] of [
      ['astar = 1 2 nm^-1\n', /expected 'astar = VALUE VALUE VALUE nm\^-1'/],
      ['Cell parameters 1 2 3 nm\n', /expected 'Cell parameters/],
    ] as const) {
      assert.throws(
        () => parseStreamText(`${head}${chunkWith('', line)}`, 'y.stream'),
        (error: unknown) =>
          error instanceof UserError &&
          error.toLine().startsWith('y.stream: line 7: ') &&
          pattern.test(error.message),
      );
    }
  });
});

describe('bad input', () => {
  const head = 'CrystFEL stream format 2.3\nGenerated by CrystFEL 0.9.1\n';
  const begin = '----- Begin chunk -----\nImage filename: a.h5\n';
  const peakHead = 'Peaks from peak search\n  fs/px   ss/px (1/d)/nm^-1   Intensity  Panel\n';
  const reflHead =
    'Reflections measured after indexing\n   h    k    l          I   sigma(I)       peak background  fs/px  ss/px panel\n';
  const good = (n: number) =>
    `${begin}${peakHead}${'   1.00    2.00       0.50       10.00   p0\n'.repeat(n)}End of peak list\n----- End chunk -----\n`;
  // [name, text, line of the problem, message pattern]
  const cases: [string, string, number, RegExp][] = [
    ['empty file', '', 1, /empty file/],
    ['not a stream', 'hello\n', 1, /not a CrystFEL stream/],
    ['format 3', 'CrystFEL stream format 3.0\n', 1, /format 3\.0 is not supported/],
    [
      'peak row with 4 columns',
      `${head}${begin}${peakHead}   1.00    2.00       0.50       10.00\n`,
      7,
      /needs 5 columns, found 4/,
    ],
    [
      'bad number',
      `${head}${begin}${peakHead}   1.00    2.x0       0.50       10.00   p0\n`,
      7,
      /bad number '2\.x0' in column ss\/px/,
    ],
    [
      'bad reflection integer',
      `${head}${begin}--- Begin crystal\n${reflHead}   1   2.5    3   1.00   1.00   1.00   1.00   1.0   1.0 p0\n`,
      8,
      /bad integer '2\.5' in column k/,
    ],
    ['bad field value', `${head}${begin}photon_energy_eV = fast\n`, 5, /bad number 'fast'/],
    ['duplicate field', `${head}${begin}hit = 1\nhit = 0\n`, 6, /second 'hit =' line/],
    ['hit not 0/1', `${head}${begin}hit = 7\n`, 5, /hit = 0/],
    [
      'unterminated chunk',
      `${head}${begin}----- Begin chunk -----\n`,
      5,
      /chunk begun at line 3 has no '----- End chunk -----'/,
    ],
    [
      'unterminated crystal',
      `${head}${begin}--- Begin crystal\n----- End chunk -----\n`,
      6,
      /crystal begun at line 5 has no '--- End crystal'/,
    ],
    [
      'unterminated peak list',
      `${head}${begin}${peakHead}----- End chunk -----\n`,
      7,
      /peak list begun at line 5 has no 'End of peak list'/,
    ],
    [
      'truncated in a row',
      `${head}${good(2)}${begin}${peakHead}   1.00    2.00`,
      15,
      /needs 5 columns, found 2/,
    ],
    [
      'truncated file',
      `${head}${good(2)}${begin}${peakHead}   1.00    2.00       0.50       10.00   p0\n`,
      15,
      /ends inside the chunk begun at line 11 \(truncated\?\)/,
    ],
    ['stray end of crystal', `${head}${begin}--- End crystal\n`, 5, /'--- End crystal' outside a crystal/],
    [
      'lost chunk start',
      `${head}${good(1)}Image filename: b.h5\n----- End chunk -----\n`,
      10,
      /outside a chunk/,
    ],
    ['text between chunks', `${head}${good(1)}garbage\n`, 10, /text outside a chunk: "garbage"/],
    [
      'unknown table header',
      `${head}${begin}Peaks from peak search\nfs ss\n`,
      6,
      /unknown peak table header/,
    ],
    [
      'chunk without filename',
      `${head}----- Begin chunk -----\nhit = 1\n----- End chunk -----\n`,
      5,
      /has no 'Image filename: ' line/,
    ],
    [
      'unterminated geometry',
      `${head}----- Begin geometry file -----\nres = 1\n`,
      4,
      /geometry block begun at line 3/,
    ],
    [
      'unit cell without unit',
      `${head}----- Begin unit cell -----\na = 61.4\n----- End unit cell -----\n`,
      4,
      /a needs a unit/,
    ],
  ];

  for (const [name, text, line, pattern] of cases) {
    test(`${name} -> UserError at line ${line}`, () => {
      assert.throws(
        () => parseStreamText(text, 'bad.stream'),
        (error: unknown) => {
          assert.ok(error instanceof UserError, String(error));
          assert.equal(error.file, 'bad.stream');
          assert.equal(error.where, `line ${line}`);
          assert.match(error.message, pattern);
          return true;
        },
      );
    });
  }

  test('readStream hands out the good chunks before the error', async () => {
    const path = join(work, 'late-error.stream');
    writeFileSync(path, `${head}${good(1)}${good(1)}${begin}hit = 9\n----- End chunk -----\n`);
    const stream = await readStream(path);
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of stream.chunks) seen.push(chunk.imageFilename);
      })(),
      (error: unknown) => error instanceof UserError && error.where === 'line 19' && error.file === path,
    );
    assert.deepEqual(seen, ['a.h5', 'a.h5']);
  });

  test('readStream rejects a missing file and a file with no newlines', async () => {
    await assert.rejects(
      readStream(join(work, 'absent.stream')),
      (error: unknown) => error instanceof UserError,
    );
    const path = join(work, 'one-line.stream');
    writeFileSync(path, 'x'.repeat(5 * 2 ** 20));
    await assert.rejects(readStream(path), /longer than/);
  });

  test('a writer whose file cannot be created fails with a UserError', async () => {
    const writer = createStreamWriter(join(work, 'no-such-dir', 'out.stream'));
    await assert.rejects(
      (async () => {
        await writer.writeHeader(syntheticHeader());
        await writer.writeChunk(syntheticChunk(1, 2, 3));
        await writer.close();
      })(),
      (error: unknown) =>
        error instanceof UserError && /cannot write the file \(ENOENT\)/.test(error.message),
    );
  });

  test('the CLI prints one line and exits 2', () => {
    const path = join(work, 'broken.stream');
    writeFileSync(path, `${head}${begin}${peakHead}   1.00    2.00       0.50\n`);
    const result = runCli(['inspect', path, '--json']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, `braggflow: ${path}: line 7: a peak row needs 5 columns, found 3\n`);
    assert.equal(result.stdout, '');
  });
});

describe('memory', () => {
  test('iterating a large stream without keeping chunks holds memory bounded', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const path = join(work, 'large.stream');
    const writer = createStreamWriter(path);
    await writer.writeHeader(syntheticHeader());
    const template = syntheticChunk(1, 80, 250);
    const chunks = 800;
    for (let i = 0; i < chunks; i++) await writer.writeChunk({ ...template, serial: i });
    await writer.close();
    const bytes = readFileSync(path).length;

    gc();
    const baseline = process.memoryUsage().heapUsed;
    let peak = 0;
    let seen = 0;
    const stream = await readStream(path, { blockBytes: 2 ** 20 });
    for await (const chunk of stream.chunks) {
      seen += chunk.crystals.length;
      if (seen % 100 === 0) {
        gc();
        peak = Math.max(peak, process.memoryUsage().heapUsed - baseline);
      }
    }
    assert.equal(seen, chunks);
    // Keeping every chunk holds about as much as the file (23 MB for this 19 MB file); reading one at
    // a time holds a block of text, its lines and the chunks parsed from it (about 4 MB).
    assert.ok(bytes > 15e6, `file ${bytes}`);
    assert.ok(
      peak < bytes / 2,
      `heap grew ${(peak / 1e6).toFixed(1)} MB reading ${(bytes / 1e6).toFixed(1)} MB`,
    );
  });
});
