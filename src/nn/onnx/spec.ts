/**
 * A plain, typed description of an ONNX model: what the graph/autodiff layer produces and what the
 * protobuf emitter consumes. Kept free of protobuf types so the IR never depends on the wire format.
 */

export type OnnxDataType = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8' | 'int8' | 'bool' | 'float64';

export type TensorValues =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | Int32Array
  | Uint8Array
  | Int8Array
  | Uint16Array;

/** An initializer or an attribute tensor: row-major values with their dims. */
export interface OnnxTensor {
  name: string;
  dataType: OnnxDataType;
  dims: readonly number[];
  /** Row-major values; `bool` uses Uint8Array (0/1), `float16` Uint16Array bit patterns. */
  values: TensorValues;
}

/** ONNX distinguishes int from float attributes, which JS numbers cannot: so attributes are tagged. */
export type OnnxAttribute =
  | { type: 'int'; value: number }
  | { type: 'ints'; value: readonly number[] }
  | { type: 'float'; value: number }
  | { type: 'floats'; value: readonly number[] }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: OnnxTensor };

export interface OnnxNode {
  opType: string;
  /** '' for an omitted optional input. */
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  /** '' (default ai.onnx) or e.g. 'com.microsoft'. */
  domain?: string;
  attributes?: Readonly<Record<string, OnnxAttribute>>;
}

/** A graph input or output. A string dim is symbolic (e.g. 'batch'). */
export interface OnnxValueInfo {
  name: string;
  dataType: OnnxDataType;
  dims: readonly (number | string)[];
}

export interface OnnxModelSpec {
  graphName: string;
  nodes: readonly OnnxNode[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  initializers: readonly OnnxTensor[];
  /** Default-domain opset; 17 or later. */
  opset: number;
  /** Extra domains, e.g. { 'com.microsoft': 1 }. */
  extraOpsets?: Readonly<Record<string, number>>;
  producerName?: string;
  docString?: string;
  /** Free-form key/values stored as metadata_props (model name, config JSON, ...). */
  metadata?: Readonly<Record<string, string>>;
}
