/**
 * The graph IR: a directed acyclic graph of ops over tensors with static shapes and dtypes, built
 * eagerly by calling op functions (src/nn/ops) on `Tensor` handles. Nodes are appended in creation
 * order, so the node list is always a topological order; lowering and autodiff rely on that.
 *
 * Every op (an `Op`) knows three things, side by side in its own file: its shape/dtype inference (run
 * at build time, so a mismatch throws where the model code made it), its ONNX lowering, and its
 * vector-Jacobian product expressed with other ops of this same IR. The backward pass is therefore just
 * more graph, lowered by the same code as the forward pass.
 */
import { type Initializer, Rng } from './init.js';
import type {
  OnnxAttribute,
  OnnxDataType,
  OnnxModelSpec,
  OnnxNode,
  OnnxTensor,
  OnnxValueInfo,
  TensorValues,
} from './onnx/spec.js';

export type DType = OnnxDataType;
export type Shape = readonly number[];

/** A mistake in how a graph was built (shapes, dtypes, attributes): names the op and the shapes. */
export class GraphError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GraphError';
  }
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export const FLOAT_TYPES: readonly DType[] = ['float32', 'float64', 'float16'];
export function isFloat(dtype: DType): boolean {
  return FLOAT_TYPES.includes(dtype);
}

export type TensorSource =
  | { kind: 'input'; name: string }
  | { kind: 'param'; param: Param }
  | { kind: 'constant'; name: string; values: TensorValues }
  | { kind: 'node'; node: Node; index: number };

export class Tensor {
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly shape: Shape,
    readonly dtype: DType,
    readonly source: TensorSource,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    return sizeOf(this.shape);
  }

  /** For messages: `conv#12 float32[2,40,16,16]`. */
  toString(): string {
    const s = this.source;
    const what =
      s.kind === 'node'
        ? `${s.node.op.type}#${s.node.id}${s.node.outputs.length > 1 ? `:${s.index}` : ''}`
        : s.kind === 'param'
          ? `param ${s.param.name}`
          : s.kind === 'input'
            ? `input ${s.name}`
            : 'constant';
    return `${what} ${this.dtype}${shapeStr(this.shape)}`;
  }
}

export interface TensorType {
  shape: Shape;
  dtype: DType;
}

export interface Node<A = unknown> {
  readonly id: number;
  readonly op: Op<A>;
  readonly inputs: readonly Tensor[];
  readonly attrs: A;
  readonly outputs: readonly Tensor[];
}

/** What an op's lowering may use: names of its tensors, and a way to emit ONNX nodes and constants. */
export interface LowerContext {
  readonly opset: number;
  /**
   * Set when the graph is lowered with a symbolic batch dimension (`ToOnnxOptions.batchDim`): ops
   * that write shapes as constants (Reshape) must then copy axis 0 from their input instead.
   */
  readonly batchDim?: string;
  /** The ONNX value name of a tensor (input, param, constant or node output). */
  name(tensor: Tensor): string;
  /** Whether a node output is needed by the lowered graph (ops may then skip optional outputs). */
  isUsed(tensor: Tensor): boolean;
  /** A fresh name for an intermediate value private to one op's lowering. */
  fresh(hint: string): string;
  emit(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attrs?: Record<string, OnnxAttribute>,
  ): void;
  /** A deduplicated int64 initializer (shapes, axes, pads) and its name. */
  int64(values: readonly number[], dims?: readonly number[]): string;
  /** A deduplicated scalar initializer of a float/int dtype. */
  scalar(value: number, dtype: DType): string;
  /** A deduplicated 1-D float32 initializer (e.g. Resize scales). */
  float32(values: readonly number[]): string;
}

