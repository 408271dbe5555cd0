import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { type ParsedStream, parseStreamText, readStream } from '../src/io/stream/reader.js';
import type { StreamChunk } from '../src/io/stream/types.js';
import { formatStreamText } from '../src/io/stream/writer.js';
import { UserError } from '../src/util/errors.js';
import { haveShared, needsShared, sharedPath } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'braggflow-stream-fuzz-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** The header and first four chunks of the shared stream (two indexed): every kind of line, ~60 kB. */
function excerpt(): string {
  const text = readFileSync(sharedPath('data', 'streams', 'cspad-5ht2b.stream'), 'utf8');
  let end = 0;
  for (let i = 0; i < 4; i++) end = text.indexOf('----- End chunk -----\n', end) + 22;
  return text.slice(0, end);
}
const EXCERPT = haveShared ? excerpt() : '';

/** Parses, or fails with a UserError that names the file and a line: anything else is a bug. */
function parseOrUserError(text: string): ParsedStream | UserError {
  try {
    return parseStreamText(text, 'fuzz.stream');
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    assert.equal(error.file, 'fuzz.stream');
    assert.match(error.where ?? '', /^line \d+$/);
    return error;
  }
}

/** Whatever parses writes back as the same text (plus the final newline a truncated file lacks). */
function checkRoundTrip(text: string): ParsedStream | UserError {
  const result = parseOrUserError(text);
  if (!(result instanceof UserError)) {
    assert.equal(formatStreamText(result), text.endsWith('\n') ? text : `${text}\n`);
  }
  return result;
}

type Mutation =
  | { kind: 'delete'; at: number }
  | { kind: 'duplicate'; at: number }
  | { kind: 'swap'; at: number; with: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; at: number; bits: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), at: fc.nat(), with: fc.nat() }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bits: fc.integer({ min: 1, max: 255 }) }),
);

/** Applies line deletions, duplications, swaps, truncation and byte flips (positions taken modulo size). */
function mutate(text: string, mutations: Mutation[]): string {
  let out = text;
  for (const m of mutations) {
    if (m.kind === 'truncate') out = out.slice(0, m.at % (out.length + 1));
    else if (m.kind === 'flip') {
      const bytes = Buffer.from(out, 'utf8');
      if (bytes.length === 0) continue;
      bytes[m.at % bytes.length] ^= m.bits;
      out = bytes.toString('utf8');
    } else {
      const lines = out.split('\n');
      const i = m.at % lines.length;
      if (m.kind === 'delete') lines.splice(i, 1);
      else if (m.kind === 'duplicate') lines.splice(i, 0, lines[i]);
      else {
        const j = m.with % lines.length;
        [lines[i], lines[j]] = [lines[j], lines[i]];
      }
      out = lines.join('\n');
    }
  }
  return out;
}

/** Lines of every kind a stream has, for building random streams out of real parts. */
const VOCABULARY = [
  '----- Begin geometry file -----',
  '----- End geometry file -----',
  '----- Begin unit cell -----',
  '----- End unit cell -----',
  'a = 61.40 A',
  'al = 90.00 deg',
  '----- Begin chunk -----',
  '----- End chunk -----',
  'Image filename: r0092/x.h5',
  'Event: //3',
  'Image serial number: 1',
  'hit = 1',
  'indexed_by = xgandalf-nolatt-cell',
  'photon_energy_eV = 9511.868397',
  'beam_divergence = 0.00e+00 rad',
  'hdf5/LCLS/photon_energy_eV = 9511.868397',
  'num_peaks = 2',
  'peak_resolution = 3.876811 nm^-1 or 2.579439 A',
  'Peaks from peak search',
  '  fs/px   ss/px (1/d)/nm^-1   Intensity  Panel',
  '  33.50   10.98       2.35      -78.50   q0a0',
  ' 1.5 2 3 nan q1',
  'End of peak list',
  '--- Begin crystal',
  'Cell parameters 6.13532 12.19726 16.88163 nm, 90.54524 91.23016 90.53769 deg',
  'astar = +0.0706577 -0.1444151 +0.0270631 nm^-1',
  'predict_refine/det_shift x = 0.022 y = -0.009 mm',
  'Reflections measured after indexing',
  '   h    k    l          I   sigma(I)       peak background  fs/px  ss/px panel',
  ' -28   10    5     185.09     155.78     217.00      64.71  634.8 1057.6 q1a11',
  'End of reflections',
  '--- End crystal',
  '',
];

const line = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...VOCABULARY) },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
);

describe('stream reader fuzzing', () => {
  test('random bytes parse or fail with a UserError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.boolean(), (bytes, withFormatLine) => {
        const text =
          (withFormatLine ? 'CrystFEL stream format 2.3\n' : '') + Buffer.from(bytes).toString('utf8');
        checkRoundTrip(text);
      }),
      { numRuns: 300 },
    );
  });

  test('streams assembled from real lines in random order parse or fail cleanly, and round-trip', () => {
    let parsed = 0;
    fc.assert(
      fc.property(fc.array(line, { maxLength: 60 }), (lines) => {
        const result = checkRoundTrip(`CrystFEL stream format 2.3\n${lines.map((l) => `${l}\n`).join('')}`);
        if (!(result instanceof UserError)) parsed++;
      }),
      { numRuns: 600 },
    );
    assert.ok(parsed > 0, 'no random stream parsed: the generator explores too little');
  });

  test('mutated real stream text parses or fails cleanly, and round-trips', needsShared, () => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (mutations) => {
        checkRoundTrip(mutate(EXCERPT, mutations));
      }),
      { numRuns: 250 },
    );
  });

  test('the streaming reader agrees with parseStreamText on mutated text', needsShared, async () => {
    const path = join(work, 'mutated.stream');
    await fc.assert(
      fc.asyncProperty(
        fc.array(mutation, { minLength: 1, maxLength: 2 }),
        fc.integer({ min: 5, max: 5000 }),
        async (mutations, blockBytes) => {
          const text = mutate(EXCERPT, mutations);
          writeFileSync(path, text);
          const expected = parseOrUserError(text);
          let streamed: { header: unknown; chunks: StreamChunk[] } | UserError;
          try {
            const stream = await readStream(path, { blockBytes });
            const chunks: StreamChunk[] = [];
            for await (const chunk of stream.chunks) chunks.push(chunk);
            streamed = { header: stream.header, chunks };
          } catch (error) {
            if (!(error instanceof UserError)) throw error;
            streamed = error;
          }
          if (expected instanceof UserError) {
            assert.ok(
              streamed instanceof UserError,
              'the streaming reader accepted what parseStreamText rejects',
            );
            assert.equal(streamed.where, expected.where);
            assert.equal(streamed.message, expected.message);
          } else {
            assert.ok(
              !(streamed instanceof UserError),
              `streaming reader failed: ${streamed instanceof UserError && streamed.toLine()}`,
            );
            assert.deepStrictEqual(streamed.header, expected.header);
            assert.deepStrictEqual(streamed.chunks, expected.chunks);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
