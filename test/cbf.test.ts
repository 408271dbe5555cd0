import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cbfToSlab, encodeCbf, parseCbf, readCbf } from '../src/io/cbf.js';
import { decodeByteOffset, decodePacked, encodeByteOffset } from '../src/io/cbf-codecs.js';
import { openFrameReader } from '../src/io/cxi-reader.js';
import { UserError } from '../src/util/errors.js';
import { needsShared, runCli, sharedPath } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-cbf-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function isUserErrorAt(where: RegExp, message?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${e}`);
    assert.match(e.where ?? '', where);
    if (message) assert.match(e.message, message);
    return true;
  };
}

function ramp(n: number, scale = 1): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => ((i * 37) % 101) * scale - 20);
}

describe('CBF byte-offset codec', () => {
  test('decodes each escape level exactly (hand-made bytes)', () => {
    const bytes = new Uint8Array([
      0x05, // +5 -> 5
      0xfe, // -2 -> 3
      0x80,
      0x10,
      0x27, // +10000 -> 10003
      0x80,
      0x00,
      0x80,
      0x40,
      0x42,
      0x0f,
      0x00, // +1000000 -> 1010003
      0x80,
      0x00,
      0x80,
      0x00,
      0x00,
      0x00,
      0x80,
      0x00,
      0x00,
      0x00,
      0x80,
      0xff,
      0xff,
      0xff,
      0xff, // -2^31 (int64) -> 1010003 - 2147483648
      0x81, // -127
    ]);
    const values = decodeByteOffset(bytes, 6);
    assert.deepEqual(Array.from(values), [
      5,
      3,
      10003,
      1010003,
      1010003 - 2147483648,
      1010003 - 2147483648 - 127,
    ]);
  });

  test('the encoder picks the shortest escape and round-trips extremes', () => {
    const values = new Int32Array([0, 127, -1, 32766, -2147483648, 2147483647, 2147483647, -5]);
    const encoded = encodeByteOffset(values);
    // 0:1, +127:1, -128:3, +32767:3, 2^31 delta:15 (int64), 2^32-1 delta:15, 0:1, -2^31-4 delta:15
    assert.equal(encoded.length, 1 + 1 + 3 + 3 + 15 + 15 + 1 + 15);
    assert.deepEqual(Array.from(decodeByteOffset(encoded, values.length)), Array.from(values));
  });

  test('truncated data is a UserError naming the section', () => {
    const encoded = encodeByteOffset(new Int32Array([1, 1000, 100000, 5]));
    assert.throws(
      () =>
        decodeByteOffset(encoded.subarray(0, encoded.length - 2), 4, {
          file: 'f.cbf',
          where: 'binary section 1',
        }),
      isUserErrorAt(/binary section 1/, /truncated/),
    );
  });
});

describe('CBF files', () => {
  for (const compression of ['byte_offset', 'packed', 'packed_v2', 'none'] as const) {
    test(`${compression}: multi-array write -> read round trip, stacked along ss`, () => {
      const a = ramp(6 * 4, 3);
      const b = ramp(6 * 5 * 2, -1000);
      const path = join(dir, `multi-${compression}.cbf`);
      writeFileSync(
        path,
        encodeCbf(
          [
            { data: a, dims: [6, 4] },
            { data: b, dims: [6, 5, 2] },
          ],
          { compression },
        ),
      );
      const cbf = readCbf(path);
      assert.equal(cbf.arrays.length, 2);
      assert.deepEqual(cbf.arrays[1].dims, [6, 5, 2]);
      assert.equal(cbf.arrays[0].compression, compression);
      assert.equal(cbf.arrays[0].arrayId, 'ARRAY_1');
      assert.deepEqual(Array.from(cbf.arrays[0].data), Array.from(a));
      assert.deepEqual(Array.from(cbf.arrays[1].data), Array.from(b));
      const slab = cbfToSlab(cbf);
      assert.deepEqual(slab.shape, [4 + 10, 6]);
      assert.deepEqual(Array.from(slab.data), [...a, ...b]);
      assert.deepEqual(
        slab.panels.map((p) => [p.ssOffset, p.ss]),
        [
          [0, 4],
          [4, 5],
          [9, 5],
        ],
      );
    });
  }

  test('packed flat and uncorrelated-section flags round-trip', () => {
    for (const packedFlag of ['flat', 'uncorrelated_sections'] as const) {
      const data = ramp(7 * 3 * 4, 50);
      const cbf = parseCbf(
        encodeCbf([{ data, dims: [7, 3, 4] }], { compression: 'packed', packedFlag }),
        'x.cbf',
      );
      assert.deepEqual(Array.from(cbf.arrays[0].data), Array.from(data), packedFlag);
    }
  });

  test('packed decoding depends on the averaging mode (flags are honoured)', () => {
    const data = ramp(8 * 8, 7);
    const averaged = encodeCbf([{ data, dims: [8, 8] }], { compression: 'packed' });
    const asFlat = Buffer.from(averaged).toString('latin1').replace('x-CBF_PACKED"', 'x-CBF_PACKED"; "flat"');
    const misread = parseCbf(Buffer.from(asFlat, 'latin1'), 'x.cbf', { verifyMd5: false }).arrays[0].data;
    assert.notDeepEqual(Array.from(misread), Array.from(data));
  });

  test('packed header count must agree with the MIME header', () => {
    const payload = new Uint8Array(40);
    payload[0] = 9; // claims 9 elements
    assert.throws(
      () =>
        decodePacked(
          payload,
          8,
          [8, 0, 0],
          { v2: false, flat: false, uncorrelatedSections: false },
          { where: 's' },
        ),
      isUserErrorAt(/s/, /9 elements/),
    );
  });

  test('errors name the file and the section or field', () => {
    const good = Buffer.from(
      encodeCbf([
        { data: ramp(100), dims: [10, 10] },
        { data: ramp(100), dims: [10, 10] },
      ]),
    );
    const text = good.toString('latin1');
    const write = (name: string, content: string | Uint8Array) => {
      const path = join(dir, name);
      writeFileSync(path, typeof content === 'string' ? Buffer.from(content, 'latin1') : content);
      return path;
    };
    const truncated = write('truncated.cbf', good.subarray(0, good.length - 4200));
    assert.throws(() => readCbf(truncated), isUserErrorAt(/binary section 2 \(X-Binary-ID 2\)/, /truncated/));
    const unknown = write('unknown.cbf', text.replace('x-CBF_BYTE_OFFSET', 'x-CBF_CANONICAL'));
    assert.throws(
      () => readCbf(unknown),
      isUserErrorAt(/binary section 1/, /unknown compression 'x-CBF_CANONICAL'/),
    );
    const wrongDims = write(
      'dims.cbf',
      text.replace('X-Binary-Size-Second-Dimension: 10', 'X-Binary-Size-Second-Dimension: 11'),
    );
    assert.throws(() => readCbf(wrongDims), isUserErrorAt(/binary section 1/, /do not match/));
    const wrongCount = write(
      'count.cbf',
      text.replace('X-Binary-Number-of-Elements: 100', 'X-Binary-Number-of-Elements: abc'),
    );
    assert.throws(
      () => readCbf(wrongCount),
      isUserErrorAt(/binary section 1/, /X-Binary-Number-of-Elements/),
    );
    const corrupt = Buffer.from(good);
    corrupt[text.indexOf('\x0c\x1a\x04\xd5') + 10] ^= 0x40;
    assert.throws(() => readCbf(write('md5.cbf', corrupt)), isUserErrorAt(/binary section 1/, /Content-MD5/));
    assert.throws(
      () => readCbf(write('none.cbf', 'data_x\n_a 1\n')),
      (e: unknown) => e instanceof UserError && /no binary sections/.test(e.message),
    );

    const cli = runCli(['inspect', truncated]);
    assert.equal(cli.code, 2);
    assert.equal(cli.stderr.trim().split('\n').length, 1);
    assert.match(cli.stderr, /truncated\.cbf: binary section 2 \(X-Binary-ID 2\): .*truncated/);
  });

  test(
    'the shared CSPAD CBF (packed, 4 quadrants, 64 ASIC sections) equals the CXI pixel for pixel',
    needsShared,
    async () => {
      const cbf = readCbf(sharedPath('data/real/cspad-thermolysin.cbf'));
      assert.equal(cbf.arrays.length, 4);
      assert.deepEqual(cbf.arrays[0].dims, [388, 185, 8]);
      assert.equal(cbf.sections.length, 64);
      const slab = cbfToSlab(cbf);
      assert.deepEqual(slab.shape, [11840, 194]);
      const reader = await openFrameReader(sharedPath('data/real/cspad-thermolysin.cxi'), {
        expectedSlabShape: [11840, 194],
      });
      const frame = reader.readFrame(0);
      reader.close();
      let mismatches = 0;
      let sum = 0;
      for (let i = 0; i < frame.length; i++) {
        if (frame[i] !== slab.data[i]) mismatches++;
        sum += slab.data[i];
      }
      assert.equal(mismatches, 0);
      assert.equal(sum, 32878926);
    },
  );

  test('inspect --json on the shared CBF', needsShared, () => {
    const result = runCli(['inspect', '--json', sharedPath('data/real/cspad-thermolysin.cbf')]);
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout);
    assert.deepEqual(summary.shape, [11840, 194]);
    assert.equal(summary.sum, 32878926);
    assert.equal(summary.arrays.length, 4);
    assert.deepEqual(summary.arrays[0].shape, [8, 185, 388]);
    assert.equal(summary.panels, 64);
    assert.equal(summary.min, -5136);
  });

  test(
    'reads a CBF written by another tool from disk untouched (header continuation, CRLF)',
    needsShared,
    () => {
      const bytes = readFileSync(sharedPath('data/real/cspad-thermolysin.cbf'));
      const cbf = parseCbf(bytes, 'mem.cbf');
      assert.equal(cbf.arrays[3].arrayId, 'ARRAY_D0Q3');
      assert.equal(cbf.arrays[3].binaryId, 4);
      assert.equal(cbf.arrays[3].compression, 'packed');
    },
  );
});
