/**
 * Normalisations. `layerNorm` is ONNX LayerNormalization (trailing axes, one fused kernel). `normalize`
 * standardises over any axes with primitive ONNX ops, which is how `channelNorm` (axis 1 of NCHW, the
 * ConvNeXt "channels_first" LayerNorm, without transposes) and `groupNorm` are built.
 *
 * Both carry a documented VJP instead of differentiating their primitive lowering (far fewer backward
 * nodes): with xhat = (x - mean) * rstd and gh the gradient reaching xhat,
 *   dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat))      (means over the normalised axes)
 */
import { attr, GraphError, type Op, shapeStr, type Tensor } from '../graph.js';
import { normAxes, requireFloat, sameDtype } from './core.js';
import { add, mul, sub } from './elementwise.js';
import { reduceMean } from './reduce.js';
import { reshape, sumTo } from './shape.js';

function standardGrad(gh: Tensor, xhat: Tensor, rstd: Tensor, axes: readonly number[]): Tensor {
  const m1 = reduceMean(gh, axes, true);
  const m2 = reduceMean(mul(gh, xhat), axes, true);
  return mul(rstd, sub(sub(gh, m1), mul(xhat, m2)));
}

// ---- LayerNormalization (trailing axes) ----------------------------------------------------------

interface LayerNormAttrs {
  axis: number;
  eps: number;
}

const layerNormOp: Op<LayerNormAttrs> = {
  type: 'LayerNormalization',
  infer(ins, { axis }) {
    const [x, scale, bias] = ins;
    const dtype = sameDtype('layerNorm', ins);
    requireFloat('layerNorm', x);
    const normShape = x.shape.slice(axis);
    for (const p of [scale, bias]) {
      if (p && shapeStr(p.shape) !== shapeStr(normShape)) {
        throw new GraphError(
          `layerNorm: scale/bias ${p} must have the normalised shape ${shapeStr(normShape)} of ${x}`,
        );
      }
    }
    const statShape = x.shape.map((d, i) => (i < axis ? d : 1));
    return [
      { shape: x.shape, dtype },
      { shape: statShape, dtype },
      { shape: statShape, dtype },
    ];
  },
  lower(n, ctx) {
    const [y, mean, invStd] = n.outputs;
    // Mean/InvStdDev are optional outputs: only ask for them when the backward pass uses them.
    const outs = [ctx.name(y)];
    if (ctx.isUsed(mean) || ctx.isUsed(invStd)) outs.push(ctx.name(mean), ctx.name(invStd));
    ctx.emit('LayerNormalization', n.inputs.map(ctx.name), outs, {
      axis: attr.int(n.attrs.axis),
      epsilon: attr.float(n.attrs.eps),
    });
  },
  vjp(n, [g, gMean, gInv]) {
    if (gMean || gInv) throw new GraphError('layerNorm: no gradient through its Mean/InvStdDev outputs');
    if (!g) return n.inputs.map(() => undefined);
    const [x, scale, bias] = n.inputs;
    const [, mean, rstd] = n.outputs;
    const axes = x.shape.map((_, i) => i).filter((i) => i >= n.attrs.axis);
    const xhat = mul(sub(x, mean), rstd);
    const gx = standardGrad(mul(g, scale), xhat, rstd, axes);
    const grads: (Tensor | undefined)[] = [gx, sumTo(mul(g, xhat), scale.shape)];
    if (bias) grads.push(sumTo(g, bias.shape));
    return grads;
  },
};

/** LayerNorm over axes [axis, rank) (default: the last). Missing weight -> ones (ONNX requires a scale). */
export function layerNorm(
  x: Tensor,
  weight?: Tensor,
  bias?: Tensor,
  options: { axis?: number; eps?: number } = {},
): Tensor {
  const axis = normAxes('layerNorm', [options.axis ?? -1], x.rank)[0];
  const scale = weight ?? expandOnes(x, x.shape.slice(axis));
  return x.graph.apply(layerNormOp, bias ? [x, scale, bias] : [x, scale], {
    axis,
    eps: options.eps ?? 1e-5,
  })[0];
}

function expandOnes(x: Tensor, shape: readonly number[]): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const values = x.dtype === 'float64' ? new Float64Array(size).fill(1) : new Float32Array(size).fill(1);
  return x.graph.constant(values, shape, x.dtype);
}

// ---- normalize (any axes, primitive lowering) ----------------------------------------------------

