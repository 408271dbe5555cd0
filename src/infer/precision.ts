/**
 * Lower-precision model files, as rewrites of a model file's ONNX description (`export --fp16`,
 * `export --int8`). Both keep the float32 interface (image in, logits out), so every server of a
 * model file serves them unchanged.
 *
 * - fp16 weights: each float32 weight initialiser is stored as float16 and cast back to float32 by
 *   a Cast node; onnxruntime folds the casts when the session loads. The file halves; arithmetic
 *   stays fp32 (onnxruntime's CPU provider has no fp16 convolutions on x86).
 * - int8 (QDQ, static): every convolution's data input and output pass through
 *   QuantizeLinear -> DequantizeLinear with a uint8 scale and zero point from the range the tensor
 *   took on calibration tiles; its weights are int8, symmetric per output channel; its bias int32 at
 *   scale (input scale x weight scale). onnxruntime fuses each DQ -> Conv -> Q into one integer
 *   convolution (QLinearConv, U8S8); norms, GELU and the resizes stay float32 between them.
 */
import type { OnnxModelSpec, OnnxNode, OnnxTensor, OnnxValueInfo } from '../nn/onnx/spec.js';

// ---- fp16 weights ---------------------------------------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of a float32, rounded to nearest even (overflow to infinity, subnormals kept). */
export function float16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0); // inf, NaN
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa with its implicit bit, rounding to nearest even.
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mantissa & ((1 << shift) - 1);
    let bits = mantissa >>> shift;
    if (rest > half || (rest === half && (bits & 1) === 1)) bits++;
    return sign | bits;
  }
  let bits = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  if (rest > 0x1000 || (rest === 0x1000 && (bits & 1) === 1)) bits++;
  return sign | bits;
}

/** The float32 value of binary16 bits. */
export function float16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Weight initialisers worth storing in lower precision: float32 and more than a handful of values. */
function isWeight(tensor: OnnxTensor): boolean {
  return tensor.dataType === 'float32' && tensor.values.length >= 16;
}

/** The description with float32 weights stored as float16 and cast back when loaded. */
export function fp16Weights(spec: OnnxModelSpec): OnnxModelSpec {
  const initializers: OnnxTensor[] = [];
  const casts: OnnxNode[] = [];
  for (const tensor of spec.initializers) {
    if (!isWeight(tensor)) {
      initializers.push(tensor);
      continue;
    }
    const values = tensor.values as Float32Array;
    const bits = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) bits[i] = float16Bits(values[i]);
    const stored = `${tensor.name}__fp16`;
    initializers.push({ name: stored, dataType: 'float16', dims: tensor.dims, values: bits });
    casts.push({
      opType: 'Cast',
      inputs: [stored],
      outputs: [tensor.name],
      name: `Cast_${tensor.name}`,
      attributes: { to: { type: 'int', value: 1 } }, // TensorProto.FLOAT
    });
  }
  return { ...spec, initializers, nodes: [...casts, ...spec.nodes] };
}

// ---- int8 QDQ -------------------------------------------------------------------------------------

/** The convolutions to quantise: every Conv whose weight is an initialiser. */
export function quantisableConvs(spec: OnnxModelSpec): OnnxNode[] {
  const initializers = new Set(spec.initializers.map((t) => t.name));
  return spec.nodes.filter((n) => n.opType === 'Conv' && initializers.has(n.inputs[1]));
}

/** The activations whose ranges calibration must measure: each quantised conv's input and output. */
export function calibrationTensors(spec: OnnxModelSpec): string[] {
  const names = new Set<string>();
  for (const conv of quantisableConvs(spec)) {
    names.add(conv.inputs[0]);
    names.add(conv.outputs[0]);
  }
  return [...names];
}

/** The description with `names` as extra float32 outputs of any shape (for calibration runs). */
export function withExtraOutputs(spec: OnnxModelSpec, names: readonly string[]): OnnxModelSpec {
  const existing = new Set(spec.outputs.map((o) => o.name));
  const extra: OnnxValueInfo[] = names
    .filter((n) => !existing.has(n))
    .map((name, i) => ({ name, dataType: 'float32', dims: [`b${i}`, `c${i}`, `h${i}`, `w${i}`] }));
  return { ...spec, outputs: [...spec.outputs, ...extra] };
}

/** The range a tensor took on calibration data. */
export interface ActivationRange {
  min: number;
  max: number;
}

/** Running min/max per tensor over calibration batches. */
export class RangeCollector {
  readonly ranges = new Map<string, ActivationRange>();

  add(name: string, values: Float32Array): void {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const range = this.ranges.get(name);
    if (range === undefined) this.ranges.set(name, { min, max });
    else {
      range.min = Math.min(range.min, min);
      range.max = Math.max(range.max, max);
    }
  }
}

/** uint8 affine quantisation of a range that includes 0 (so zero padding is exact). */
export function uint8Params(range: ActivationRange): { scale: number; zeroPoint: number } {
  const min = Math.min(0, range.min);
  const max = Math.max(0, range.max);
  if (!(max > min)) return { scale: 1, zeroPoint: 0 };
  // float32 scale, as the file stores it, so the zero point is computed from the stored value.
  const scale = Math.fround((max - min) / 255);
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-min / scale)));
  return { scale, zeroPoint };
}

/**
 * The QDQ description: `ranges` must hold every tensor of `calibrationTensors(spec)`. Convs are
 * quantised in place; everything else is unchanged.
 */
