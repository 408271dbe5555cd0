/**
 * Checkpoints as safetensors files (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length, a JSON header `{name: {dtype, shape, data_offsets}, __metadata__}`
 * padded with spaces to a multiple of 8 bytes, then the raw little-endian tensor bytes.
 *
 * Two layers: `writeSafetensors` / `SafetensorsFile` know only the file format (so other tools can
 * read our weights and we can read theirs); `saveCheckpoint` / `loadCheckpoint` give it meaning:
 * weights under their own names, AdamW moments under `optimizer.m.NAME` / `optimizer.v.NAME`, and the
 * step and configs as `__metadata__` strings.
 *
 * Files are written tensor by tensor and read tensor by tensor: a 673M-parameter model with its
 * optimiser state is ~8 GB, so nothing here ever holds the whole file in one buffer.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import os from 'node:os';
import { UserError } from '../util/errors.js';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export type TensorArray =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

const BYTES_PER_ELEMENT: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** A tensor to write: row-major values in `data`; `dtype` defaults from the array type. */
export interface NamedTensor {
  name: string;
  shape: readonly number[];
  data: TensorArray;
  /** Needed only to tell F16 from BF16 (both Uint16Array) or BOOL from U8. */
  dtype?: SafetensorsDtype;
}

/** One header entry: where a tensor's bytes lie, relative to the start of the data section. */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte offsets [begin, end) in the data section. */
  dataOffsets: [number, number];
}

/** The header refuses anything bigger: a real header is a few hundred bytes per tensor. */
const MAX_HEADER_BYTES = 256 * 2 ** 20;
/** Node's read/write calls take at most 2 GiB at a time. */
const IO_CHUNK_BYTES = 1 << 30;

function assertLittleEndianHost(): void {
  // Typed arrays use host byte order and the format is little-endian; every platform Node supports
  // today is little-endian, so we refuse rather than byte-swap.
  if (os.endianness() !== 'LE') throw new Error('safetensors I/O needs a little-endian host');
}

function dtypeOf(tensor: NamedTensor): SafetensorsDtype {
  if (tensor.dtype !== undefined) return tensor.dtype;
  const data = tensor.data;
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof BigInt64Array) return 'I64';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof Int16Array) return 'I16';
  if (data instanceof Int8Array) return 'I8';
  if (data instanceof Uint8Array) return 'U8';
  if (data instanceof Uint16Array) return 'F16';
  throw new Error(`tensor ${tensor.name}: unsupported array type`);
}

function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const dim of shape) count *= dim;
  return count;
}

function bytesOf(data: TensorArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) {
    const length = Math.min(IO_CHUNK_BYTES, bytes.byteLength - done);
    done += writeSync(fd, bytes, done, length);
  }
}

/**
 * Writes tensors and string metadata as a safetensors file, streaming each tensor's bytes straight
 * from its typed array. Tensors are laid out widest dtype first so every tensor stays aligned to its
 * element size (the data section starts 8-byte aligned).
 */
export function writeSafetensors(
  path: string,
  tensors: readonly NamedTensor[],
  metadata: Readonly<Record<string, string>> = {},
): void {
  assertLittleEndianHost();
  const seen = new Set<string>();
  for (const tensor of tensors) {
    if (tensor.name === '__metadata__' || tensor.name === '')
      throw new Error(`bad tensor name "${tensor.name}"`);
    if (seen.has(tensor.name)) throw new Error(`duplicate tensor name ${tensor.name}`);
    seen.add(tensor.name);
    const dtype = dtypeOf(tensor);
    const count = elementCount(tensor.shape);
    if (count * BYTES_PER_ELEMENT[dtype] !== tensor.data.byteLength) {
      throw new Error(
        `tensor ${tensor.name}: shape [${tensor.shape.join(', ')}] (${dtype}) needs ${count} elements, data has ${tensor.data.length}`,
      );
    }
  }
  const ordered = tensors
    .map((tensor, index) => ({ tensor, index, dtype: dtypeOf(tensor) }))
    .sort((a, b) => BYTES_PER_ELEMENT[b.dtype] - BYTES_PER_ELEMENT[a.dtype] || a.index - b.index);

  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = { ...metadata };
  let offset = 0;
  for (const { tensor, dtype } of ordered) {
    const end = offset + tensor.data.byteLength;
    header[tensor.name] = { dtype, shape: [...tensor.shape], data_offsets: [offset, end] };
    offset = end;
  }
  let headerText = JSON.stringify(header);
  const headerBytesRaw = Buffer.byteLength(headerText, 'utf8');
  headerText += ' '.repeat((8 - ((8 + headerBytesRaw) % 8)) % 8);
  const headerBytes = Buffer.from(headerText, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.byteLength));

  const fd = openSync(path, 'w');
  try {
    writeAll(fd, prefix);
    writeAll(fd, headerBytes);
    for (const { tensor } of ordered) writeAll(fd, bytesOf(tensor.data));
  } finally {
    closeSync(fd);
  }
}

