/**
 * A small WebAssembly assembler: a module of functions whose bodies are written in the flat
 * (stack-machine) form of the WebAssembly text format, e.g. `local.get $x i32.const 1 i32.add`,
 * assembled in-process into a binary module. It exists so hot loops that V8's JavaScript JIT handles
 * poorly (the simulator's per-pixel detector pass) can be written as explicit SIMD code with no
 * toolchain, build step or binary in the repository: the kernel's source is TypeScript that emits text,
 * the way models are TypeScript that emits ONNX.
 *
 * The subset: one imported memory; functions with params, results and named locals; blocks, loops and
 * ifs without block results (pass values through locals), branches by label name; calls by function
 * name; the scalar and SIMD (v128) instructions in `OPCODES`. Comments run from `;;` to the end of the
 * line. Errors name the function and the token.
 */

export type WasmValueType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128';

export interface WasmFunctionSpec {
  name: string;
  params: readonly (readonly [string, WasmValueType])[];
  results: readonly WasmValueType[];
  locals: readonly (readonly [string, WasmValueType])[];
  /** Flat instructions (see the module comment). */
  body: string;
  /** Exported under its name (default true). */
  exported?: boolean;
}

export interface WasmModuleSpec {
  /** The memory is imported as `module.field`, so one compiled module serves memories of any size. */
  memoryImport: readonly [string, string];
  memoryMinPages: number;
  functions: readonly WasmFunctionSpec[];
}

const VALUE_TYPE_CODES: Record<WasmValueType, number> = {
  i32: 0x7f,
  i64: 0x7e,
  f32: 0x7d,
  f64: 0x7c,
  v128: 0x7b,
};

/** What follows an opcode in the binary. */
type Immediate =
  | 'none'
  | 'block'
  | 'label'
  | 'local'
  | 'func'
  | 'i32'
  | 'f32'
  | 'f64'
  | 'memarg'
  | 'lane'
  | 'memarg-lane'
  | 'v128';

/** Opcode bytes (the 0xfd prefix and LEB128 sub-opcode for SIMD) and immediate kind per mnemonic. */
const OPCODES = new Map<string, { bytes: number[]; immediate: Immediate; naturalAlignLog2?: number }>();

function scalar(code: number, names: string, immediate: Immediate = 'none'): void {
  for (const name of names.split(' ')) OPCODES.set(name, { bytes: [code++], immediate });
}
function memory(code: number, name: string, naturalAlignLog2: number): void {
  OPCODES.set(name, { bytes: [code], immediate: 'memarg', naturalAlignLog2 });
}
function simd(code: number, name: string, immediate: Immediate = 'none', naturalAlignLog2?: number): void {
  OPCODES.set(name, { bytes: [0xfd, ...unsignedLeb128(code)], immediate, naturalAlignLog2 });
}

/** Consecutive SIMD sub-opcodes from `first`. */
function simdRun(first: number, names: readonly string[]): void {
  names.forEach((name, k) => {
    simd(first + k, name);
  });
}

