/** Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceL2, ArgMax (no gradient). */
import { attr, GraphError, type Node, type Op, type Tensor } from '../graph.js';
import { apply1, normAxes, normAxis, requireFloat } from './core.js';
import { cast, div, equal, mul } from './elementwise.js';
import { expand, reshape } from './shape.js';

interface ReduceAttrs {
  /** Normalised, sorted. */
  axes: readonly number[];
  keepdims: boolean;
}

function reducedShape(x: Tensor, { axes, keepdims }: ReduceAttrs): number[] {
  const shape: number[] = [];
  x.shape.forEach((d, i) => {
    if (!axes.includes(i)) shape.push(d);
    else if (keepdims) shape.push(1);
  });
  return shape;
}

/** The output gradient reshaped to keepdims form, so it broadcasts against the input. */
function keepShape(n: Node<ReduceAttrs>, g: Tensor): Tensor {
  return reshape(g, reducedShape(n.inputs[0], { axes: n.attrs.axes, keepdims: true }));
}

function reduceOp(type: string, vjp: Op<ReduceAttrs>['vjp']): Op<ReduceAttrs> {
  return {
    type,
    infer([x], a) {
      if (type !== 'ReduceSum') requireFloat(type, x);
      return [{ shape: reducedShape(x, a), dtype: x.dtype }];
    },
    lower(n, ctx) {
      const keepdims = { keepdims: attr.int(n.attrs.keepdims ? 1 : 0) };
      // Opset 13 moved ReduceSum's axes to an input; opset 18 moved the others'.
      if (type === 'ReduceSum' || ctx.opset >= 18) {
        ctx.emit(type, [ctx.name(n.inputs[0]), ctx.int64(n.attrs.axes)], [ctx.name(n.outputs[0])], keepdims);
      } else {
        ctx.emit(type, [ctx.name(n.inputs[0])], [ctx.name(n.outputs[0])], {
          ...keepdims,
          axes: attr.ints(n.attrs.axes),
        });
      }
    },
    vjp,
  };
}

const reduceSumOp = reduceOp('ReduceSum', (n, [g]) => [g && expand(keepShape(n, g), n.inputs[0].shape)]);

const reduceMeanOp = reduceOp('ReduceMean', (n, [g]) => {
  if (!g) return [undefined];
  const x = n.inputs[0];
  const count = n.attrs.axes.reduce((c, a) => c * x.shape[a], 1);
  // Scale the small tensor before expanding it.
  return [expand(mul(keepShape(n, g), 1 / count), x.shape)];
});

const reduceMaxOp = reduceOp('ReduceMax', (n, [g]) => {
  if (!g) return [undefined];
  // Ties share the gradient equally (as torch.amax does).
  const x = n.inputs[0];
  const y = keepShape(n, n.outputs[0]);
  const mask = cast(equal(x, y), x.dtype);
  const count = reduceSum(mask, n.attrs.axes, true);
  return [mul(mask, div(keepShape(n, g), count))];
});

const reduceL2Op = reduceOp('ReduceL2', (n, [g]) => {
  if (!g) return [undefined];
  // d|x|/dx = x/|x|: undefined (here inf/NaN) where the norm is 0, as in every framework.
  return [mul(n.inputs[0], div(keepShape(n, g), keepShape(n, n.outputs[0])))];
});

function reduce(
  op: Op<ReduceAttrs>,
  x: Tensor,
  axes: readonly number[] | undefined,
  keepdims: boolean,
): Tensor {
  const ax = normAxes(op.type, axes ?? x.shape.map((_, i) => i), x.rank);
  if (ax.length === 0) return x;
  return apply1(op, [x], { axes: ax, keepdims });
}

/** Sum over `axes` (all when omitted). */
export function reduceSum(x: Tensor, axes?: readonly number[], keepdims = false): Tensor {
  return reduce(reduceSumOp, x, axes, keepdims);
}
export function reduceMean(x: Tensor, axes?: readonly number[], keepdims = false): Tensor {
  return reduce(reduceMeanOp, x, axes, keepdims);
}
export function reduceMax(x: Tensor, axes?: readonly number[], keepdims = false): Tensor {
  return reduce(reduceMaxOp, x, axes, keepdims);
}
/** sqrt(sum x^2) over axes. */
export function reduceL2(x: Tensor, axes?: readonly number[], keepdims = false): Tensor {
  return reduce(reduceL2Op, x, axes, keepdims);
}

// ---- ArgMax --------------------------------------------------------------------------------------

interface ArgMaxAttrs {
  axis: number;
  keepdims: boolean;
}

const argMaxOp: Op<ArgMaxAttrs> = {
  type: 'ArgMax',
  infer([x], { axis, keepdims }) {
    const shape = x.shape.flatMap((d, i) => (i !== axis ? [d] : keepdims ? [1] : []));
    return [{ shape, dtype: 'int64' }];
  },
  lower(n, ctx) {
    ctx.emit('ArgMax', [ctx.name(n.inputs[0])], [ctx.name(n.outputs[0])], {
      axis: attr.int(n.attrs.axis),
      keepdims: attr.int(n.attrs.keepdims ? 1 : 0),
    });
  },
  // No vjp: the index is piecewise constant.
};

/** int64 index of the maximum along `axis` (first one on ties). Not differentiable. */
export function argMax(x: Tensor, axis: number, keepdims = false): Tensor {
  if (x.rank === 0) throw new GraphError(`argMax: ${x} is a scalar`);
  return apply1(argMaxOp, [x], { axis: normAxis('argMax', axis, x.rank), keepdims });
}
