/**
 * Element-wise ops with numpy broadcasting. A binary op's VJP sums the gradient back over the axes it
 * broadcast (`sumTo`). Operands may be JS numbers, lifted to scalars of the other operand's dtype.
 */
import {
  attr,
  type DType,
  GraphError,
  isFloat,
  type Node,
  type Op,
  type Tensor,
  type TensorType,
} from '../graph.js';
import { onnxDataTypeCode } from '../onnx/proto-schema.js';
import { apply1, broadcastShapes, lift, lift2, requireFloat, sameDtype, type TensorLike } from './core.js';
import { sumTo } from './shape.js';

// ---- Binary arithmetic ---------------------------------------------------------------------------

type BinaryVjp = (a: Tensor, b: Tensor, y: Tensor, g: Tensor) => [Tensor | undefined, Tensor | undefined];

function binaryOp(type: string, vjp: BinaryVjp | undefined, out: 'same' | 'bool' = 'same'): Op<object> {
  return {
    type,
    infer([a, b]) {
      const dtype = sameDtype(type, [a, b]);
      return [{ shape: broadcastShapes(type, a.shape, b.shape), dtype: out === 'bool' ? 'bool' : dtype }];
    },
    lower(n, ctx) {
      ctx.emit(type, n.inputs.map(ctx.name), [ctx.name(n.outputs[0])]);
    },
    vjp: vjp
      ? (n, [g]) => {
          if (!g) return [undefined, undefined];
          const [a, b] = n.inputs;
          const [ga, gb] = vjp(a, b, n.outputs[0], g);
          return [ga && sumTo(ga, a.shape), gb && sumTo(gb, b.shape)];
        }
      : undefined,
  };
}

const addOp = binaryOp('Add', (_a, _b, _y, g) => [g, g]);
const subOp = binaryOp('Sub', (_a, _b, _y, g) => [g, neg(g)]);
const mulOp = binaryOp('Mul', (a, b, _y, g) => [mul(g, b), mul(g, a)]);
const divOp = binaryOp('Div', (_a, b, y, g) => {
  const ga = div(g, b);
  // d(a/b)/db = -a/b^2 = -y/b, so gb = -(g/b) * y.
  return [ga, neg(mul(ga, y))];
});
const powOp = binaryOp('Pow', (a, b, y, g) => {
  // d(a^b)/da = b a^(b-1); d(a^b)/db = a^b log a (only where a > 0 is it finite).
  const ga = mul(g, mul(b, pow(a, sub(b, 1))));
  const gb = b.source.kind === 'constant' ? undefined : mul(g, mul(y, log(a)));
  return [ga, gb];
});

export function add(a: TensorLike, b: TensorLike): Tensor {
  return apply1(addOp, lift2(a, b, 'add'), {});
}
export function sub(a: TensorLike, b: TensorLike): Tensor {
  return apply1(subOp, lift2(a, b, 'sub'), {});
}
export function mul(a: TensorLike, b: TensorLike): Tensor {
  return apply1(mulOp, lift2(a, b, 'mul'), {});
}
export function div(a: TensorLike, b: TensorLike): Tensor {
  return apply1(divOp, lift2(a, b, 'div'), {});
}
export function pow(a: TensorLike, b: TensorLike): Tensor {
  return apply1(powOp, lift2(a, b, 'pow'), {});
}

// ---- Comparisons (bool result, no gradient) ------------------------------------------------------

const greaterOp = binaryOp('Greater', undefined, 'bool');
const lessOp = binaryOp('Less', undefined, 'bool');
const equalOp = binaryOp('Equal', undefined, 'bool');
const andOp = binaryOp('And', undefined, 'bool');

export function greater(a: TensorLike, b: TensorLike): Tensor {
  return apply1(greaterOp, lift2(a, b, 'greater'), {});
}
export function less(a: TensorLike, b: TensorLike): Tensor {
  return apply1(lessOp, lift2(a, b, 'less'), {});
}
export function equal(a: TensorLike, b: TensorLike): Tensor {
  return apply1(equalOp, lift2(a, b, 'equal'), {});
}
export function and(a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== 'bool' || b.dtype !== 'bool')
    throw new GraphError(`and: needs bool tensors, got ${a} and ${b}`);
  return apply1(andOp, [a, b], {});
}

// ---- Where ---------------------------------------------------------------------------------------