scalar(0x00, 'unreachable nop');
scalar(0x02, 'block loop if', 'block');
scalar(0x05, 'else');
scalar(0x0b, 'end');
scalar(0x0c, 'br br_if', 'label');
scalar(0x0f, 'return');
scalar(0x10, 'call', 'func');
scalar(0x1a, 'drop select');
scalar(0x20, 'local.get local.set local.tee', 'local');
memory(0x28, 'i32.load', 2);
memory(0x2a, 'f32.load', 2);
memory(0x2b, 'f64.load', 3);
memory(0x2c, 'i32.load8_s', 0);
memory(0x2d, 'i32.load8_u', 0);
memory(0x2e, 'i32.load16_s', 1);
memory(0x2f, 'i32.load16_u', 1);
memory(0x36, 'i32.store', 2);
memory(0x38, 'f32.store', 2);
memory(0x39, 'f64.store', 3);
memory(0x3a, 'i32.store8', 0);
memory(0x3b, 'i32.store16', 1);
scalar(0x41, 'i32.const', 'i32');
scalar(0x43, 'f32.const', 'f32');
scalar(0x44, 'f64.const', 'f64');
scalar(0x45, 'i32.eqz i32.eq i32.ne i32.lt_s i32.lt_u i32.gt_s i32.gt_u i32.le_s i32.le_u i32.ge_s i32.ge_u');
scalar(0x5b, 'f32.eq f32.ne f32.lt f32.gt f32.le f32.ge');
scalar(0x61, 'f64.eq f64.ne f64.lt f64.gt f64.le f64.ge');
scalar(
  0x67,
  'i32.clz i32.ctz i32.popcnt i32.add i32.sub i32.mul i32.div_s i32.div_u i32.rem_s i32.rem_u i32.and i32.or i32.xor i32.shl i32.shr_s i32.shr_u i32.rotl i32.rotr',
);
scalar(
  0x8b,
  'f32.abs f32.neg f32.ceil f32.floor f32.trunc f32.nearest f32.sqrt f32.add f32.sub f32.mul f32.div f32.min f32.max f32.copysign',
);
scalar(
  0x99,
  'f64.abs f64.neg f64.ceil f64.floor f64.trunc f64.nearest f64.sqrt f64.add f64.sub f64.mul f64.div f64.min f64.max f64.copysign',
);
scalar(0xa8, 'i32.trunc_f32_s i32.trunc_f32_u i32.trunc_f64_s i32.trunc_f64_u');
scalar(0xb2, 'f32.convert_i32_s f32.convert_i32_u');
scalar(0xb6, 'f32.demote_f64');
scalar(0xb7, 'f64.convert_i32_s f64.convert_i32_u');
scalar(0xbb, 'f64.promote_f32');
scalar(0xbc, 'i32.reinterpret_f32');
scalar(0xbe, 'f32.reinterpret_i32');
// Saturating float-to-int conversions (0xfc prefix): never trap, NaN gives 0.
OPCODES.set('i32.trunc_sat_f32_s', { bytes: [0xfc, 0x00], immediate: 'none' });
OPCODES.set('i32.trunc_sat_f32_u', { bytes: [0xfc, 0x01], immediate: 'none' });

simd(0x00, 'v128.load', 'memarg', 4);
simd(0x0b, 'v128.store', 'memarg', 4);
simd(0x0c, 'v128.const', 'v128');
simd(0x11, 'i32x4.splat');
simd(0x13, 'f32x4.splat');
simd(0x1b, 'i32x4.extract_lane', 'lane');
simd(0x1c, 'i32x4.replace_lane', 'lane');
simd(0x1f, 'f32x4.extract_lane', 'lane');
simd(0x20, 'f32x4.replace_lane', 'lane');
simdRun(0x37, [
  'i32x4.eq',
  'i32x4.ne',
  'i32x4.lt_s',
  'i32x4.lt_u',
  'i32x4.gt_s',
  'i32x4.gt_u',
  'i32x4.le_s',
  'i32x4.le_u',
  'i32x4.ge_s',
  'i32x4.ge_u',
  'f32x4.eq',
  'f32x4.ne',
  'f32x4.lt',
  'f32x4.gt',
  'f32x4.le',
  'f32x4.ge',
]);
simdRun(0x4d, [
  'v128.not',
  'v128.and',
  'v128.andnot',
  'v128.or',
  'v128.xor',
  'v128.bitselect',
  'v128.any_true',
]);
simd(0x5a, 'v128.store32_lane', 'memarg-lane', 2);
simdRun(0x67, ['f32x4.ceil', 'f32x4.floor', 'f32x4.trunc', 'f32x4.nearest']);
simd(0xa3, 'i32x4.all_true');
simd(0xa4, 'i32x4.bitmask');
simdRun(0xab, ['i32x4.shl', 'i32x4.shr_s', 'i32x4.shr_u', 'i32x4.add']);
simd(0xb1, 'i32x4.sub');
simd(0xb5, 'i32x4.mul');
simdRun(0xb6, ['i32x4.min_s', 'i32x4.min_u', 'i32x4.max_s', 'i32x4.max_u']);
simd(0xe0, 'f32x4.abs');
simd(0xe1, 'f32x4.neg');
simdRun(0xe3, [
  'f32x4.sqrt',
  'f32x4.add',
  'f32x4.sub',
  'f32x4.mul',
  'f32x4.div',
  'f32x4.min',
  'f32x4.max',
  'f32x4.pmin',
  'f32x4.pmax',
]);
simdRun(0xf8, [
  'i32x4.trunc_sat_f32x4_s',
  'i32x4.trunc_sat_f32x4_u',
  'f32x4.convert_i32x4_s',
  'f32x4.convert_i32x4_u',
]);