export interface Op<A = unknown> {
  readonly type: string;
  /** Output types; throws GraphError naming the op and the offending shapes. */
  infer(inputs: readonly Tensor[], attrs: A): TensorType[];
  lower(node: Node<A>, ctx: LowerContext): void;
  /**
   * Gradients of the inputs given gradients of the outputs (undefined = zero), built with ops.
   * Returns undefined for an input with no gradient (integer inputs, masks). An op without `vjp` is
   * not differentiable (comparisons, ArgMax); autodiff only complains if such an op lies between a
   * requested tensor and the loss.
   */
  vjp?(node: Node<A>, grads: readonly (Tensor | undefined)[]): (Tensor | undefined)[];
}

/** Tagged ONNX attributes, shorter to write. */
export const attr = {
  int: (value: number): OnnxAttribute => ({ type: 'int', value }),
  ints: (value: readonly number[]): OnnxAttribute => ({ type: 'ints', value }),
  float: (value: number): OnnxAttribute => ({ type: 'float', value }),
  floats: (value: readonly number[]): OnnxAttribute => ({ type: 'floats', value }),
  string: (value: string): OnnxAttribute => ({ type: 'string', value }),
};

export interface ParamInfo {
  name: string;
  shape: Shape;
  size: number;
  dtype: DType;
  init: string;
  trainable: boolean;
}

/**
 * A named, trainable tensor. Its values are created on first access (so counting the parameters of a
 * 673M-parameter model costs nothing) and live in one Float32Array, shared by reference with the ONNX
 * spec, checkpoints and optimisers: no copies, no per-element objects.
 */
export class Param {
  private values: Float32Array | undefined;

  constructor(
    readonly name: string,
    readonly shape: Shape,
    readonly init: Initializer,
    private readonly seed: number,
    readonly trainable: boolean,
  ) {}

  get size(): number {
    return sizeOf(this.shape);
  }

  get initialized(): boolean {
    return this.values !== undefined;
  }

  /** The values, initialised (deterministically from graph seed + name) on first access. */
  get data(): Float32Array {
    if (!this.values) {
      this.values = new Float32Array(this.size);
      this.init.fill(this.values, this.shape, new Rng(this.seed, this.name));
    }
    return this.values;
  }

  /** Replace the values (e.g. from a checkpoint); keeps the array given, no copy. */
  set(values: Float32Array): void {
    if (values.length !== this.size) {
      throw new GraphError(
        `param ${this.name}: expected ${this.size} values for ${shapeStr(this.shape)}, got ${values.length}`,
      );
    }
    this.values = values;
  }
}

export interface ToOnnxOptions {
  /**
   * 'initializers' (default): weights baked into the model, for inference export.
   * 'inputs': every param is a graph input fed each run (training: the optimiser owns the weights).
   */
  params?: 'initializers' | 'inputs';
  /** Outputs to emit instead of those declared with `g.output` (name -> tensor). */
  outputs?: Readonly<Record<string, Tensor>>;
  /** Default 17. */
  opset?: number;
  metadata?: Readonly<Record<string, string>>;
  docString?: string;
  /**
   * A symbolic name for axis 0 of the graph's declared inputs and of its outputs (e.g. 'batch'):
   * one file then serves any batch size. The graph must be batch-agnostic along axis 0 (per-sample
   * ops only, as an inference network is); it is built, and its shapes checked, at some batch.
   */
  batchDim?: string;
}

const NAME_RE = /^[A-Za-z0-9_./:\-[\]]+$/;

export class Graph {
  readonly nodes: Node[] = [];
  private readonly tensors: Tensor[] = [];
  private readonly paramsByName = new Map<string, Param>();
  private readonly paramTensors: Tensor[] = [];
  private readonly inputsByName = new Map<string, Tensor>();
  private readonly declaredOutputs = new Map<string, Tensor>();
  private constantCount = 0;

  constructor(
    readonly name: string,
    /** Seeds every parameter's initialiser (together with its name). */
    readonly seed = 0,
  ) {}

