import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { type Geometry, parseGeometry } from '../src/io/geom.js';
import { summariseGeometry } from '../src/io/inspect/geom.js';
import { UserError } from '../src/util/errors.js';
import { haveShared, needsShared, sharedPath } from './helpers.js';

/** Parses and summarises; a UserError is an acceptable answer, anything else fails the property. */
function parseOrUserError(text: string): Geometry | UserError {
  try {
    const geometry = parseGeometry(text, 'fuzz.geom');
    summariseGeometry(geometry);
    return geometry;
  } catch (error) {
    if (error instanceof UserError) {
      assert.equal(error.file, 'fuzz.geom');
      assert.ok(error.message.length > 0);
      return error;
    }
    throw error;
  }
}

const TOKENS = [
  '\n',
  ' ',
  '=',
  ';',
  '/',
  '+',
  '-',
  '.',
  'x',
  'y',
  'z',
  '0',
  '1',
  '9',
  'e',
  '%',
  ',',
  '\t',
  '\r',
  'p0/',
  'bad_r/',
  'min_fs',
  'max_fs',
  'min_ss',
  'max_ss',
  'corner_x',
  'corner_y',
  'fs',
  'ss',
  'res',
  'clen',
  'coffset',
  'photon_energy',
  'mask',
  'mask_file',
  'mask0_data',
  'dim0',
  'dim1',
  'no_index',
  'panel',
  'min_x',
  'max_y',
  'group_',
  'rigid_group_',
  'beam/',
  'keV',
  'mm',
  '__proto__',
  '0x',
];

test('random text parses to a Geometry or a UserError, nothing else', { timeout: 60_000 }, () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (text) => {
      parseOrUserError(text);
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 200 }), (tokens) => {
      parseOrUserError(tokens.join(''));
    }),
    { numRuns: 300 },
  );
});

type Mutation =
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'dropLine'; line: number }
  | { kind: 'duplicateLine'; line: number }
  | { kind: 'replaceValue'; line: number; value: string };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    text: fc.array(fc.constantFrom(...TOKENS), { minLength: 1, maxLength: 4 }).map((parts) => parts.join('')),
  }),
  fc.record({ kind: fc.constant('dropLine' as const), line: fc.nat() }),
  fc.record({ kind: fc.constant('duplicateLine' as const), line: fc.nat() }),
  fc.record({
    kind: fc.constant('replaceValue' as const),
    line: fc.nat(),
    value: fc.oneof(
      fc.constantFrom('', '-1', '1e400', '99999999', '0.5', 'x', '-z', '/a/b', 'true', '0xff', '1 mm', 'nan'),
      fc.double().map(String),
      fc.string({ maxLength: 8 }),
    ),
  }),
);

function mutate(text: string, mutations: Mutation[]): string {
  let out = text;
  for (const mutation of mutations) {
    if (mutation.kind === 'delete' || mutation.kind === 'insert') {
      const at = mutation.at % (out.length + 1);
      out =
        mutation.kind === 'delete'
          ? out.slice(0, at) + out.slice(at + mutation.length)
          : out.slice(0, at) + mutation.text + out.slice(at);
      continue;
    }
    const lines = out.split('\n');
    const line = mutation.line % lines.length;
    if (mutation.kind === 'dropLine') lines.splice(line, 1);
    else if (mutation.kind === 'duplicateLine') lines.splice(line, 0, lines[line]);
    else {
      const eq = lines[line].indexOf('=');
      lines[line] = eq >= 0 ? `${lines[line].slice(0, eq + 1)} ${mutation.value}` : mutation.value;
    }
    out = lines.join('\n');
  }
  return out;
}

const SOURCES = haveShared
  ? [
      'data/geometry/lcls-dec.geom',
      'data/geometry/pilatus.geom',
      'data/geometry/jf-swissfel-16M.geom',
      'data/geometry/cspad-cxiformat.geom',
      'data/geometry/Eiger16M-binning2-nativefiles.geom',
    ].map((name) => readFileSync(sharedPath(name), 'utf8'))
  : [];