interface NormalizeAttrs {
  axes: readonly number[];
  eps: number;
}

const normalizeOp: Op<NormalizeAttrs> = {
  type: 'Normalize',
  infer([x], { axes }) {
    requireFloat('normalize', x);
    return [
      { shape: x.shape, dtype: x.dtype },
      { shape: x.shape.map((d, i) => (axes.includes(i) ? 1 : d)), dtype: x.dtype },
    ];
  },
  lower(n, ctx) {
    const x = n.inputs[0];
    const [y, rstdT] = n.outputs;
    const dt = x.dtype;
    const axesAttr = ctx.opset >= 18 ? undefined : { axes: attr.ints(n.attrs.axes), keepdims: attr.int(1) };
    const reduceMeanTo = (input: string, output: string) => {
      if (axesAttr) ctx.emit('ReduceMean', [input], [output], axesAttr);
      else ctx.emit('ReduceMean', [input, ctx.int64(n.attrs.axes)], [output], { keepdims: attr.int(1) });
    };
    const mean = ctx.fresh('norm_mean');
    const centred = ctx.fresh('norm_centred');
    const sq = ctx.fresh('norm_sq');
    const variance = ctx.fresh('norm_var');
    const varEps = ctx.fresh('norm_var_eps');
    const std = ctx.fresh('norm_std');
    const rstd = ctx.isUsed(rstdT) ? ctx.name(rstdT) : ctx.fresh('norm_rstd');
    reduceMeanTo(ctx.name(x), mean);
    ctx.emit('Sub', [ctx.name(x), mean], [centred]);
    ctx.emit('Mul', [centred, centred], [sq]);
    reduceMeanTo(sq, variance);
    ctx.emit('Add', [variance, ctx.scalar(n.attrs.eps, dt)], [varEps]);
    ctx.emit('Sqrt', [varEps], [std]);
    ctx.emit('Reciprocal', [std], [rstd]);
    ctx.emit('Mul', [centred, rstd], [ctx.name(y)]);
  },
  vjp(n, [g, gRstd]) {
    if (gRstd) throw new GraphError('normalize: no gradient through its rstd output');
    if (!g) return [undefined];
    const [xhat, rstd] = n.outputs;
    return [standardGrad(g, xhat, rstd, n.attrs.axes)];
  },
};

/** (x - mean) / sqrt(var + eps) over `axes` (biased variance, as PyTorch's norms). */
export function normalize(x: Tensor, axes: readonly number[], eps = 1e-5): Tensor {
  return x.graph.apply(normalizeOp, [x], { axes: normAxes('normalize', axes, x.rank), eps })[0];
}

function channelAffine(y: Tensor, weight: Tensor | undefined, bias: Tensor | undefined, op: string): Tensor {
  const c = y.shape[1];
  const bshape = y.shape.map((d, i) => (i === 1 ? d : 1));
  for (const p of [weight, bias]) {
    if (p && (p.rank !== 1 || p.shape[0] !== c))
      throw new GraphError(`${op}: weight/bias ${p} must be [${c}] for ${y}`);
  }
  let out = y;
  if (weight) out = mul(out, reshape(weight, bshape));
  if (bias) out = add(out, reshape(bias, bshape));
  return out;
}

/** LayerNorm over the channel axis of [N, C, ...] (ConvNeXt's channels_first LayerNorm), no transposes. */
export function channelNorm(
  x: Tensor,
  weight?: Tensor,
  bias?: Tensor,
  options: { eps?: number } = {},
): Tensor {
  if (x.rank < 2) throw new GraphError(`channelNorm: needs [N, C, ...], got ${x}`);
  return channelAffine(normalize(x, [1], options.eps ?? 1e-6), weight, bias, 'channelNorm');
}

/** GroupNorm over [N, C, ...]: statistics per (sample, group of C/groups channels). */
export function groupNorm(
  x: Tensor,
  groups: number,
  weight?: Tensor,
  bias?: Tensor,
  options: { eps?: number } = {},
): Tensor {
  const [n, c] = x.shape;
  if (x.rank < 2 || c % groups !== 0)
    throw new GraphError(`groupNorm: ${groups} groups do not divide the channels of ${x}`);
  const grouped = reshape(x, [n, groups, -1]);
  const y = reshape(normalize(grouped, [2], options.eps ?? 1e-5), x.shape);
  return channelAffine(y, weight, bias, 'groupNorm');
}