function newArray(dtype: SafetensorsDtype, count: number): TensorArray {
  switch (dtype) {
    case 'F64':
      return new Float64Array(count);
    case 'F32':
      return new Float32Array(count);
    case 'F16':
    case 'BF16':
      return new Uint16Array(count);
    case 'I64':
      return new BigInt64Array(count);
    case 'I32':
      return new Int32Array(count);
    case 'I16':
      return new Int16Array(count);
    case 'I8':
      return new Int8Array(count);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(count);
  }
}

/**
 * An open safetensors file: the header is parsed and checked on open; tensors are read on demand.
 * Call `close()` when done (or use `readSafetensors` for a one-shot read of everything).
 */
export class SafetensorsFile {
  readonly entries: ReadonlyMap<string, SafetensorsEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  private fd: number | undefined;
  private readonly dataStart: number;

  private constructor(
    readonly path: string,
    fd: number,
    entries: Map<string, SafetensorsEntry>,
    metadata: Record<string, string>,
    dataStart: number,
  ) {
    this.fd = fd;
    this.entries = entries;
    this.metadata = metadata;
    this.dataStart = dataStart;
  }

  static open(path: string): SafetensorsFile {
    assertLittleEndianHost();
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (error) {
      throw new UserError(`cannot open checkpoint: ${(error as Error).message}`, path);
    }
    try {
      const fileBytes = fstatSync(fd).size;
      const fail = (where: string, message: string): never => {
        throw new UserError(message, path, where);
      };
      if (fileBytes < 8)
        fail('header length', `file is ${fileBytes} bytes, too short for a safetensors header`);
      const prefix = Buffer.alloc(8);
      readSync(fd, prefix, 0, 8, 0);
      const headerLength = prefix.readBigUInt64LE(0);
      if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, fileBytes - 8))) {
        fail(
          'header length',
          `header length ${headerLength} exceeds the file (${fileBytes} bytes) or 256 MiB`,
        );
      }
      const headerBytes = Buffer.alloc(Number(headerLength));
      readSync(fd, headerBytes, 0, headerBytes.byteLength, 8);
      let header: unknown;
      try {
        header = JSON.parse(headerBytes.toString('utf8'));
      } catch (error) {
        fail('header', `header is not JSON: ${(error as Error).message}`);
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header)) {
        fail('header', 'header is not a JSON object');
      }
      const dataStart = 8 + Number(headerLength);
      const dataBytes = fileBytes - dataStart;
      const entries = new Map<string, SafetensorsEntry>();
      let metadata: Record<string, string> = {};
      for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
        if (name === '__metadata__') {
          metadata = parseMetadata(raw, (message) => fail('__metadata__', message));
          continue;
        }
        entries.set(
          name,
          parseEntry(name, raw, dataBytes, (message) => fail(`tensor ${name}`, message)),
        );
      }
      return new SafetensorsFile(path, fd, entries, metadata, dataStart);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  get names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): SafetensorsEntry {
    const entry = this.entries.get(name);
    if (entry === undefined) throw new UserError('tensor is missing', this.path, `tensor ${name}`);
    return entry;
  }

  /** Reads one tensor into a fresh typed array (or into `into`, which must have the right length). */
  read(name: string, into?: TensorArray): TensorArray {
    if (this.fd === undefined) throw new Error(`${this.path} is closed`);
    const entry = this.entry(name);
    const [begin, end] = entry.dataOffsets;
    const count = (end - begin) / BYTES_PER_ELEMENT[entry.dtype];
    const out = into ?? newArray(entry.dtype, count);
    if (out.byteLength !== end - begin) {
      throw new UserError(
        `tensor has ${end - begin} bytes, the destination ${out.byteLength}`,
        this.path,
        `tensor ${name}`,
      );
    }
    const bytes = bytesOf(out);
    let done = 0;
    while (done < bytes.byteLength) {
      const length = Math.min(IO_CHUNK_BYTES, bytes.byteLength - done);
      const got = readSync(this.fd, bytes, done, length, this.dataStart + begin + done);
      if (got === 0) throw new UserError('file ends inside the tensor data', this.path, `tensor ${name}`);
      done += got;
    }
    return out;
  }

  /** Reads a tensor that must be F32 (what every parameter and moment is). */
  readFloat32(name: string, into?: Float32Array): Float32Array {
    const entry = this.entry(name);
    if (entry.dtype !== 'F32')
      throw new UserError(`dtype is ${entry.dtype}, expected F32`, this.path, `tensor ${name}`);
    return this.read(name, into) as Float32Array;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

function parseMetadata(raw: unknown, fail: (message: string) => never): Record<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('must be an object of strings');
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value !== 'string') fail(`value of "${key}" is not a string`);
    out[key] = value as string;
  }
  return out;
}