/** The mnemonics the assembler knows and their opcode bytes (prefix and sub-opcode included). */
export function wasmOpcodeTable(): Map<string, number[]> {
  return new Map([...OPCODES].map(([mnemonic, op]) => [mnemonic, [...op.bytes]]));
}

export function unsignedLeb128(value: number): number[] {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
    throw new RangeError(`unsigned LEB128: ${value} is not a u32`);
  const out: number[] = [];
  let v = value;
  do {
    let byte = v % 128;
    v = Math.floor(v / 128);
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

export function signedLeb128(value: number): number[] {
  if (!Number.isInteger(value) || value < -(2 ** 31) || value > 2 ** 31 - 1)
    throw new RangeError(`signed LEB128: ${value} is not an i32`);
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

const utf8 = (text: string): number[] => [...new TextEncoder().encode(text)];
const name = (text: string): number[] => {
  const bytes = utf8(text);
  return [...unsignedLeb128(bytes.length), ...bytes];
};
const vector = (items: number[][]): number[] => [...unsignedLeb128(items.length), ...items.flat()];
const section = (id: number, content: number[]): number[] => [
  id,
  ...unsignedLeb128(content.length),
  ...content,
];

function parseInteger(token: string, fn: string): number {
  const negative = token.startsWith('-');
  const digits = negative ? token.slice(1) : token;
  const value = /^0x[0-9a-f]+$/i.test(digits)
    ? Number.parseInt(digits, 16)
    : /^[0-9]+$/.test(digits)
      ? Number.parseInt(digits, 10)
      : Number.NaN;
  if (!Number.isFinite(value)) throw new Error(`wasm assembler: ${fn}: '${token}' is not an integer`);
  return negative ? -value : value;
}

/** An i32 immediate: -2^31 .. 2^32 - 1 (values above 2^31 - 1 are the same bits, unsigned). */
function parseI32(token: string, fn: string): number {
  const value = parseInteger(token, fn);
  if (value < -(2 ** 31) || value > 0xffffffff)
    throw new Error(`wasm assembler: ${fn}: i32 constant ${token} out of range`);
  return value | 0;
}

function parseFloatToken(token: string, fn: string): number {
  const value = token === 'inf' ? Infinity : token === '-inf' ? -Infinity : Number(token);
  if (Number.isNaN(value)) throw new Error(`wasm assembler: ${fn}: '${token}' is not a number`);
  return value;
}

function floatBytes(value: number, bytes: 4 | 8): number[] {
  const view = new DataView(new ArrayBuffer(bytes));
  if (bytes === 4) view.setFloat32(0, value, true);
  else view.setFloat64(0, value, true);
  return [...new Uint8Array(view.buffer)];
}

/** Assembles one function body (without the locals header) into bytes ending in `end`. */
function assembleBody(fn: WasmFunctionSpec, functionIndex: Map<string, number>): number[] {
  const localIndex = new Map<string, number>();
  for (const [local] of [...fn.params, ...fn.locals]) {
    if (localIndex.has(local)) throw new Error(`wasm assembler: ${fn.name}: local ${local} declared twice`);
    localIndex.set(local, localIndex.size);
  }
  const tokens = fn.body
    .split('\n')
    .map((line) => line.replace(/;;.*$/, ''))
    .join(' ')
    .split(/\s+/)
    .filter((token) => token.length > 0);
  const out: number[] = [];
  /** Open blocks, innermost last; each entry is the block's label (or '' when unnamed). */
  const labels: string[] = [];
  let t = 0;
  const next = (what: string): string => {
    if (t >= tokens.length) throw new Error(`wasm assembler: ${fn.name}: missing ${what} at the end`);
    return tokens[t++];
  };
  const at = () => `${fn.name}: token ${t} ('${tokens[t - 1]}')`;
  while (t < tokens.length) {
    const mnemonic = next('instruction');
    const op = OPCODES.get(mnemonic);
    if (op === undefined) throw new Error(`wasm assembler: ${at()}: unknown instruction`);
    out.push(...op.bytes);
    switch (op.immediate) {
      case 'none':
        if (mnemonic === 'end') {
          if (labels.length === 0) throw new Error(`wasm assembler: ${at()}: end without a block`);
          labels.pop();
        } else if (mnemonic === 'else' && labels.length === 0)
          throw new Error(`wasm assembler: ${at()}: else without an if`);
        break;
      case 'block': {
        const label = tokens[t]?.startsWith('$') ? next('label') : '';
        labels.push(label);
        out.push(0x40); // no block result
        break;
      }
      case 'label': {
        const label = next('label');
        const depth = labels.length - 1 - labels.lastIndexOf(label);
        if (!label.startsWith('$') || depth >= labels.length)
          throw new Error(`wasm assembler: ${at()}: no enclosing block labelled ${label}`);
        out.push(...unsignedLeb128(depth));
        break;
      }
      case 'local': {
        const local = next('local');
        const index = localIndex.get(local);
        if (index === undefined) throw new Error(`wasm assembler: ${at()}: unknown local ${local}`);
        out.push(...unsignedLeb128(index));
        break;
      }
      case 'func': {
        const callee = next('function');
        const index = functionIndex.get(callee.replace(/^\$/, ''));
        if (index === undefined) throw new Error(`wasm assembler: ${at()}: unknown function ${callee}`);
        out.push(...unsignedLeb128(index));
        break;
      }
      case 'i32':
        out.push(...signedLeb128(parseI32(next('i32'), fn.name)));
        break;
      case 'f32':
        out.push(...floatBytes(parseFloatToken(next('f32'), fn.name), 4));
        break;
      case 'f64':
        out.push(...floatBytes(parseFloatToken(next('f64'), fn.name), 8));
        break;
      case 'memarg':
      case 'memarg-lane': {
        let offset = 0;
        let alignLog2 = op.naturalAlignLog2 ?? 0;
        while (t < tokens.length && /^(offset|align)=/.test(tokens[t])) {
          const [key, value] = next('memarg').split('=');
          const n = parseInteger(value, fn.name);
          if (key === 'offset') offset = n;
          else {
            alignLog2 = Math.log2(n);
            if (!Number.isInteger(alignLog2) || alignLog2 > (op.naturalAlignLog2 ?? 0))
              throw new Error(`wasm assembler: ${at()}: bad alignment ${value}`);
          }
        }
        out.push(...unsignedLeb128(alignLog2), ...unsignedLeb128(offset));
        if (op.immediate === 'memarg-lane') out.push(parseInteger(next('lane'), fn.name));
        break;
      }
      case 'lane': {
        const lane = parseInteger(next('lane'), fn.name);
        if (lane < 0 || lane > 15) throw new Error(`wasm assembler: ${at()}: lane ${lane} out of range`);
        out.push(lane);
        break;
      }
      case 'v128': {
        const shape = next('v128 shape');
        if (shape === 'i32x4')
          for (let k = 0; k < 4; k++) {
            const v = parseI32(next('i32x4 lane'), fn.name);
            out.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
          }
        else if (shape === 'f32x4')
          for (let k = 0; k < 4; k++)
            out.push(...floatBytes(parseFloatToken(next('f32x4 lane'), fn.name), 4));
        else throw new Error(`wasm assembler: ${at()}: v128.const shape must be i32x4 or f32x4`);
        break;
      }
    }
  }
  if (labels.length > 0) throw new Error(`wasm assembler: ${fn.name}: ${labels.length} block(s) not ended`);
  out.push(0x0b);
  return out;
}

/** Assembles the module into WebAssembly binary format. */
export function assembleWasm(spec: WasmModuleSpec): Uint8Array<ArrayBuffer> {
  const functionIndex = new Map(spec.functions.map((fn, k) => [fn.name, k]));
  const types = spec.functions.map((fn) => [
    0x60,
    ...vector(fn.params.map(([, type]) => [VALUE_TYPE_CODES[type]])),
    ...vector(fn.results.map((type) => [VALUE_TYPE_CODES[type]])),
  ]);
  const [importModule, importField] = spec.memoryImport;
  const memoryImport = [
    ...name(importModule),
    ...name(importField),
    0x02, // memory
    0x00, // limits: minimum only
    ...unsignedLeb128(spec.memoryMinPages),
  ];
  const exports = spec.functions
    .map((fn, k) => ({ fn, k }))
    .filter(({ fn }) => fn.exported !== false)
    .map(({ fn, k }) => [...name(fn.name), 0x00, ...unsignedLeb128(k)]);
  const bodies = spec.functions.map((fn) => {
    // Locals in runs of one type each (the binary groups consecutive locals of the same type).
    const runs: number[][] = [];
    for (const [, type] of fn.locals) {
      const last = runs[runs.length - 1];
      if (last && last[1] === VALUE_TYPE_CODES[type]) last[0]++;
      else runs.push([1, VALUE_TYPE_CODES[type]]);
    }
    const code = [
      ...vector(runs.map(([count, type]) => [...unsignedLeb128(count), type])),
      ...assembleBody(fn, functionIndex),
    ];
    return [...unsignedLeb128(code.length), ...code];
  });
  return Uint8Array.from([
    0x00,
    0x61,
    0x73,
    0x6d, // \0asm
    0x01,
    0x00,
    0x00,
    0x00, // version 1
    ...section(1, vector(types)),
    ...section(2, vector([memoryImport])),
    ...section(3, vector(spec.functions.map((_, k) => unsignedLeb128(k)))),
    ...section(7, vector(exports)),
    ...section(10, vector(bodies)),
  ]);
}

/**
 * The part of the WebAssembly JavaScript API used here, typed locally: the project's `lib` has no DOM
 * and @types/node 20 declares no WebAssembly values.
 */
interface WasmRuntime {
  Module: new (bytes: Uint8Array) => WasmCompiledModule;
  Memory: new (descriptor: { initial: number }) => WasmMemory;
  Instance: new (
    module: WasmCompiledModule,
    imports: Record<string, Record<string, unknown>>,
  ) => { exports: Record<string, unknown> };
  validate(bytes: Uint8Array): boolean;
}
export type WasmCompiledModule = { readonly __wasmModule: unique symbol };
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}

const wasmRuntime = (globalThis as unknown as { WebAssembly: WasmRuntime }).WebAssembly;

/** Compiles an assembled module (throws with V8's message, which names the function and byte offset). */
export function compileWasm(bytes: Uint8Array): WasmCompiledModule {
  return new wasmRuntime.Module(bytes);
}

/** Instantiates `module` over a new memory of `bytes` bytes (rounded up to 64 KiB pages). */
export function instantiateWithMemory(
  module: WasmCompiledModule,
  spec: Pick<WasmModuleSpec, 'memoryImport'>,
  bytes: number,
): { memory: WasmMemory; exports: Record<string, unknown> } {
  const memory = new wasmRuntime.Memory({ initial: Math.ceil(bytes / 65536) });
  const [moduleName, field] = spec.memoryImport;
  const instance = new wasmRuntime.Instance(module, { [moduleName]: { [field]: memory } });
  return { memory, exports: instance.exports };
}