test('mutated real geometry files parse to a Geometry or a UserError', {
  ...needsShared,
  timeout: 60_000,
}, () => {
  let parsed = 0;
  let rejected = 0;
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: SOURCES.length - 1 }),
      fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
      (source, mutations) => {
        if (parseOrUserError(mutate(SOURCES[source], mutations)) instanceof UserError) rejected++;
        else parsed++;
      },
    ),
    { numRuns: 300 },
  );
  // Both outcomes occur, so the property exercises the parser rather than one early exit.
  assert.ok(parsed > 0 && rejected > 0, `parsed ${parsed}, rejected ${rejected}`);
});

const coefficient = fc
  .double({ min: -2, max: 2, noNaN: true })
  .filter((value) => value !== 0)
  .map((value) => Number(value.toPrecision(6)));

const panelArb = fc.record({
  minFs: fc.nat(500),
  width: fc.integer({ min: 1, max: 300 }),
  minSs: fc.nat(500),
  height: fc.integer({ min: 1, max: 300 }),
  // `+ 0` turns -0 into 0: the text '-0' and '0' both mean zero, and -0 is not what this is about.
  cornerX: fc.double({ min: -2000, max: 2000, noNaN: true }).map((value) => value + 0),
  cornerY: fc.double({ min: -2000, max: 2000, noNaN: true }).map((value) => value + 0),
  fsX: coefficient,
  fsY: coefficient,
  ssX: coefficient,
  ssZ: coefficient,
  res: fc.double({ min: 1, max: 1e5, noNaN: true }),
  coffset: fc.double({ min: -1, max: 1, noNaN: true }).map((value) => value + 0),
});

function signed(value: number): string {
  return value < 0 ? String(value) : `+${value}`;
}

test('generated panels round-trip: the parser returns the numbers that were written', {
  timeout: 60_000,
}, () => {
  fc.assert(
    fc.property(
      fc.array(panelArb, { minLength: 1, maxLength: 4 }),
      fc.double({ min: 0.01, max: 10, noNaN: true }),
      (panels, clen) => {
        const text = [
          `clen = ${clen}   ; metres`,
          ...panels.flatMap((p, i) => [
            `p${i}/min_fs = ${p.minFs}`,
            `p${i}/max_fs = ${p.minFs + p.width - 1}`,
            `p${i}/min_ss = ${p.minSs}`,
            `p${i}/max_ss = ${p.minSs + p.height - 1}`,
            `p${i}/corner_x = ${p.cornerX}`,
            `p${i}/corner_y = ${p.cornerY}`,
            `p${i}/fs = ${signed(p.fsX)}x ${signed(p.fsY)}y`,
            `p${i}/ss = ${signed(p.ssX)}x ${signed(p.ssZ)}z`,
            `p${i}/res = ${p.res}`,
            `p${i}/coffset = ${p.coffset}`,
          ]),
        ].join('\n');
        const geometry = parseGeometry(text);
        assert.equal(geometry.panels.length, panels.length);
        panels.forEach((p, i) => {
          const panel = geometry.panels[i];
          assert.equal(panel.name, `p${i}`);
          assert.deepEqual([panel.minFs, panel.maxFs], [p.minFs, p.minFs + p.width - 1]);
          assert.deepEqual([panel.minSs, panel.maxSs], [p.minSs, p.minSs + p.height - 1]);
          assert.equal(panel.cornerXPx, p.cornerX);
          assert.equal(panel.cornerYPx, p.cornerY);
          assert.deepEqual(panel.fs, { x: p.fsX, y: p.fsY, z: 0 });
          assert.deepEqual(panel.ss, { x: p.ssX, y: 0, z: p.ssZ });
          assert.equal(panel.resPxPerM, p.res);
          assert.equal(panel.coffsetM, p.coffset);
          assert.deepEqual(panel.clen, { kind: 'value', clenM: clen });
        });
      },
    ),
    { numRuns: 300 },
  );
});