  private newTensor(shape: Shape, dtype: DType, source: TensorSource): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0)
        throw new GraphError(`invalid dimension ${d} in shape ${shapeStr(shape)}`);
    }
    const t = new Tensor(this, this.tensors.length, Object.freeze([...shape]), dtype, source);
    this.tensors.push(t);
    return t;
  }

  /** A graph input fed at run time (images, targets). */
  input(name: string, shape: Shape, dtype: DType = 'float32'): Tensor {
    this.checkName(name);
    if (this.inputsByName.has(name)) throw new GraphError(`input ${name} declared twice`);
    const t = this.newTensor(shape, dtype, { kind: 'input', name });
    this.inputsByName.set(name, t);
    return t;
  }

  /** A float32 parameter; `name` is its checkpoint key (dotted path, e.g. `stem.0.weight`). */
  param(name: string, shape: Shape, init: Initializer, options: { trainable?: boolean } = {}): Tensor {
    this.checkName(name);
    if (this.paramsByName.has(name)) throw new GraphError(`param ${name} declared twice`);
    const param = new Param(name, Object.freeze([...shape]), init, this.seed, options.trainable ?? true);
    const t = this.newTensor(shape, 'float32', { kind: 'param', param });
    this.paramsByName.set(name, param);
    this.paramTensors.push(t);
    return t;
  }

  /** A constant baked into the model (never a graph input). A number gives a scalar (shape []). */
  constant(values: TensorValues | number, shape?: Shape, dtype?: DType): Tensor {
    let v: TensorValues;
    let dt: DType;
    if (typeof values === 'number') {
      dt = dtype ?? 'float32';
      v = typedArrayOf(dt, [values]);
      shape = shape ?? [];
    } else {
      v = values;
      dt = dtype ?? dtypeOfArray(values);
      shape = shape ?? [values.length];
    }
    if (sizeOf(shape) !== v.length) {
      throw new GraphError(`constant: ${v.length} values do not fill shape ${shapeStr(shape)}`);
    }
    return this.newTensor(shape, dt, { kind: 'constant', name: `const_${this.constantCount++}`, values: v });
  }

  /** Declares a graph output (inference export and `toOnnx()` default outputs). */
  output(name: string, tensor: Tensor): void {
    this.checkName(name);
    this.own(tensor, 'output');
    if (this.declaredOutputs.has(name)) throw new GraphError(`output ${name} declared twice`);
    this.declaredOutputs.set(name, tensor);
  }

  get outputs(): ReadonlyMap<string, Tensor> {
    return this.declaredOutputs;
  }

  get inputs(): ReadonlyMap<string, Tensor> {
    return this.inputsByName;
  }

  /** Param tensors in declaration order. */
  paramTensorList(): readonly Tensor[] {
    return this.paramTensors;
  }

  getParam(name: string): Param {
    const p = this.paramsByName.get(name);
    if (!p) throw new GraphError(`no param named ${name}`);
    return p;
  }

  /** Shapes and sizes of all params, in declaration order; does not initialise them. */
  params(): ParamInfo[] {
    return this.paramTensors.map((t) => {
      const p = (t.source as { param: Param }).param;
      return {
        name: p.name,
        shape: p.shape,
        size: p.size,
        dtype: 'float32',
        init: p.init.describe,
        trainable: p.trainable,
      };
    });
  }

  paramCount(): number {
    let n = 0;
    for (const p of this.paramsByName.values()) n += p.size;
    return n;
  }

  /** Adds a node; used by op functions. Returns its output tensors. */
  apply<A>(op: Op<A>, inputs: readonly Tensor[], attrs: A): Tensor[] {
    for (const t of inputs) this.own(t, op.type);
    const types = op.infer(inputs, attrs);
    const outputs: Tensor[] = [];
    const node: Node<A> = { id: this.nodes.length, op, inputs: [...inputs], attrs, outputs };
    for (let i = 0; i < types.length; i++) {
      outputs.push(
        this.newTensor(types[i].shape, types[i].dtype, { kind: 'node', node: node as Node, index: i }),
      );
    }
    this.nodes.push(node as Node);
    return outputs;
  }

  private own(t: Tensor, where: string): void {
    if (!(t instanceof Tensor)) throw new GraphError(`${where}: expected a Tensor, got ${typeof t}`);
    if (t.graph !== this)
      throw new GraphError(`${where}: ${t} belongs to graph ${t.graph.name}, not ${this.name}`);
  }

  private checkName(name: string): void {
    if (!NAME_RE.test(name))
      throw new GraphError(`bad name '${name}': use letters, digits and _ . / : - [ ]`);
  }

  /**
   * Lowers the part of the graph that the outputs depend on (everything else is pruned) to a plain
   * ONNX description. Inputs list exactly the values that must be fed.
   */
  toOnnx(options: ToOnnxOptions = {}): OnnxModelSpec {
    const outputs = options.outputs ?? Object.fromEntries(this.declaredOutputs);
    if (Object.keys(outputs).length === 0) throw new GraphError(`graph ${this.name}: no outputs to lower`);
    return lowerGraph(this, outputs, options);
  }
}

