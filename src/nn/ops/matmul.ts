/** MatMul (batched, broadcasting over leading axes) and Gemm (2-D, with transposes and bias). */
import { attr, GraphError, type Op, shapeStr, type Tensor } from '../graph.js';
import { apply1, broadcastShapes, requireFloat, sameDtype } from './core.js';
import { add, mul } from './elementwise.js';
import { sumTo, transpose } from './shape.js';

function swapLast(x: Tensor): Tensor {
  const perm = x.shape.map((_, i) => i);
  perm[x.rank - 1] = x.rank - 2;
  perm[x.rank - 2] = x.rank - 1;
  return transpose(x, perm);
}

const matmulOp: Op<object> = {
  type: 'MatMul',
  infer([a, b]) {
    const dtype = sameDtype('matmul', [a, b]);
    requireFloat('matmul', a);
    if (a.rank < 2 || b.rank < 2)
      throw new GraphError(`matmul: needs rank >= 2 (reshape vectors), got ${a} and ${b}`);
    const [m, k] = a.shape.slice(-2);
    const [k2, n] = b.shape.slice(-2);
    if (k !== k2)
      throw new GraphError(`matmul: inner dims differ: ${shapeStr(a.shape)} x ${shapeStr(b.shape)}`);
    const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
    return [{ shape: [...batch, m, n], dtype }];
  },
  lower(n, ctx) {
    ctx.emit('MatMul', n.inputs.map(ctx.name), [ctx.name(n.outputs[0])]);
  },
  vjp(n, [g]) {
    if (!g) return [undefined, undefined];
    const [a, b] = n.inputs;
    // Y = A B: dA = dY B^T, dB = A^T dY, summed over broadcast batch axes.
    return [sumTo(matmul(g, swapLast(b)), a.shape), sumTo(matmul(swapLast(a), g), b.shape)];
  },
};

export function matmul(a: Tensor, b: Tensor): Tensor {
  return apply1(matmulOp, [a, b], {});
}

interface GemmAttrs {
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
}

const gemmOp: Op<GemmAttrs> = {
  type: 'Gemm',
  infer(ins, { transA, transB }) {
    const [a, b, c] = ins;
    const dtype = sameDtype('gemm', ins);
    requireFloat('gemm', a);
    if (a.rank !== 2 || b.rank !== 2) throw new GraphError(`gemm: needs 2-D A and B, got ${a} and ${b}`);
    const [m, k] = transA ? [a.shape[1], a.shape[0]] : a.shape;
    const [k2, n] = transB ? [b.shape[1], b.shape[0]] : b.shape;
    if (k !== k2) {
      throw new GraphError(
        `gemm: inner dims differ: A${shapeStr(a.shape)}${transA ? '^T' : ''} x B${shapeStr(b.shape)}${transB ? '^T' : ''}`,
      );
    }
    if (c) {
      const out = broadcastShapes('gemm', [m, n], c.shape);
      if (out[0] !== m || out[1] !== n)
        throw new GraphError(`gemm: C ${shapeStr(c.shape)} does not broadcast to [${m},${n}]`);
    }
    return [{ shape: [m, n], dtype }];
  },
  lower(n, ctx) {
    const { transA, transB, alpha, beta } = n.attrs;
    ctx.emit('Gemm', n.inputs.map(ctx.name), [ctx.name(n.outputs[0])], {
      transA: attr.int(transA ? 1 : 0),
      transB: attr.int(transB ? 1 : 0),
      alpha: attr.float(alpha),
      beta: attr.float(beta),
    });
  },
  vjp(n, [g]) {
    const [a, b, c] = n.inputs;
    if (!g) return n.inputs.map(() => undefined);
    const { transA, transB, alpha, beta } = n.attrs;
    // Y = alpha op(A) op(B) + beta C. Each gradient is one Gemm with the right transposes.
    // d op(A) = alpha dY op(B)^T; if transA, dA = (d op(A))^T = alpha op(B) dY^T.
    const ga = transA
      ? gemm(b, g, undefined, { transA: transB, transB: true, alpha })
      : gemm(g, b, undefined, { transB: !transB, alpha });
    const gb = transB
      ? gemm(g, a, undefined, { transA: true, transB: transA, alpha })
      : gemm(a, g, undefined, { transA: !transA, alpha });
    const gc = c ? sumTo(beta === 1 ? g : mul(g, beta), c.shape) : undefined;
    return c ? [ga, gb, gc] : [ga, gb];
  },
};

/** Y = alpha op(A) op(B) + beta C, op = optional transpose; C broadcasts (e.g. a bias [N]). */
export function gemm(
  a: Tensor,
  b: Tensor,
  c?: Tensor,
  options: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {},
): Tensor {
  const attrs: GemmAttrs = {
    transA: options.transA ?? false,
    transB: options.transB ?? false,
    alpha: options.alpha ?? 1,
    beta: options.beta ?? 1,
  };
  return apply1(gemmOp, c ? [a, b, c] : [a, b], attrs);
}

/** A linear layer on the last axis: x [..., in] W [out, in] (PyTorch layout) + b [out]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  if (x.rank === 2) return gemm(x, weight, bias, { transB: true });
  const y = matmul(x, transpose(weight, [1, 0]));
  return bias ? add(y, bias) : y;
}
