/**
 * AveragePool and MaxPool over [N, C, spatial...] (floor mode).
 * AveragePool's VJP spreads each output gradient over its window: a ConvTranspose of [N*C, 1, ...] with a
 * ones kernel (divisor folded into the gradient, per output when padding is excluded from the count).
 * MaxPool's VJP scatters the gradient to the argmax recorded by MaxPool's Indices output
 * (ScatterElements with reduction=add, so overlapping windows that pick the same input accumulate).
 */
import { attr, GraphError, type Op, shapeStr, type Tensor } from '../graph.js';
import { convTranspose } from './conv.js';
import { apply1, expandPads, expandSpatial, requireFloat } from './core.js';
import { div, mul } from './elementwise.js';
import { reshape } from './shape.js';

export interface PoolOptions {
  kernel: readonly number[];
  strides?: readonly number[];
  pads?: readonly number[];
  /** AveragePool only: count padded cells in the divisor (ONNX default false). */
  countIncludePad?: boolean;
}

interface PoolAttrs {
  kernel: readonly number[];
  strides: readonly number[];
  pads: readonly number[];
  countIncludePad: boolean;
}

function normalizePool(op: string, x: Tensor, o: PoolOptions): PoolAttrs {
  const spatial = x.rank - 2;
  if (spatial < 1) throw new GraphError(`${op}: input must be [N, C, spatial...], got ${x}`);
  requireFloat(op, x);
  return {
    kernel: expandSpatial(op, 'kernel', o.kernel, spatial, 1),
    strides: expandSpatial(op, 'strides', o.strides ?? o.kernel, spatial, 1),
    pads: expandPads(op, o.pads, spatial),
    countIncludePad: o.countIncludePad ?? false,
  };
}

function poolShape(op: string, x: Tensor, a: PoolAttrs): number[] {
  const spatial = x.rank - 2;
  const out = x.shape
    .slice(2)
    .map((len, i) => Math.floor((len + a.pads[i] + a.pads[spatial + i] - a.kernel[i]) / a.strides[i]) + 1);
  if (out.some((d) => d < 1))
    throw new GraphError(`${op}: kernel [${a.kernel.join(',')}] does not fit ${shapeStr(x.shape)}`);
  return [x.shape[0], x.shape[1], ...out];
}

function poolAttrs(a: PoolAttrs) {
  return { kernel_shape: attr.ints(a.kernel), strides: attr.ints(a.strides), pads: attr.ints(a.pads) };
}

/** outputPadding that makes a transposed pooling window cover the whole input again. */
function restorePadding(xShape: readonly number[], yShape: readonly number[], a: PoolAttrs): number[] {
  const spatial = xShape.length - 2;
  return xShape.slice(2).map((len, i) => {
    const full = (yShape[2 + i] - 1) * a.strides[i] - a.pads[i] - a.pads[spatial + i] + a.kernel[i];
    return len - full;
  });
}

/** Number of real (unpadded) input cells under each output window, as [1, 1, out...]. */
function windowCounts(xShape: readonly number[], yShape: readonly number[], a: PoolAttrs): Float64Array {
  const spatial = xShape.length - 2;
  const perAxis = yShape.slice(2).map((outLen, i) => {
    const counts: number[] = [];
    for (let o = 0; o < outLen; o++) {
      const start = o * a.strides[i] - a.pads[i];
      const lo = Math.max(0, start);
      const hi = Math.min(xShape[2 + i], start + a.kernel[i]);
      counts.push(hi - lo);
    }
    return counts;
  });
  const outSize = yShape.slice(2).reduce((p, d) => p * d, 1);
  const values = new Float64Array(outSize);
  for (let flat = 0; flat < outSize; flat++) {
    let rest = flat;
    let count = 1;
    for (let i = spatial - 1; i >= 0; i--) {
      const len = yShape[2 + i];
      count *= perAxis[i][rest % len];
      rest = Math.floor(rest / len);
    }
    values[flat] = count;
  }
  return values;
}

