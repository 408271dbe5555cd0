/** Softmax and LogSoftmax along one axis (opset 13 semantics). */
import { attr, type Op, type Tensor } from '../graph.js';
import { apply1, normAxis, requireFloat } from './core.js';
import { exp, mul, sub } from './elementwise.js';
import { reduceSum } from './reduce.js';

interface AxisAttrs {
  axis: number;
}

function softmaxLike(type: string, vjp: NonNullable<Op<AxisAttrs>['vjp']>): Op<AxisAttrs> {
  return {
    type,
    infer([x]) {
      requireFloat(type, x);
      return [{ shape: x.shape, dtype: x.dtype }];
    },
    lower(n, ctx) {
      ctx.emit(type, [ctx.name(n.inputs[0])], [ctx.name(n.outputs[0])], { axis: attr.int(n.attrs.axis) });
    },
    vjp,
  };
}

// y = softmax(x): dx = y * (g - sum(g * y)).
const softmaxOp = softmaxLike('Softmax', (n, [g]) => {
  if (!g) return [undefined];
  const y = n.outputs[0];
  return [mul(y, sub(g, reduceSum(mul(g, y), [n.attrs.axis], true)))];
});

// y = log_softmax(x): dx = g - softmax(x) * sum(g), softmax = exp(y).
const logSoftmaxOp = softmaxLike('LogSoftmax', (n, [g]) => {
  if (!g) return [undefined];
  return [sub(g, mul(exp(n.outputs[0]), reduceSum(g, [n.attrs.axis], true)))];
});

export function softmax(x: Tensor, axis = -1): Tensor {
  return apply1(softmaxOp, [x], { axis: normAxis('softmax', axis, x.rank) });
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return apply1(logSoftmaxOp, [x], { axis: normAxis('logSoftmax', axis, x.rank) });
}
