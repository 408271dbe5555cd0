import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  assembleWasm,
  compileWasm,
  instantiateWithMemory,
  signedLeb128,
  unsignedLeb128,
  type WasmFunctionSpec,
  wasmOpcodeTable,
} from '../../src/util/wasm-assembler.js';

/** Assembles, compiles and instantiates functions over a one-page memory. */
function instantiate(functions: WasmFunctionSpec[]) {
  const spec = { memoryImport: ['env', 'memory'] as const, memoryMinPages: 1, functions };
  return instantiateWithMemory(compileWasm(assembleWasm(spec)), spec, 65536);
}

test('LEB128 matches the specification examples', () => {
  assert.deepEqual(unsignedLeb128(0), [0]);
  assert.deepEqual(unsignedLeb128(127), [0x7f]);
  assert.deepEqual(unsignedLeb128(128), [0x80, 0x01]);
  assert.deepEqual(unsignedLeb128(624485), [0xe5, 0x8e, 0x26]);
  assert.deepEqual(unsignedLeb128(0xffffffff), [0xff, 0xff, 0xff, 0xff, 0x0f]);
  assert.deepEqual(signedLeb128(-1), [0x7f]);
  assert.deepEqual(signedLeb128(63), [0x3f]);
  assert.deepEqual(signedLeb128(64), [0xc0, 0x00]);
  assert.deepEqual(signedLeb128(-64), [0x40]);
  assert.deepEqual(signedLeb128(-65), [0xbf, 0x7f]);
  assert.deepEqual(signedLeb128(-123456), [0xc0, 0xbb, 0x78]);
  assert.deepEqual(signedLeb128(-(2 ** 31)), [0x80, 0x80, 0x80, 0x80, 0x78]);
  assert.throws(() => unsignedLeb128(-1), RangeError);
  assert.throws(() => signedLeb128(2 ** 31), RangeError);
});

test('a one-function module has the exact bytes of the binary format', () => {
  const bytes = assembleWasm({
    memoryImport: ['env', 'memory'],
    memoryMinPages: 1,
    functions: [
      {
        name: 'add',
        params: [
          ['$a', 'i32'],
          ['$b', 'i32'],
        ],
        results: ['i32'],
        locals: [],
        body: 'local.get $a local.get $b i32.add ;; a + b',
      },
    ],
  });
  // prettier-ignore
  const expected = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    0x01,
    0x07,
    0x01,
    0x60,
    0x02,
    0x7f,
    0x7f,
    0x01,
    0x7f, // type: (i32, i32) -> i32
    0x02,
    0x0f,
    0x01,
    0x03,
    0x65,
    0x6e,
    0x76,
    0x06,
    0x6d,
    0x65,
    0x6d,
    0x6f,
    0x72,
    0x79,
    0x02,
    0x00,
    0x01, // import env.memory, min 1
    0x03,
    0x02,
    0x01,
    0x00, // function 0 has type 0
    0x07,
    0x07,
    0x01,
    0x03,
    0x61,
    0x64,
    0x64,
    0x00,
    0x00, // export "add" = func 0
    0x0a,
    0x09,
    0x01,
    0x07,
    0x00,
    0x20,
    0x00,
    0x20,
    0x01,
    0x6a,
    0x0b, // code
  ];
  assert.deepEqual([...bytes], expected);
  const { exports } = instantiate([
    {
      name: 'add',
      params: [
        ['$a', 'i32'],
        ['$b', 'i32'],
      ],
      results: ['i32'],
      locals: [],
      body: 'local.get $a local.get $b i32.add',
    },
  ]);
  assert.equal((exports.add as (a: number, b: number) => number)(40, 2), 42);
});

test('blocks, loops, ifs and branches by label; calls; memory loads and stores', () => {
  const { exports, memory } = instantiate([
    {
      name: 'triangle',
      params: [['$n', 'i32']],
      results: ['i32'],
      locals: [
        ['$i', 'i32'],
        ['$sum', 'i32'],
      ],
      // Sum of 1..n, skipping multiples of 3 through an inner block and if/else.
      body: `
        block $done loop $next
          local.get $i local.get $n i32.ge_s br_if $done
          local.get $i i32.const 1 i32.add local.set $i
          block $skip
            local.get $i i32.const 3 i32.rem_u i32.eqz
            if br $skip else local.get $sum local.get $i i32.add local.set $sum end
          end
          br $next
        end end
        local.get $sum`,
    },
    {
      name: 'store_twice',
      params: [
        ['$at', 'i32'],
        ['$v', 'f32'],
      ],
      results: ['f32'],
      locals: [],
      body: `local.get $at local.get $v f32.store offset=8
        local.get $at f32.load offset=8 call $double`,
    },
    {
      name: 'double',
      params: [['$x', 'f32']],
      results: ['f32'],
      locals: [],
      body: 'local.get $x local.get $x f32.add',
      exported: false,
    },
  ]);
  const triangle = exports.triangle as (n: number) => number;
  const want = (n: number) => Array.from({ length: n }, (_, k) => k + 1).filter((k) => k % 3 !== 0);
  for (const n of [0, 1, 5, 100])
    assert.equal(
      triangle(n),
      want(n).reduce((a, b) => a + b, 0),
    );
  assert.equal((exports.store_twice as (at: number, v: number) => number)(16, 1.25), 2.5);
  assert.equal(new Float32Array(memory.buffer, 24, 1)[0], 1.25);
  assert.equal(exports.double, undefined, 'not exported');
});