const averagePoolOp: Op<PoolAttrs> = {
  type: 'AveragePool',
  infer([x], a) {
    return [{ shape: poolShape('averagePool', x, a), dtype: x.dtype }];
  },
  lower(n, ctx) {
    ctx.emit('AveragePool', [ctx.name(n.inputs[0])], [ctx.name(n.outputs[0])], {
      ...poolAttrs(n.attrs),
      count_include_pad: attr.int(n.attrs.countIncludePad ? 1 : 0),
    });
  },
  vjp(n, [g]) {
    if (!g) return [undefined];
    const x = n.inputs[0];
    const a = n.attrs;
    const [nb, c] = x.shape;
    const outSpatial = g.shape.slice(2);
    const windowSize = a.kernel.reduce((p, k) => p * k, 1);
    const padded = a.pads.some((p) => p !== 0);
    let scaled: Tensor;
    if (!padded || a.countIncludePad) scaled = mul(g, 1 / windowSize);
    else {
      const values = windowCounts(x.shape, g.shape, a);
      const typed = g.dtype === 'float64' ? values : Float32Array.from(values);
      scaled = div(g, g.graph.constant(typed, [1, 1, ...outSpatial], g.dtype));
    }
    const ones = g.graph.constant(
      g.dtype === 'float64' ? new Float64Array(windowSize).fill(1) : new Float32Array(windowSize).fill(1),
      [1, 1, ...a.kernel],
      g.dtype,
    );
    const spread = convTranspose(reshape(scaled, [nb * c, 1, ...outSpatial]), ones, undefined, {
      strides: a.strides,
      pads: a.pads,
      outputPadding: restorePadding(x.shape, g.shape, a),
    });
    return [reshape(spread, x.shape)];
  },
};

export function averagePool(x: Tensor, options: PoolOptions): Tensor {
  return apply1(averagePoolOp, [x], normalizePool('averagePool', x, options));
}

const maxPoolOp: Op<PoolAttrs> = {
  type: 'MaxPool',
  infer([x], a) {
    const shape = poolShape('maxPool', x, a);
    return [
      { shape, dtype: x.dtype },
      { shape, dtype: 'int64' },
    ];
  },
  lower(n, ctx) {
    const [y, indices] = n.outputs;
    const outs = ctx.isUsed(indices) ? [ctx.name(y), ctx.name(indices)] : [ctx.name(y)];
    ctx.emit('MaxPool', [ctx.name(n.inputs[0])], outs, poolAttrs(n.attrs));
  },
  vjp(n, [g]) {
    if (!g) return [undefined];
    return [apply1(maxPoolGradOp, [g, n.outputs[1]], { xShape: n.inputs[0].shape })];
  },
};

/** Scatter-add of the output gradient to the recorded argmax positions (flat indices over the input). */
const maxPoolGradOp: Op<{ xShape: readonly number[] }> = {
  type: 'MaxPoolGrad',
  infer([g], { xShape }) {
    return [{ shape: xShape, dtype: g.dtype }];
  },
  lower(n, ctx) {
    const [g, indices] = n.inputs;
    const size = n.attrs.xShape.reduce((p, d) => p * d, 1);
    const zeros = ctx.fresh('maxpool_zeros');
    const flatG = ctx.fresh('maxpool_g');
    const flatI = ctx.fresh('maxpool_idx');
    const flatOut = ctx.fresh('maxpool_dx');
    const zeroValue = g.dtype === 'float64' ? new Float64Array(1) : new Float32Array(1);
    ctx.emit('ConstantOfShape', [ctx.int64([size])], [zeros], {
      value: { type: 'tensor', value: { name: 'value', dataType: g.dtype, dims: [1], values: zeroValue } },
    });
    ctx.emit('Reshape', [ctx.name(g), ctx.int64([-1])], [flatG]);
    ctx.emit('Reshape', [ctx.name(indices), ctx.int64([-1])], [flatI]);
    ctx.emit('ScatterElements', [zeros, flatI, flatG], [flatOut], {
      axis: attr.int(0),
      reduction: attr.string('add'),
    });
    ctx.emit('Reshape', [flatOut, ctx.int64(n.attrs.xShape)], [ctx.name(n.outputs[0])]);
  },
};

export function maxPool(x: Tensor, options: PoolOptions): Tensor {
  return x.graph.apply(maxPoolOp, [x], normalizePool('maxPool', x, options))[0];
}