const whereOp: Op<object> = {
  type: 'Where',
  infer([c, a, b]) {
    if (c.dtype !== 'bool') throw new GraphError(`where: condition must be bool, got ${c}`);
    const dtype = sameDtype('where', [a, b]);
    return [{ shape: broadcastShapes('where', c.shape, a.shape, b.shape), dtype }];
  },
  lower(n, ctx) {
    ctx.emit('Where', n.inputs.map(ctx.name), [ctx.name(n.outputs[0])]);
  },
  vjp(n, [g]) {
    if (!g) return [undefined, undefined, undefined];
    const [c, a, b] = n.inputs;
    const zero = g.graph.constant(0, [], g.dtype);
    return [undefined, sumTo(where(c, g, zero), a.shape), sumTo(where(c, zero, g), b.shape)];
  },
};

/** cond ? a : b, broadcasting all three. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const [ta, tb] = lift2(a, b, 'where');
  return apply1(whereOp, [cond, ta, tb], {});
}

// ---- Unary ---------------------------------------------------------------------------------------

type UnaryVjp = (x: Tensor, y: Tensor, g: Tensor) => Tensor | undefined;

function unaryOp(type: string, vjp: UnaryVjp | undefined, options: { floatOnly?: boolean } = {}): Op<object> {
  return {
    type,
    infer([x]) {
      if (options.floatOnly ?? true) requireFloat(type, x);
      return [{ shape: x.shape, dtype: x.dtype }];
    },
    lower(n, ctx) {
      ctx.emit(type, [ctx.name(n.inputs[0])], [ctx.name(n.outputs[0])]);
    },
    vjp: vjp ? (n, [g]) => [g && vjp(n.inputs[0], n.outputs[0], g)] : undefined,
  };
}

const negOp = unaryOp('Neg', (_x, _y, g) => neg(g), { floatOnly: false });
const expOp = unaryOp('Exp', (_x, y, g) => mul(g, y));
const logOp = unaryOp('Log', (x, _y, g) => div(g, x));
const sqrtOp = unaryOp('Sqrt', (_x, y, g) => div(mul(g, 0.5), y));
const absOp = unaryOp('Abs', (x, _y, g) => mul(g, sign(x)));
const signOp = unaryOp('Sign', () => undefined);
const reluOp = unaryOp('Relu', (_x, y, g) => where(greater(y, 0), g, 0));
const sigmoidOp = unaryOp('Sigmoid', (_x, y, g) => mul(g, mul(y, sub(1, y))));
const tanhOp = unaryOp('Tanh', (_x, y, g) => mul(g, sub(1, mul(y, y))));
const erfOp = unaryOp('Erf', (x, _y, g) => mul(g, mul(exp(mul(mul(x, x), -1)), 2 / Math.sqrt(Math.PI))));
const identityOp = unaryOp('Identity', (_x, _y, g) => g, { floatOnly: false });

export const neg = (x: Tensor): Tensor => apply1(negOp, [x], {});
export const exp = (x: Tensor): Tensor => apply1(expOp, [x], {});
export const log = (x: Tensor): Tensor => apply1(logOp, [x], {});
export const sqrt = (x: Tensor): Tensor => apply1(sqrtOp, [x], {});
export const abs = (x: Tensor): Tensor => apply1(absOp, [x], {});
/** -1, 0 or 1; its gradient is zero almost everywhere (treated as none). */
export const sign = (x: Tensor): Tensor => apply1(signOp, [x], {});
export const relu = (x: Tensor): Tensor => apply1(reluOp, [x], {});
export const sigmoid = (x: Tensor): Tensor => apply1(sigmoidOp, [x], {});
export const tanh = (x: Tensor): Tensor => apply1(tanhOp, [x], {});
export const erf = (x: Tensor): Tensor => apply1(erfOp, [x], {});
export const identity = (x: Tensor): Tensor => apply1(identityOp, [x], {});

// ---- GELU (erf form) -----------------------------------------------------------------------------

const SQRT2 = Math.SQRT2;
const GELU_DELTA = 1e-20;

/**
 * GELU(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)). Opset 20 has Gelu; before that it is lowered as
 * Div -> Erf -> Add -> Mul -> Mul, the exact pattern onnxruntime's GeluFusion rewrites into one kernel.
 * VJP (documented rule, fewer nodes than differentiating the composite): g * (Phi(x) + x phi(x)), with
 * Phi(x) taken from the forward output as (y + d/2) / (x + d), d = 1e-20, instead of a second Erf (the
 * costliest element-wise kernel in ORT; a Where guard for x = 0 was slower still, see API.md). Since
 * y = x/2 + x (Phi(x) - 1/2), this equals 1/2 + x (Phi(x) - 1/2) / (x + d): Phi(x) to one rounding for
 * |x| >> d and 1/2 + O(x) near 0, with no 0/0 at x = 0 (only x = -d exactly would be one). */