export function typedArrayOf(dtype: DType, values: readonly number[]): TensorValues {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(values);
    case 'float64':
      return Float64Array.from(values);
    case 'int64':
      return BigInt64Array.from(values.map((v) => BigInt(v)));
    case 'int32':
      return Int32Array.from(values);
    case 'bool':
    case 'uint8':
      return Uint8Array.from(values);
    case 'int8':
      return Int8Array.from(values);
    default:
      throw new GraphError(`no scalar constants of dtype ${dtype}`);
  }
}

function dtypeOfArray(values: TensorValues): DType {
  if (values instanceof Float32Array) return 'float32';
  if (values instanceof Float64Array) return 'float64';
  if (values instanceof BigInt64Array) return 'int64';
  if (values instanceof Int32Array) return 'int32';
  if (values instanceof Int8Array) return 'int8';
  if (values instanceof Uint8Array) return 'uint8';
  throw new GraphError('constant: give the dtype of a Uint16Array explicitly');
}

/** Ancestors (by node) of the given tensors: the nodes that lowering must emit, in id order. */
export function nodesReaching(targets: readonly Tensor[]): Node[] {
  const seen = new Set<Node>();
  const stack: Tensor[] = [...targets];
  while (stack.length > 0) {
    const t = stack.pop() as Tensor;
    if (t.source.kind !== 'node' || seen.has(t.source.node)) continue;
    seen.add(t.source.node);
    for (const i of t.source.node.inputs) stack.push(i);
  }
  return [...seen].sort((a, b) => a.id - b.id);
}