test('SIMD lanes compute what scalar JavaScript does', () => {
  const { exports, memory } = instantiate([
    {
      name: 'lanes',
      params: [['$at', 'i32']],
      results: [],
      locals: [
        ['$v', 'v128'],
        ['$w', 'v128'],
      ],
      // v = memory[at..at+16) as i32x4; w = (v ^ v >>> 15) * (v | 1) + splat(7); stored at at+16;
      // at+32: f32x4 of nearest(v / 3) with pmin against 1000; at+48: lane 2 of w moved to lane 0.
      body: `
        local.get $at v128.load local.set $v
        local.get $v local.get $v i32.const 15 i32x4.shr_u v128.xor
        local.get $v v128.const i32x4 1 1 1 1 v128.or i32x4.mul
        i32.const 7 i32x4.splat i32x4.add local.set $w
        local.get $at local.get $w v128.store offset=16
        local.get $at
        local.get $v f32x4.convert_i32x4_s f32.const 3 f32x4.splat f32x4.div f32x4.nearest
        f32.const 1000 f32x4.splat f32x4.pmin
        v128.store offset=32
        local.get $at
        local.get $w local.get $w i32x4.extract_lane 2 i32x4.replace_lane 0
        v128.store offset=48`,
    },
  ]);
  const lanes = exports.lanes as (at: number) => void;
  const ints = new Int32Array(memory.buffer, 64, 16);
  const floats = new Float32Array(memory.buffer, 64, 16);
  const input = [123456789, -987654321, 4500, 7];
  ints.set(input);
  lanes(64);
  for (let l = 0; l < 4; l++) {
    const v = input[l];
    const w = (Math.imul(v ^ (v >>> 15), v | 1) + 7) | 0;
    assert.equal(ints[4 + l], w);
    // f32 division then round half to even, capped at 1000.
    const q = Math.fround(Math.fround(v) / 3);
    const nearest = q - Math.floor(q) === 0.5 ? 2 * Math.round(q / 2) : Math.round(q);
    assert.equal(floats[8 + l], Math.min(nearest, 1000));
  }
  assert.equal(ints[12], ints[6]);
  assert.deepEqual([...ints.slice(13, 16)], [...ints.slice(5, 8)]);
});

test('assembler errors name the function and the token', () => {
  const build = (body: string) => () =>
    assembleWasm({
      memoryImport: ['env', 'memory'],
      memoryMinPages: 1,
      functions: [{ name: 'f', params: [['$a', 'i32']], results: [], locals: [], body }],
    });
  assert.throws(build('local.get $a i32.frobnicate'), /f: token 3 \('i32.frobnicate'\): unknown instruction/);
  assert.throws(build('local.get $b drop'), /unknown local \$b/);
  assert.throws(build('block $x br $y end'), /no enclosing block labelled \$y/);
  assert.throws(build('block $x'), /1 block\(s\) not ended/);
  assert.throws(build('end'), /end without a block/);
  assert.throws(build('i32.const 4294967296 drop'), /out of range/);
  assert.throws(build('i32.const'), /missing i32 at the end/);
  assert.throws(build('call $nowhere'), /unknown function \$nowhere/);
});

test('every mnemonic has its own opcode bytes, as the specification numbers them', () => {
  const table = wasmOpcodeTable();
  const byBytes = new Map<string, string>();
  for (const [mnemonic, bytes] of table) {
    const key = bytes.join(',');
    assert.equal(byBytes.get(key), undefined, `${mnemonic} and ${byBytes.get(key)} share ${key}`);
    byBytes.set(key, mnemonic);
  }
  // Spot checks across the table (SIMD sub-opcodes above 0x7f take two LEB128 bytes).
  const hex = (mnemonic: string) =>
    table
      .get(mnemonic)
      ?.map((b) => b.toString(16).padStart(2, '0'))
      .join(' ');
  assert.equal(hex('i32.add'), '6a');
  assert.equal(hex('f32.nearest'), '90');
  assert.equal(hex('i32.trunc_sat_f32_s'), 'fc 00');
  assert.equal(hex('v128.load'), 'fd 00');
  assert.equal(hex('v128.const'), 'fd 0c');
  assert.equal(hex('i32x4.replace_lane'), 'fd 1c');
  assert.equal(hex('f32x4.ge'), 'fd 46');
  assert.equal(hex('v128.any_true'), 'fd 53');
  assert.equal(hex('v128.store32_lane'), 'fd 5a');
  assert.equal(hex('f32x4.nearest'), 'fd 6a');
  assert.equal(hex('i32x4.shr_u'), 'fd ad 01');
  assert.equal(hex('i32x4.mul'), 'fd b5 01');
  assert.equal(hex('i32x4.min_s'), 'fd b6 01');
  assert.equal(hex('f32x4.pmin'), 'fd ea 01');
  assert.equal(hex('f32x4.convert_i32x4_s'), 'fd fa 01');
});
