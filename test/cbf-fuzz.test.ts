import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { encodeCbf, parseCbf } from '../src/io/cbf.js';
import {
  decodeByteOffset,
  decodePacked,
  encodeByteOffset,
  encodePacked,
  type PackedOptions,
} from '../src/io/cbf-codecs.js';
import { UserError } from '../src/util/errors.js';

const int32 = fc.integer({ min: -2147483648, max: 2147483647 });
/** Mostly small steps (what detectors produce) with occasional huge jumps to hit every escape. */
const detectorLike = fc.array(
  fc.oneof({ weight: 4, arbitrary: fc.integer({ min: -300, max: 300 }) }, { weight: 1, arbitrary: int32 }),
  {
    maxLength: 400,
  },
);

/** Runs `action`; anything but success or a UserError fails the property. */
function decodedOrUserError(action: () => unknown): void {
  try {
    action();
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    assert.ok(error.message.length > 0);
  }
}

describe('CBF codecs under fast-check', () => {
  test('byte offset: encode -> decode is the identity (including int64 escapes)', () => {
    fc.assert(
      fc.property(detectorLike, (list) => {
        const values = Int32Array.from(list);
        const encoded = encodeByteOffset(values);
        assert.deepEqual(decodeByteOffset(encoded, values.length), values);
      }),
      { numRuns: 300 },
    );
  });

  test('packed (v1/v2, averaged/flat/uncorrelated): encode -> decode is the identity', () => {
    const shape = fc.tuple(
      fc.integer({ min: 1, max: 9 }),
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 3 }),
    );
    const mode = fc.record({ v2: fc.boolean(), flat: fc.boolean(), uncorrelatedSections: fc.boolean() });
    fc.assert(
      fc.property(
        shape,
        mode,
        fc.infiniteStream(fc.oneof(fc.integer({ min: -50, max: 50 }), int32)),
        (dims, options: PackedOptions, stream) => {
          const count = dims[0] * dims[1] * dims[2];
          const values = Int32Array.from(stream.take(count));
          const encoded = encodePacked(values, dims, options);
          assert.deepEqual(decodePacked(encoded, count, dims, options), values);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('random bytes decode to an array or a UserError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 500 }), (bytes, count) => {
        decodedOrUserError(() => decodeByteOffset(bytes, count));
        decodedOrUserError(() =>
          decodePacked(bytes, count, [0, 0, 0], { v2: false, flat: true, uncorrelatedSections: false }),
        );
        decodedOrUserError(() => parseCbf(bytes, 'random.cbf'));
      }),
      { numRuns: 300 },
    );
  });

  test('mutated CBF files decode to arrays or UserErrors, never another exception or a hang', () => {
    const compressions = ['byte_offset', 'packed', 'packed_v2', 'none'] as const;
    const file = fc
      .record({
        compression: fc.constantFrom(...compressions),
        fast: fc.integer({ min: 1, max: 12 }),
        slow: fc.integer({ min: 1, max: 6 }),
        seed: fc.array(fc.integer({ min: -1000, max: 1000 }), { minLength: 1, maxLength: 10 }),
      })
      .map(({ compression, fast, slow, seed }) => {
        const data = Int32Array.from({ length: fast * slow }, (_, i) => seed[i % seed.length] * (i + 1));
        return encodeCbf([{ data, dims: [fast, slow] }], { compression });
      });
    const mutation = fc.oneof(
      fc.record({
        kind: fc.constant('flip' as const),
        at: fc.nat(),
        value: fc.integer({ min: 0, max: 255 }),
      }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(), value: fc.constant(0) }),
      fc.record({
        kind: fc.constant('insert' as const),
        at: fc.nat(),
        value: fc.integer({ min: 0, max: 255 }),
      }),
      fc.record({ kind: fc.constant('digit' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 9 }) }),
    );
    fc.assert(
      fc.property(file, fc.array(mutation, { minLength: 1, maxLength: 4 }), (bytes, mutations) => {
        let mutated = Buffer.from(bytes);
        for (const { kind, at, value } of mutations) {
          const i = at % Math.max(1, mutated.length);
          if (kind === 'flip') mutated[i] = value;
          else if (kind === 'truncate') mutated = mutated.subarray(0, i);
          else if (kind === 'insert')
            mutated = Buffer.concat([mutated.subarray(0, i), Buffer.from([value]), mutated.subarray(i)]);
          else {
            // Change a header digit: sizes, counts and dimensions that disagree with the data.
            const digits = [...mutated.toString('latin1').matchAll(/: (\d+)\r/g)];
            if (digits.length > 0) {
              const m = digits[at % digits.length];
              mutated[(m.index ?? 0) + 2] = 0x30 + value;
            }
          }
        }
        // Without the MD5 check, mutations reach the decoders instead of stopping at the checksum.
        decodedOrUserError(() => parseCbf(mutated, 'mutated.cbf', { verifyMd5: false }));
        decodedOrUserError(() => parseCbf(mutated, 'mutated.cbf'));
      }),
      { numRuns: 400 },
    );
  });
});