function parseEntry(
  name: string,
  raw: unknown,
  dataBytes: number,
  fail: (message: string) => never,
): SafetensorsEntry {
  if (typeof raw !== 'object' || raw === null) fail('entry is not an object');
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in BYTES_PER_ELEMENT))
    fail(`unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[1] < offsets[0]
  ) {
    fail(`data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
  }
  const [begin, end] = offsets as [number, number];
  const expected = elementCount(shape as number[]) * BYTES_PER_ELEMENT[dtype as SafetensorsDtype];
  if (end - begin !== expected) {
    fail(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes, shape and dtype need ${expected}`);
  }
  if (end > dataBytes)
    fail(`data_offsets end ${end} is past the end of the file (data section is ${dataBytes} bytes)`);
  return { name, dtype: dtype as SafetensorsDtype, shape: shape as number[], dataOffsets: [begin, end] };
}

/** Reads a whole safetensors file: every tensor and the metadata. */
export function readSafetensors(path: string): {
  tensors: Map<string, { dtype: SafetensorsDtype; shape: number[]; data: TensorArray }>;
  metadata: Record<string, string>;
} {
  const file = SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, { dtype: SafetensorsDtype; shape: number[]; data: TensorArray }>();
    for (const entry of file.entries.values()) {
      tensors.set(entry.name, { dtype: entry.dtype, shape: entry.shape, data: file.read(entry.name) });
    }
    return { tensors, metadata: { ...file.metadata } };
  } finally {
    file.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

export const CHECKPOINT_FORMAT = 'braggflow-checkpoint';
export const CHECKPOINT_VERSION = '1';
export const OPTIMIZER_M_PREFIX = 'optimizer.m.';
export const OPTIMIZER_V_PREFIX = 'optimizer.v.';

/** A float32 parameter: its name (as the graph names it), shape and values. */
export interface ParamTensor {
  name: string;
  shape: readonly number[];
  values: Float32Array;
}

/** AdamW moments, aligned with the checkpoint's params (same order, same lengths). */
export interface OptimizerMoments {
  m: readonly Float32Array[];
  v: readonly Float32Array[];
}

export interface CheckpointContents {
  params: readonly ParamTensor[];
  /** Absent for a weights-only checkpoint (e.g. one exported for inference). */
  optimizer?: OptimizerMoments;
  /** Optimisation steps completed. */
  step: number;
  /** Which model: a registry name like `peaknet-atto-1x32-h32`. */
  modelName: string;
  /** The model's config as plain JSON (whatever the model builder takes). */
  modelConfig: unknown;
  /** The training config (optimizer, schedule, loss) as plain JSON. */
  trainingConfig?: unknown;
  /** Extra string metadata to keep alongside. */
  extraMetadata?: Readonly<Record<string, string>>;
}

/**
 * Writes a checkpoint. Parameter names must not start with the optimizer prefixes. The arrays are
 * streamed to disk as they are, so the caller may keep mutating them after this returns.
 */
export function saveCheckpoint(path: string, contents: CheckpointContents): void {
  const tensors: NamedTensor[] = [];
  for (const param of contents.params) {
    if (param.name.startsWith(OPTIMIZER_M_PREFIX) || param.name.startsWith(OPTIMIZER_V_PREFIX)) {
      throw new Error(`parameter name ${param.name} collides with the optimizer prefixes`);
    }
    tensors.push({ name: param.name, shape: param.shape, data: param.values, dtype: 'F32' });
  }
  if (contents.optimizer !== undefined) {
    const { m, v } = contents.optimizer;
    if (m.length !== contents.params.length || v.length !== contents.params.length) {
      throw new Error('optimizer moments must match the params one to one');
    }
    contents.params.forEach((param, i) => {
      tensors.push({ name: OPTIMIZER_M_PREFIX + param.name, shape: param.shape, data: m[i], dtype: 'F32' });
      tensors.push({ name: OPTIMIZER_V_PREFIX + param.name, shape: param.shape, data: v[i], dtype: 'F32' });
    });
  }
  if (!Number.isSafeInteger(contents.step) || contents.step < 0) throw new Error(`bad step ${contents.step}`);
  const metadata: Record<string, string> = {
    ...contents.extraMetadata,
    format: CHECKPOINT_FORMAT,
    format_version: CHECKPOINT_VERSION,
    step: String(contents.step),
    model_name: contents.modelName,
    model_config: JSON.stringify(contents.modelConfig ?? null),
    param_names: JSON.stringify(contents.params.map((p) => p.name)),
    has_optimizer: contents.optimizer !== undefined ? 'true' : 'false',
  };
  if (contents.trainingConfig !== undefined)
    metadata.training_config = JSON.stringify(contents.trainingConfig);
  writeSafetensors(path, tensors, metadata);
}

/** What a checkpoint header says, before any tensor is read. */
export interface CheckpointInfo {
  path: string;
  step: number;
  modelName: string;
  modelConfig: unknown;
  trainingConfig?: unknown;
  /** Parameter names in the order they were saved. */
  paramNames: string[];
  paramShapes: Map<string, number[]>;
  hasOptimizer: boolean;
  metadata: Readonly<Record<string, string>>;
}

function parseJsonField(text: string | undefined, path: string, field: string): unknown {
  if (text === undefined) throw new UserError('missing', path, `__metadata__.${field}`);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UserError(`not JSON: ${(error as Error).message}`, path, `__metadata__.${field}`);
  }
}

function checkpointInfo(file: SafetensorsFile): CheckpointInfo {
  const { path, metadata } = file;
  const field = (name: string): string => {
    const value = metadata[name];
    if (value === undefined)
      throw new UserError('missing (not a braggflow checkpoint?)', path, `__metadata__.${name}`);
    return value;
  };
  if (field('format') !== CHECKPOINT_FORMAT) {
    throw new UserError(
      `is "${metadata.format}", expected "${CHECKPOINT_FORMAT}"`,
      path,
      '__metadata__.format',
    );
  }
  if (field('format_version') !== CHECKPOINT_VERSION) {
    throw new UserError(
      `version ${metadata.format_version} is not supported (this build reads ${CHECKPOINT_VERSION})`,
      path,
      '__metadata__.format_version',
    );
  }
  const step = Number(field('step'));
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new UserError(`"${metadata.step}" is not a step count`, path, '__metadata__.step');
  }
  const paramNames = parseJsonField(field('param_names'), path, 'param_names');
  if (!Array.isArray(paramNames) || !paramNames.every((n) => typeof n === 'string')) {
    throw new UserError('is not a list of names', path, '__metadata__.param_names');
  }
  const hasOptimizer = field('has_optimizer') === 'true';
  const paramShapes = new Map<string, number[]>();
  for (const name of paramNames as string[]) {
    const entry = file.entry(name);
    if (entry.dtype !== 'F32')
      throw new UserError(`dtype is ${entry.dtype}, expected F32`, path, `tensor ${name}`);
    paramShapes.set(name, entry.shape);
    if (hasOptimizer) {
      for (const prefix of [OPTIMIZER_M_PREFIX, OPTIMIZER_V_PREFIX]) {
        const moment = file.entry(prefix + name);
        if (moment.dtype !== 'F32' || moment.shape.join(',') !== entry.shape.join(',')) {
          throw new UserError(
            `is ${moment.dtype} [${moment.shape}], expected F32 [${entry.shape}]`,
            path,
            `tensor ${prefix}${name}`,
          );
        }
      }
    }
  }
  return {
    path,
    step,
    modelName: field('model_name'),
    modelConfig: parseJsonField(field('model_config'), path, 'model_config'),
    trainingConfig:
      metadata.training_config === undefined
        ? undefined
        : parseJsonField(metadata.training_config, path, 'training_config'),
    paramNames: paramNames as string[],
    paramShapes,
    hasOptimizer,
    metadata,
  };
}

/** Parses and checks a checkpoint's header without reading any tensor data. */
export function readCheckpointInfo(path: string): CheckpointInfo {
  const file = SafetensorsFile.open(path);
  try {
    return checkpointInfo(file);
  } finally {
    file.close();
  }
}

/**
 * Reads a checkpoint into the caller's arrays: for each of `params` (matched by name, shapes must
 * agree), the values are read in place, and so are `moments` when given and the file has them.
 * Params the file has but the caller does not ask for are ignored; a param the caller asks for and
 * the file lacks is an error. Returns the header info (step, configs).
 */
export function loadCheckpointInto(
  path: string,
  params: readonly ParamTensor[],
  moments?: { m: readonly Float32Array[]; v: readonly Float32Array[] },
): CheckpointInfo {
  const file = SafetensorsFile.open(path);
  try {
    const info = checkpointInfo(file);
    if (moments !== undefined && !info.hasOptimizer) {
      throw new UserError('has no optimizer state to resume from', path, '__metadata__.has_optimizer');
    }
    params.forEach((param, i) => {
      const shape = info.paramShapes.get(param.name);
      if (shape === undefined) throw new UserError('parameter is missing', path, `tensor ${param.name}`);
      if (shape.join(',') !== param.shape.join(',')) {
        throw new UserError(
          `shape is [${shape}], the model wants [${param.shape}]`,
          path,
          `tensor ${param.name}`,
        );
      }
      file.readFloat32(param.name, param.values);
      if (moments !== undefined) {
        file.readFloat32(OPTIMIZER_M_PREFIX + param.name, moments.m[i]);
        file.readFloat32(OPTIMIZER_V_PREFIX + param.name, moments.v[i]);
      }
    });
    return info;
  } finally {
    file.close();
  }
}

/** Reads a whole checkpoint into fresh arrays (params in saved order, moments when present). */
export function loadCheckpoint(path: string): CheckpointContents & { info: CheckpointInfo } {
  const file = SafetensorsFile.open(path);
  try {
    const info = checkpointInfo(file);
    const params = info.paramNames.map((name) => ({
      name,
      shape: info.paramShapes.get(name)!,
      values: file.readFloat32(name),
    }));
    const optimizer = info.hasOptimizer
      ? {
          m: info.paramNames.map((name) => file.readFloat32(OPTIMIZER_M_PREFIX + name)),
          v: info.paramNames.map((name) => file.readFloat32(OPTIMIZER_V_PREFIX + name)),
        }
      : undefined;
    return {
      info,
      params,
      optimizer,
      step: info.step,
      modelName: info.modelName,
      modelConfig: info.modelConfig,
      trainingConfig: info.trainingConfig,
    };
  } finally {
    file.close();
  }
}