function lowerGraph(
  g: Graph,
  outputs: Readonly<Record<string, Tensor>>,
  options: ToOnnxOptions,
): OnnxModelSpec {
  const opset = options.opset ?? 17;
  const paramMode = options.params ?? 'initializers';
  const nodes = nodesReaching(Object.values(outputs));
  const onnxNodes: OnnxNode[] = [];
  const inputs: OnnxValueInfo[] = [];
  const initializers: OnnxTensor[] = [];
  const leafSeen = new Set<Tensor>();
  const constCache = new Map<string, string>();
  let freshCount = 0;
  const batched = (shape: readonly number[]): readonly (number | string)[] =>
    options.batchDim === undefined || shape.length === 0 ? shape : [options.batchDim, ...shape.slice(1)];

  // Values that lowered nodes consume, or graph outputs: node outputs outside it may be left unnamed.
  const used = new Set<Tensor>(Object.values(outputs));
  for (const n of nodes) for (const t of n.inputs) used.add(t);

  // A graph output produced by a node takes the output's name directly (no copy through Identity).
  const outputNameOf = new Map<Tensor, string>();
  for (const [name, t] of Object.entries(outputs)) {
    if (t.source.kind === 'node' && !outputNameOf.has(t)) outputNameOf.set(t, name);
  }

  const leaf = (t: Tensor): void => {
    if (leafSeen.has(t)) return;
    leafSeen.add(t);
    const s = t.source;
    if (s.kind === 'input') inputs.push({ name: s.name, dataType: t.dtype, dims: batched(t.shape) });
    else if (s.kind === 'param') {
      if (paramMode === 'inputs') inputs.push({ name: s.param.name, dataType: 'float32', dims: t.shape });
      else
        initializers.push({ name: s.param.name, dataType: 'float32', dims: t.shape, values: s.param.data });
    } else if (s.kind === 'constant')
      initializers.push({ name: s.name, dataType: t.dtype, dims: t.shape, values: s.values });
  };

  const nameOf = (t: Tensor): string => {
    const s = t.source;
    switch (s.kind) {
      case 'input':
        leaf(t);
        return s.name;
      case 'param':
        leaf(t);
        return s.param.name;
      case 'constant':
        leaf(t);
        return s.name;
      case 'node':
        return outputNameOf.get(t) ?? `${s.node.op.type}_${s.node.id}${s.index > 0 ? `_${s.index}` : ''}`;
    }
  };

  const ctx: LowerContext = {
    opset,
    batchDim: options.batchDim,
    name: nameOf,
    isUsed: (t) => used.has(t),
    fresh: (hint) => `${hint}__${freshCount++}`,
    emit(opType, ins, outs, attributes) {
      const node: OnnxNode = { opType, inputs: ins, outputs: outs, name: `${opType}_${onnxNodes.length}` };
      onnxNodes.push(attributes && Object.keys(attributes).length > 0 ? { ...node, attributes } : node);
    },
    int64(values, dims) {
      const key = `i64:${(dims ?? [values.length]).join('x')}:${values.join(',')}`;
      let name = constCache.get(key);
      if (!name) {
        name = `c_i64_${constCache.size}`;
        constCache.set(key, name);
        initializers.push({
          name,
          dataType: 'int64',
          dims: dims ?? [values.length],
          values: BigInt64Array.from(values.map((v) => BigInt(v))),
        });
      }
      return name;
    },
    float32(values) {
      const key = `f32:${values.join(',')}`;
      let name = constCache.get(key);
      if (!name) {
        name = `c_f32_${constCache.size}`;
        constCache.set(key, name);
        initializers.push({
          name,
          dataType: 'float32',
          dims: [values.length],
          values: Float32Array.from(values),
        });
      }
      return name;
    },
    scalar(value, dtype) {
      const key = `${dtype}:${value}`;
      let name = constCache.get(key);
      if (!name) {
        name = `c_${dtype}_${constCache.size}`;
        constCache.set(key, name);
        initializers.push({ name, dataType: dtype, dims: [], values: typedArrayOf(dtype, [value]) });
      }
      return name;
    },
  };

  for (const n of nodes) n.op.lower(n, ctx);

  const outputInfos: OnnxValueInfo[] = [];
  for (const [name, t] of Object.entries(outputs)) {
    const produced = nameOf(t);
    // Leaves (inputs, params, constants) and tensors already exported under another name need a copy.
    if (produced !== name) ctx.emit('Identity', [produced], [name]);
    outputInfos.push({ name, dataType: t.dtype, dims: batched(t.shape) });
  }
  // Inputs in a stable, readable order: declared inputs first, then params in declaration order.
  const rank = new Map<string, number>();
  for (const [i, n] of [...g.inputs.keys()].entries()) rank.set(n, i);
  for (const [i, t] of g.paramTensorList().entries())
    rank.set((t.source as { param: Param }).param.name, 1e9 + i);
  inputs.sort((a, b) => (rank.get(a.name) ?? 0) - (rank.get(b.name) ?? 0));

  return {
    graphName: g.name,
    nodes: onnxNodes,
    inputs,
    outputs: outputInfos,
    initializers,
    opset,
    producerName: 'braggflow',
    docString: options.docString,
    metadata: options.metadata,
  };
}