export function quantizeQdq(
  spec: OnnxModelSpec,
  ranges: ReadonlyMap<string, ActivationRange>,
): OnnxModelSpec {
  const byName = new Map(spec.initializers.map((t) => [t.name, t]));
  const convs = new Set(quantisableConvs(spec));
  const initializers: OnnxTensor[] = [];
  const replaced = new Set<string>();
  const nodes: OnnxNode[] = [];
  // One Q -> DQ pair per activation, shared by all of its consumers (and emitted once).
  const dequantised = new Map<string, { name: string; scale: number }>();
  const scalar = (name: string, dataType: 'float32' | 'uint8', value: number): string => {
    if (!byName.has(name)) {
      const tensor: OnnxTensor = {
        name,
        dataType,
        dims: [],
        values: dataType === 'float32' ? Float32Array.of(value) : Uint8Array.of(value),
      };
      byName.set(name, tensor);
      initializers.push(tensor);
    }
    return name;
  };
  const qdq = (tensor: string, out: OnnxNode[]): { name: string; scale: number } => {
    const known = dequantised.get(tensor);
    if (known !== undefined) return known;
    const range = ranges.get(tensor);
    if (range === undefined) throw new Error(`int8: no calibration range for ${tensor}`);
    const { scale, zeroPoint } = uint8Params(range);
    const s = scalar(`${tensor}__scale`, 'float32', scale);
    const z = scalar(`${tensor}__zero_point`, 'uint8', zeroPoint);
    const q = `${tensor}__q`;
    const dq = `${tensor}__dq`;
    out.push({ opType: 'QuantizeLinear', inputs: [tensor, s, z], outputs: [q], name: `Q_${tensor}` });
    out.push({ opType: 'DequantizeLinear', inputs: [q, s, z], outputs: [dq], name: `DQ_${tensor}` });
    const entry = { name: dq, scale };
    dequantised.set(tensor, entry);
    return entry;
  };

  const graphOutputs = new Set(spec.outputs.map((o) => o.name));
  // Conv outputs that get a Q -> DQ pair: every consumer then reads the dequantised copy, so the
  // conv's output feeds only its Q (the pattern onnxruntime fuses).
  const requantised = new Set<string>();
  for (const node of spec.nodes) {
    if (!convs.has(node)) {
      nodes.push(node);
      continue;
    }
    const [x, w, b] = node.inputs;
    const input = qdq(x, nodes);
    const weight = byName.get(w) as OnnxTensor;
    const { tensor: wq, scales } = quantizeWeightPerChannel(weight);
    const wScale: OnnxTensor = {
      name: `${w}__scale`,
      dataType: 'float32',
      dims: [scales.length],
      values: scales,
    };
    const wZero: OnnxTensor = {
      name: `${w}__zero_point`,
      dataType: 'int8',
      dims: [scales.length],
      values: new Int8Array(scales.length),
    };
    initializers.push(wq, wScale, wZero);
    replaced.add(w);
    const wDq = `${w}__dq`;
    nodes.push(dequantize([wq.name, wScale.name, wZero.name], wDq));
    const convInputs = [input.name, wDq];
    if (b !== undefined && b !== '') {
      const bias = byName.get(b);
      if (bias === undefined) throw new Error(`int8: bias ${b} of ${node.name} is not an initializer`);
      const bScale = Float32Array.from(scales, (s) => Math.fround(s * input.scale));
      const bValues = bias.values as Float32Array;
      initializers.push(
        {
          name: `${b}__int32`,
          dataType: 'int32',
          dims: bias.dims,
          values: Int32Array.from(bValues, (v, c) => Math.round(v / bScale[c])),
        },
        { name: `${b}__scale`, dataType: 'float32', dims: [bScale.length], values: bScale },
        {
          name: `${b}__zero_point`,
          dataType: 'int32',
          dims: [bScale.length],
          values: new Int32Array(bScale.length),
        },
      );
      replaced.add(b);
      nodes.push(dequantize([`${b}__int32`, `${b}__scale`, `${b}__zero_point`], `${b}__dq`));
      convInputs.push(`${b}__dq`);
    }
    nodes.push({ ...node, inputs: convInputs });
    // A graph output (the logits) stays the conv's float result: no pair after it.
    const out = node.outputs[0];
    if (!graphOutputs.has(out)) {
      qdq(out, nodes);
      requantised.add(out);
    }
  }
  const rewritten = nodes.map((node) => {
    if (node.opType === 'QuantizeLinear') return node;
    const inputs = node.inputs.map((i) =>
      requantised.has(i) ? (dequantised.get(i) as { name: string }).name : i,
    );
    return inputs.some((v, k) => v !== node.inputs[k]) ? { ...node, inputs } : node;
  });
  return {
    ...spec,
    nodes: rewritten,
    initializers: [...spec.initializers.filter((t) => !replaced.has(t.name)), ...initializers],
  };
}

function dequantize(inputs: string[], output: string): OnnxNode {
  return {
    opType: 'DequantizeLinear',
    inputs,
    outputs: [output],
    name: `DQ_${output}`,
    attributes: { axis: { type: 'int', value: 0 } },
  };
}

/** int8 weights, symmetric per output channel (axis 0): scale = max |w| / 127. */
export function quantizeWeightPerChannel(weight: OnnxTensor): { tensor: OnnxTensor; scales: Float32Array } {
  const values = weight.values as Float32Array;
  const channels = weight.dims[0];
  const per = values.length / channels;
  const scales = new Float32Array(channels);
  const q = new Int8Array(values.length);
  for (let c = 0; c < channels; c++) {
    let max = 0;
    for (let i = c * per; i < (c + 1) * per; i++) max = Math.max(max, Math.abs(values[i]));
    const scale = max > 0 ? Math.fround(max / 127) : 1;
    scales[c] = scale;
    for (let i = c * per; i < (c + 1) * per; i++)
      q[i] = Math.max(-127, Math.min(127, Math.round(values[i] / scale)));
  }
  return { tensor: { name: `${weight.name}__int8`, dataType: 'int8', dims: weight.dims, values: q }, scales };
}