const geluOp: Op<object> = {
  type: 'Gelu',
  infer([x]) {
    requireFloat('gelu', x);
    return [{ shape: x.shape, dtype: x.dtype }];
  },
  lower(n, ctx) {
    const x = ctx.name(n.inputs[0]);
    const y = ctx.name(n.outputs[0]);
    if (ctx.opset >= 20) {
      ctx.emit('Gelu', [x], [y]);
      return;
    }
    const dt = n.inputs[0].dtype;
    const scaled = ctx.fresh('gelu_div');
    const e = ctx.fresh('gelu_erf');
    const onePlus = ctx.fresh('gelu_add');
    const prod = ctx.fresh('gelu_mul');
    ctx.emit('Div', [x, ctx.scalar(SQRT2, dt)], [scaled]);
    ctx.emit('Erf', [scaled], [e]);
    ctx.emit('Add', [e, ctx.scalar(1, dt)], [onePlus]);
    ctx.emit('Mul', [x, onePlus], [prod]);
    ctx.emit('Mul', [prod, ctx.scalar(0.5, dt)], [y]);
  },
  vjp(n, [g]) {
    if (!g) return [undefined];
    const x = n.inputs[0];
    const y = n.outputs[0];
    const cdf = div(add(y, GELU_DELTA / 2), add(x, GELU_DELTA));
    const xPdf = mul(x, exp(mul(mul(x, x), -0.5)));
    return [mul(g, add(cdf, mul(xPdf, 1 / Math.sqrt(2 * Math.PI))))];
  },
};

export const gelu = (x: Tensor): Tensor => apply1(geluOp, [x], {});

// ---- Clip ----------------------------------------------------------------------------------------

interface ClipAttrs {
  min?: number;
  max?: number;
}

const clipOp: Op<ClipAttrs> = {
  type: 'Clip',
  infer([x], { min, max }) {
    requireFloat('clip', x);
    if (min !== undefined && max !== undefined && min > max)
      throw new GraphError(`clip: min ${min} > max ${max}`);
    return [{ shape: x.shape, dtype: x.dtype }];
  },
  lower(n, ctx) {
    const dt = n.inputs[0].dtype;
    const { min, max } = n.attrs;
    const ins = [ctx.name(n.inputs[0]), min === undefined ? '' : ctx.scalar(min, dt)];
    if (max !== undefined) ins.push(ctx.scalar(max, dt));
    ctx.emit('Clip', ins, [ctx.name(n.outputs[0])]);
  },
  vjp(n, [g]) {
    if (!g) return [undefined];
    // Passes where clipping left x unchanged (boundaries included, as torch.clamp).
    return [where(equal(n.inputs[0], n.outputs[0]), g, 0)];
  },
};

export function clip(x: Tensor, min?: number, max?: number): Tensor {
  return apply1(clipOp, [x], { min, max });
}

// ---- Cast ----------------------------------------------------------------------------------------

interface CastAttrs {
  to: DType;
}

const castOp: Op<CastAttrs> = {
  type: 'Cast',
  infer([x], { to }): TensorType[] {
    return [{ shape: x.shape, dtype: to }];
  },
  lower(n, ctx) {
    ctx.emit('Cast', [ctx.name(n.inputs[0])], [ctx.name(n.outputs[0])], {
      to: attr.int(onnxDataTypeCode[n.attrs.to]),
    });
  },
  vjp(n: Node<CastAttrs>, [g]) {
    const x = n.inputs[0];
    // Only float -> float casts carry a gradient; from ints or bools there is nothing to differentiate.
    if (!g || !isFloat(x.dtype) || !isFloat(n.attrs.to)) return [undefined];
    return [cast(g, x.dtype)];
  },
};

/** Returns x itself when it already has the dtype. */
export function cast(x: Tensor, to: DType): Tensor {
  if (x.dtype === to) return x;
  return apply1(castOp, [x], { to });
}

/** A scalar constant beside x (same graph and dtype). */
export function scalarLike(x: Tensor, value: number): Tensor {
  return lift(value, x);
}

// ---- Sum (variadic; gradient accumulation) -------------------------------------------------------

const sumOp: Op<object> = {
  type: 'Sum',
  infer(xs) {
    const dtype = sameDtype('sum', xs);
    return [{ shape: broadcastShapes('sum', ...xs.map((x) => x.shape)), dtype }];
  },
  lower(n, ctx) {
    ctx.emit('Sum', n.inputs.map(ctx.name), [ctx.name(n.outputs[0])]);
  },
  vjp(n, [g]) {
    return n.inputs.map((x) => g && sumTo(g, x.shape));
  },
};

/** Element-wise sum of any number of tensors (one ONNX Sum node). */
export function sum(xs: readonly Tensor[]): Tensor {
  if (xs.length === 0) throw new GraphError('sum: no tensors');
  if (xs.length === 1) return xs[0];
  return apply1(sumOp, xs, {});
}
