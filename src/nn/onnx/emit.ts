/**
 * OnnxModelSpec <-> ONNX ModelProto bytes, with protobufjs and our schema subset (proto-schema.ts).
 *
 * Protobuf messages are limited to 2 GiB, so big models (the 673M-parameter teacher is 2.7 GB of float32)
 * keep their initialisers in a side file `MODEL.onnx.data` (ONNX "external data": location, offset,
 * length per tensor), which onnxruntime reads relative to the model file.
 */
import { closeSync, openSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import { UserError } from '../../util/errors.js';
import { onnxAttributeTypeCode, onnxDataTypeCode, onnxProtoSchema } from './proto-schema.js';
import type {
  OnnxAttribute,
  OnnxDataType,
  OnnxModelSpec,
  OnnxNode,
  OnnxTensor,
  OnnxValueInfo,
  TensorValues,
} from './spec.js';

const root = protobuf.Root.fromJSON(onnxProtoSchema as unknown as protobuf.INamespace);
const ModelProto = root.lookupType('onnx.ModelProto');

/** ONNX IR version 8 goes with opsets up to 18; 9 and 10 with later ones. onnxruntime 1.30 reads 10. */
function irVersionFor(opset: number): number {
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

/** Above this many initialiser bytes, 'auto' moves weights to external data (protobuf's cap is 2 GiB). */
export const EXTERNAL_DATA_THRESHOLD_BYTES = 1.8 * 2 ** 30;
/** Tensors smaller than this stay inline even in external-data models (shapes, scalars). */
const EXTERNAL_MIN_TENSOR_BYTES = 1024;
/** Page alignment lets onnxruntime memory-map each tensor. */
const EXTERNAL_ALIGN_BYTES = 4096;

type DataTypeName = OnnxDataType;
const codeToDataType = new Map<number, DataTypeName>(
  Object.entries(onnxDataTypeCode).map(([name, code]) => [code, name as DataTypeName]),
);

export function bytesOf(values: TensorValues): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/** Where an initialiser's bytes live when they are not inline. */
interface ExternalLocation {
  location: string;
  offsetBytes: number;
  lengthBytes: number;
}

function tensorMessage(tensor: OnnxTensor, external?: ExternalLocation): Record<string, unknown> {
  const message: Record<string, unknown> = {
    name: tensor.name,
    dims: [...tensor.dims],
    dataType: onnxDataTypeCode[tensor.dataType],
  };
  if (external) {
    message.dataLocation = 1;
    message.externalData = [
      { key: 'location', value: external.location },
      { key: 'offset', value: String(external.offsetBytes) },
      { key: 'length', value: String(external.lengthBytes) },
    ];
  } else {
    // raw_data is little-endian; every platform Node runs braggflow on (x86-64, arm64) is too.
    message.rawData = bytesOf(tensor.values);
  }
  return message;
}

function attributeMessage(name: string, attribute: OnnxAttribute): Record<string, unknown> {
  const type = onnxAttributeTypeCode[attribute.type];
  switch (attribute.type) {
    case 'int':
      return { name, type, i: attribute.value };
    case 'ints':
      return { name, type, ints: [...attribute.value] };
    case 'float':
      return { name, type, f: attribute.value };
    case 'floats':
      return { name, type, floats: [...attribute.value] };
    case 'string':
      return { name, type, s: new TextEncoder().encode(attribute.value) };
    case 'tensor':
      return { name, type, t: tensorMessage(attribute.value) };
  }
}

function nodeMessage(node: OnnxNode, index: number): Record<string, unknown> {
  return {
    input: [...node.inputs],
    output: [...node.outputs],
    name: node.name ?? `${node.opType}_${index}`,
    opType: node.opType,
    domain: node.domain ?? '',
    attribute: Object.entries(node.attributes ?? {}).map(([name, attribute]) =>
      attributeMessage(name, attribute),
    ),
  };
}

function valueInfoMessage(info: OnnxValueInfo): Record<string, unknown> {
  return {
    name: info.name,
    type: {
      tensorType: {
        elemType: onnxDataTypeCode[info.dataType],
        shape: { dim: info.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function modelMessage(spec: OnnxModelSpec, externals: Map<string, ExternalLocation>): protobuf.Message {
  if (spec.opset < 17) throw new Error(`opset ${spec.opset} is too old: braggflow emits opset 17 or later`);
  const opsetImport = [{ domain: '', version: spec.opset }];
  for (const [domain, version] of Object.entries(spec.extraOpsets ?? {}))
    opsetImport.push({ domain, version });
  const message = {
    irVersion: irVersionFor(spec.opset),
    opsetImport,
    producerName: spec.producerName ?? 'braggflow',
    producerVersion: '0.1.0',
    docString: spec.docString ?? '',
    metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: spec.graphName,
      node: spec.nodes.map(nodeMessage),
      initializer: spec.initializers.map((t) => tensorMessage(t, externals.get(t.name))),
      input: spec.inputs.map(valueInfoMessage),
      output: spec.outputs.map(valueInfoMessage),
    },
  };
  const problem = ModelProto.verify(message);
  if (problem) throw new Error(`internal: ONNX message does not verify: ${problem}`);
  return ModelProto.fromObject(message);
}

function initializerBytes(spec: OnnxModelSpec): number {
  return spec.initializers.reduce((sum, t) => sum + t.values.byteLength, 0);
}

/** The whole model as one protobuf (initialisers inline). Throws for models over the 2 GiB cap. */
export function encodeModel(spec: OnnxModelSpec): Uint8Array {
  const bytes = initializerBytes(spec);
  if (bytes > EXTERNAL_DATA_THRESHOLD_BYTES) {
    throw new Error(
      `model has ${(bytes / 2 ** 30).toFixed(2)} GiB of weights, over protobuf's 2 GiB limit: use writeModel() with external data`,
    );
  }
  return ModelProto.encode(modelMessage(spec, new Map())).finish();
}

export interface WrittenModel {
  modelPath: string;
  modelBytes: number;
  /** Set when weights went to a side file. */
  externalDataPath?: string;
  externalDataBytes: number;
}

/**
 * Writes SPEC to PATH. With external data, tensors of 1 KiB or more go to `PATH.data`, page-aligned and
 * written tensor by tensor (a multi-GB model never becomes one buffer).
 */
export function writeModel(
  spec: OnnxModelSpec,
  path: string,
  options: { externalData?: 'auto' | 'always' | 'never' } = {},
): WrittenModel {
  const mode = options.externalData ?? 'auto';
  const useExternal =
    mode === 'always' || (mode === 'auto' && initializerBytes(spec) > EXTERNAL_DATA_THRESHOLD_BYTES);
  const externals = new Map<string, ExternalLocation>();
  let externalDataPath: string | undefined;
  let offsetBytes = 0;
  if (useExternal) {
    externalDataPath = `${path}.data`;
    const location = basename(externalDataPath);
    const fd = openSync(externalDataPath, 'w');
    try {
      for (const tensor of spec.initializers) {
        const data = bytesOf(tensor.values);
        if (data.byteLength < EXTERNAL_MIN_TENSOR_BYTES) continue;
        offsetBytes = Math.ceil(offsetBytes / EXTERNAL_ALIGN_BYTES) * EXTERNAL_ALIGN_BYTES;
        writeAll(fd, data, offsetBytes);
        externals.set(tensor.name, { location, offsetBytes, lengthBytes: data.byteLength });
        offsetBytes += data.byteLength;
      }
    } finally {
      closeSync(fd);
    }
  }
  const encoded = ModelProto.encode(modelMessage(spec, externals)).finish();
  writeFileSync(path, encoded);
  return {
    modelPath: path,
    modelBytes: encoded.byteLength,
    externalDataPath,
    externalDataBytes: offsetBytes,
  };
}

/** writeSync may write less than asked for big buffers; loop until done. */
function writeAll(fd: number, data: Uint8Array, positionBytes: number): void {
  let done = 0;
  while (done < data.byteLength) {
    done += writeSync(fd, data, done, data.byteLength - done, positionBytes + done);
  }
}

function typedArrayFor(dataType: DataTypeName, bytes: Uint8Array): TensorValues {
  // Copy into a fresh, aligned buffer: protobuf byte slices may start at any offset, and a Node
  // Buffer's slice() is a view into a shared pool, not a copy.
  const fresh = new Uint8Array(bytes.byteLength);
  fresh.set(bytes);
  const copy = fresh.buffer;
  switch (dataType) {
    case 'float32':
      return new Float32Array(copy);
    case 'float64':
      return new Float64Array(copy);
    case 'int64':
      return new BigInt64Array(copy);
    case 'int32':
      return new Int32Array(copy);
    case 'int8':
      return new Int8Array(copy);
    case 'float16':
      return new Uint16Array(copy);
    case 'uint8':
    case 'bool':
      return new Uint8Array(copy);
  }
}

interface DecodedTensor {
  name?: string;
  dims?: number[];
  dataType?: number;
  rawData?: Uint8Array;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: number[];
  doubleData?: number[];
  externalData?: { key: string; value: string }[];
  dataLocation?: number;
}

function tensorFromMessage(message: DecodedTensor, baseDir: string | undefined, source: string): OnnxTensor {
  const dataType = codeToDataType.get(message.dataType ?? 0);
  const name = message.name ?? '';
  if (!dataType)
    throw new UserError(`tensor '${name}' has unsupported data type ${message.dataType}`, source);
  const dims = (message.dims ?? []).map(Number);
  let values: TensorValues;
  if (message.dataLocation === 1) {
    const entries = new Map((message.externalData ?? []).map((e) => [e.key, e.value]));
    const location = entries.get('location');
    if (!location || baseDir === undefined) {
      throw new UserError(`tensor '${name}' is stored in external data that cannot be located`, source);
    }
    const offsetBytes = Number(entries.get('offset') ?? 0);
    const lengthBytes = Number(entries.get('length'));
    const bytes = new Uint8Array(lengthBytes);
    const fd = openSync(join(baseDir, location), 'r');
    try {
      let done = 0;
      while (done < lengthBytes) {
        const n = readSync(fd, bytes, done, lengthBytes - done, offsetBytes + done);
        if (n === 0) throw new UserError(`external data for '${name}' is truncated`, join(baseDir, location));
        done += n;
      }
    } finally {
      closeSync(fd);
    }
    values = typedArrayFor(dataType, bytes);
  } else if (message.rawData && message.rawData.byteLength > 0) {
    values = typedArrayFor(dataType, message.rawData);
  } else if (message.floatData?.length) {
    values = Float32Array.from(message.floatData);
  } else if (message.doubleData?.length) {
    values = Float64Array.from(message.doubleData);
  } else if (message.int64Data?.length) {
    values = BigInt64Array.from(message.int64Data.map((v) => BigInt(v)));
  } else if (message.int32Data?.length) {
    values =
      dataType === 'int32' ? Int32Array.from(message.int32Data) : typedArrayFor(dataType, new Uint8Array(0));
  } else {
    values = typedArrayFor(dataType, new Uint8Array(0));
  }
  return { name, dataType, dims, values };
}

interface DecodedAttribute {
  name: string;
  type?: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: DecodedTensor;
  floats?: number[];
  ints?: number[];
}

function attributeFromMessage(message: DecodedAttribute, source: string): OnnxAttribute {
  switch (message.type) {
    case onnxAttributeTypeCode.int:
      return { type: 'int', value: Number(message.i ?? 0) };
    case onnxAttributeTypeCode.ints:
      return { type: 'ints', value: (message.ints ?? []).map(Number) };
    case onnxAttributeTypeCode.float:
      return { type: 'float', value: message.f ?? 0 };
    case onnxAttributeTypeCode.floats:
      return { type: 'floats', value: message.floats ?? [] };
    case onnxAttributeTypeCode.string:
      return { type: 'string', value: new TextDecoder().decode(message.s ?? new Uint8Array()) };
    case onnxAttributeTypeCode.tensor:
      return { type: 'tensor', value: tensorFromMessage(message.t ?? {}, undefined, source) };
    default:
      throw new UserError(`attribute '${message.name}' has unsupported type ${message.type}`, source);
  }
}

interface DecodedValueInfo {
  name: string;
  type?: {
    tensorType?: { elemType?: number; shape?: { dim?: { dimValue?: number; dimParam?: string }[] } };
  };
}

/**
 * Parses ModelProto bytes back into a spec (tests, `inspect` of .onnx files, re-export). `modelPath`
 * locates external data and names the file in errors.
 */
export function decodeModel(bytes: Uint8Array, modelPath?: string): OnnxModelSpec {
  const source = modelPath ?? '<onnx bytes>';
  let decoded: Record<string, unknown>;
  try {
    decoded = ModelProto.toObject(ModelProto.decode(bytes), { longs: Number, defaults: false, arrays: true });
  } catch (error) {
    throw new UserError(`not a valid ONNX model (${(error as Error).message})`, source);
  }
  const graph = (decoded.graph ?? {}) as {
    name?: string;
    node?: {
      input?: string[];
      output?: string[];
      name?: string;
      opType: string;
      domain?: string;
      attribute?: DecodedAttribute[];
    }[];
    initializer?: DecodedTensor[];
    input?: DecodedValueInfo[];
    output?: DecodedValueInfo[];
  };
  const baseDir = modelPath ? dirname(modelPath) : undefined;
  const valueInfo = (info: DecodedValueInfo): OnnxValueInfo => ({
    name: info.name,
    dataType: codeToDataType.get(info.type?.tensorType?.elemType ?? 1) ?? 'float32',
    dims: (info.type?.tensorType?.shape?.dim ?? []).map((d) =>
      d.dimParam ? d.dimParam : Number(d.dimValue ?? 0),
    ),
  });
  const opsets = (decoded.opsetImport ?? []) as { domain?: string; version: number }[];
  const extraOpsets: Record<string, number> = {};
  for (const o of opsets) if (o.domain) extraOpsets[o.domain] = Number(o.version);
  const metadata: Record<string, string> = {};
  for (const entry of (decoded.metadataProps ?? []) as { key: string; value: string }[])
    metadata[entry.key] = entry.value;
  return {
    graphName: graph.name ?? '',
    opset: Number(opsets.find((o) => !o.domain)?.version ?? 0),
    extraOpsets,
    producerName: decoded.producerName as string | undefined,
    docString: decoded.docString as string | undefined,
    metadata,
    nodes: (graph.node ?? []).map((node) => {
      const attributes: Record<string, OnnxAttribute> = {};
      for (const attribute of node.attribute ?? [])
        attributes[attribute.name] = attributeFromMessage(attribute, source);
      return {
        opType: node.opType,
        inputs: node.input ?? [],
        outputs: node.output ?? [],
        name: node.name,
        domain: node.domain ?? '',
        attributes,
      };
    }),
    initializers: (graph.initializer ?? []).map((t) => tensorFromMessage(t, baseDir, source)),
    inputs: (graph.input ?? []).map(valueInfo),
    outputs: (graph.output ?? []).map(valueInfo),
  };
}
