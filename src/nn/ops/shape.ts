/** Data movement: Reshape, Transpose, Expand, Concat, Split, Slice, Pad (constant). */
import { attr, GraphError, type Op, type Shape, shapeStr, sizeOf, type Tensor } from '../graph.js';
import { apply1, normAxes, normAxis, sameDtype, sameShape } from './core.js';
import { reduceSum } from './reduce.js';

// ---- Reshape -------------------------------------------------------------------------------------

interface ReshapeAttrs {
  shape: readonly number[];
}

const reshapeOp: Op<ReshapeAttrs> = {
  type: 'Reshape',
  infer([x], { shape }) {
    if (sizeOf(shape) !== x.size) throw new GraphError(`reshape: cannot reshape ${x} to ${shapeStr(shape)}`);
    return [{ shape, dtype: x.dtype }];
  },
  lower(n, ctx) {
    const { shape } = n.attrs;
    const x = n.inputs[0];
    // With a symbolic batch, an axis 0 that the reshape keeps is written as 0 ("copy the input's").
    const keepsAxis0 =
      ctx.batchDim !== undefined && x.rank > 0 && shape.length > 0 && x.shape[0] === shape[0];
    const written = keepsAxis0 ? [0, ...shape.slice(1)] : shape;
    ctx.emit('Reshape', [ctx.name(x), ctx.int64(written)], [ctx.name(n.outputs[0])]);
  },
  vjp(n, [g]) {
    return [g && reshape(g, n.inputs[0].shape)];
  },
};

/** Static reshape; one dim may be -1 (inferred). Returns x itself when the shape is unchanged. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1);
  const minus = shape.length - known.length;
  if (minus > 1) throw new GraphError(`reshape: more than one -1 in ${shapeStr(shape)}`);
  let full = [...shape];
  if (minus === 1) {
    const rest = sizeOf(known);
    if (rest === 0 || x.size % rest !== 0)
      throw new GraphError(`reshape: cannot reshape ${x} to ${shapeStr(shape)}`);
    full = shape.map((d) => (d === -1 ? x.size / rest : d));
  }
  if (sameShape(full, x.shape)) return x;
  return apply1(reshapeOp, [x], { shape: full });
}

export function flatten(x: Tensor, axis = 1): Tensor {
  const a = axis < 0 ? axis + x.rank : axis;
  return reshape(x, [sizeOf(x.shape.slice(0, a)), sizeOf(x.shape.slice(a))]);
}

/** Inserts size-1 axes at the given positions of the result. */
export function unsqueeze(x: Tensor, axes: readonly number[]): Tensor {
  const rank = x.rank + axes.length;
  const ax = normAxes('unsqueeze', axes, rank);
  const shape: number[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) shape.push(ax.includes(i) ? 1 : x.shape[k++]);
  return reshape(x, shape);
}

/** Removes size-1 axes (all of them when none are given). */
export function squeeze(x: Tensor, axes?: readonly number[]): Tensor {
  const ax = axes ? normAxes('squeeze', axes, x.rank) : x.shape.flatMap((d, i) => (d === 1 ? [i] : []));
  for (const a of ax) if (x.shape[a] !== 1) throw new GraphError(`squeeze: axis ${a} of ${x} is not 1`);
  return reshape(
    x,
    x.shape.filter((_, i) => !ax.includes(i)),
  );
}

// ---- Transpose -----------------------------------------------------------------------------------

interface TransposeAttrs {
  perm: readonly number[];
}

const transposeOp: Op<TransposeAttrs> = {
  type: 'Transpose',
  infer([x], { perm }) {
    const sorted = [...perm].sort((a, b) => a - b);
    if (perm.length !== x.rank || sorted.some((p, i) => p !== i)) {
      throw new GraphError(
        `transpose: perm [${perm.join(',')}] is not a permutation of ${x.rank} axes (${x})`,
      );
    }
    return [{ shape: perm.map((p) => x.shape[p]), dtype: x.dtype }];
  },
  lower(n, ctx) {
    ctx.emit('Transpose', [ctx.name(n.inputs[0])], [ctx.name(n.outputs[0])], {
      perm: attr.ints(n.attrs.perm),
    });
  },
  vjp(n, [g]) {
    if (!g) return [undefined];
    const inverse = new Array<number>(n.attrs.perm.length);
    n.attrs.perm.forEach((p, i) => {
      inverse[p] = i;
    });
    return [transpose(g, inverse)];
  },
};

/** Identity permutations return x itself; one that only moves size-1 axes is a (free) reshape. */
export function transpose(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.every((p, i) => p === i) && perm.length === x.rank) return x;
  const moved = perm.filter((p) => x.shape[p] !== 1);
  if (perm.length === x.rank && moved.every((p, i) => i === 0 || p > moved[i - 1])) {
    return reshape(
      x,
      perm.map((p) => x.shape[p]),
    );
  }
  return apply1(transposeOp, [x], { perm });
}

// ---- Expand & sum-to-shape -----------------------------------------------------------------------

interface ExpandAttrs {
  shape: readonly number[];
}

const expandOp: Op<ExpandAttrs> = {
  type: 'Expand',
  infer([x], { shape }) {
    const ok =
      shape.length >= x.rank && x.shape.every((d, i) => d === 1 || d === shape[shape.length - x.rank + i]);
    if (!ok) throw new GraphError(`expand: cannot broadcast ${x} to ${shapeStr(shape)}`);
    return [{ shape, dtype: x.dtype }];
  },
  lower(n, ctx) {
    const { shape } = n.attrs;
    const x = n.inputs[0];
    // With a symbolic batch, an axis 0 that x already has is written as 1 (broadcast keeps x's).
    const keepsAxis0 = ctx.batchDim !== undefined && x.rank === shape.length && x.shape[0] === shape[0];
    const written = keepsAxis0 ? [1, ...shape.slice(1)] : shape;
    ctx.emit('Expand', [ctx.name(x), ctx.int64(written)], [ctx.name(n.outputs[0])]);
  },
  vjp(n, [g]) {
    return [g && sumTo(g, n.inputs[0].shape)];
  },
};

export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(x.shape, shape)) return x;
  return apply1(expandOp, [x], { shape });
}

/**
 * Sums a broadcast gradient back to an operand's shape: over the leading axes the operand lacks and
 * over axes where it had size 1. This is the VJP of broadcasting.
 */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  if (lead < 0) throw new GraphError(`sumTo: gradient ${g} has lower rank than ${shapeStr(shape)}`);
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const summed = axes.length > 0 ? reduceSum(g, axes, true) : g;
  return reshape(summed, shape);
}

// ---- Concat / Split ------------------------------------------------------------------------------

interface AxisAttrs {
  axis: number;
}

const concatOp: Op<AxisAttrs> = {
  type: 'Concat',
  infer(xs, { axis }) {
    const dtype = sameDtype('concat', xs);
    const first = xs[0];
    let total = 0;
    for (const x of xs) {
      const ok = x.rank === first.rank && x.shape.every((d, i) => i === axis || d === first.shape[i]);
      if (!ok)
        throw new GraphError(
          `concat: shapes ${xs.map((t) => shapeStr(t.shape)).join(', ')} differ off axis ${axis}`,
        );
      total += x.shape[axis];
    }
    const shape = [...first.shape];
    shape[axis] = total;
    return [{ shape, dtype }];
  },
  lower(n, ctx) {
    ctx.emit('Concat', n.inputs.map(ctx.name), [ctx.name(n.outputs[0])], { axis: attr.int(n.attrs.axis) });
  },
  vjp(n, [g]) {
    if (!g) return n.inputs.map(() => undefined);
    return split(
      g,
      n.attrs.axis,
      n.inputs.map((x) => x.shape[n.attrs.axis]),
    );
  },
};

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new GraphError('concat: no tensors');
  if (xs.length === 1) return xs[0];
  return apply1(concatOp, xs, { axis: normAxis('concat', axis, xs[0].rank) });
}

interface SplitAttrs {
  axis: number;
  sizes: readonly number[];
}

const splitOp: Op<SplitAttrs> = {
  type: 'Split',
  infer([x], { axis, sizes }) {
    const total = sizes.reduce((a, b) => a + b, 0);
    if (total !== x.shape[axis])
      throw new GraphError(`split: sizes [${sizes.join(',')}] do not add up to axis ${axis} of ${x}`);
    return sizes.map((s) => ({ shape: x.shape.map((d, i) => (i === axis ? s : d)), dtype: x.dtype }));
  },
  lower(n, ctx) {
    // Unused parts still need an output slot in ONNX; give them names nobody reads.
    ctx.emit(
      'Split',
      [ctx.name(n.inputs[0]), ctx.int64(n.attrs.sizes)],
      n.outputs.map((o) => ctx.name(o)),
      { axis: attr.int(n.attrs.axis) },
    );
  },
  vjp(n, grads) {
    if (grads.every((g) => g === undefined)) return [undefined];
    const parts = grads.map((g, i) => g ?? zerosLike(n.outputs[i]));
    return [concat(parts, n.attrs.axis)];
  },
};

export function split(x: Tensor, axis: number, sizes: readonly number[]): Tensor[] {
  const a = normAxis('split', axis, x.rank);
  if (sizes.length === 1) return [x];
  return x.graph.apply(splitOp, [x], { axis: a, sizes });
}

/** A zero tensor of t's shape and dtype (a broadcast scalar: no big initializer). */
export function zerosLike(t: Tensor): Tensor {
  return expand(t.graph.constant(0, [], t.dtype), t.shape);
}

// ---- Slice ---------------------------------------------------------------------------------------

interface SliceAttrs {
  /** One entry per sliced axis, normalised: 0 <= start, end <= dim, step != 0. */
  axes: readonly number[];
  starts: readonly number[];
  ends: readonly number[];
  steps: readonly number[];
}

const sliceOp: Op<SliceAttrs> = {
  type: 'Slice',
  infer([x], { axes, starts, ends, steps }) {
    const shape = [...x.shape];
    axes.forEach((a, i) => {
      const step = steps[i];
      const len =
        step > 0 ? Math.ceil((ends[i] - starts[i]) / step) : Math.ceil((ends[i] - starts[i]) / step);
      shape[a] = Math.max(0, len);
    });
    return [{ shape, dtype: x.dtype }];
  },
  lower(n, ctx) {
    const { axes, starts, ends, steps } = n.attrs;
    // A negative-step slice that runs to the front needs an end below -dim (ONNX clamps it to -1).
    const onnxEnds = ends.map((e, i) => (steps[i] < 0 && e < 0 ? -(2 ** 62) : e));
    ctx.emit(
      'Slice',
      [ctx.name(n.inputs[0]), ctx.int64(starts), ctx.int64(onnxEnds), ctx.int64(axes), ctx.int64(steps)],
      [ctx.name(n.outputs[0])],
    );
  },
  vjp(n, [g]) {
    if (!g) return [undefined];
    const x = n.inputs[0];
    const { axes, starts, ends, steps } = n.attrs;
    if (steps.some((s) => s !== 1))
      throw new GraphError(`slice: no gradient for steps [${steps.join(',')}] (only 1)`);
    const pads = new Array<number>(2 * x.rank).fill(0);
    axes.forEach((a, i) => {
      pads[a] = starts[i];
      pads[x.rank + a] = x.shape[a] - ends[i];
    });
    return [pad(g, pads)];
  },
};

/**
 * Static slice with Python semantics per axis: negative indices count from the end, bounds clamp.
 * `slice(x, { axes: [2], starts: [1], ends: [-1] })`. Step -1 reverses (ends: use -dim-1 or omit).
 */
export function slice(
  x: Tensor,
  spec: {
    axes: readonly number[];
    starts: readonly number[];
    ends?: readonly number[];
    steps?: readonly number[];
  },
): Tensor {
  const axes = spec.axes.map((a) => normAxis('slice', a, x.rank));
  const steps = spec.steps ?? axes.map(() => 1);
  const starts: number[] = [];
  const ends: number[] = [];
  axes.forEach((a, i) => {
    const dim = x.shape[a];
    const step = steps[i];
    if (!Number.isInteger(step) || step === 0) throw new GraphError(`slice: bad step ${step}`);
    const clampIdx = (v: number, lo: number, hi: number) => Math.min(Math.max(v < 0 ? v + dim : v, lo), hi);
    if (step > 0) {
      starts.push(clampIdx(spec.starts[i], 0, dim));
      ends.push(clampIdx(spec.ends?.[i] ?? dim, 0, dim));
    } else {
      starts.push(clampIdx(spec.starts[i], -1, dim - 1));
      const e = spec.ends?.[i];
      // -1 here means "before index 0"; kept as a sentinel the lowering understands.
      ends.push(e === undefined || e < -dim ? -1 : clampIdx(e, -1, dim - 1));
    }
  });
  return apply1(sliceOp, [x], { axes, starts, ends, steps });
}

// ---- Pad (constant) ------------------------------------------------------------------------------

interface PadAttrs {
  /** ONNX order: begins of every axis, then ends; negative values crop. */
  pads: readonly number[];
  value: number;
}

const padOp: Op<PadAttrs> = {
  type: 'Pad',
  infer([x], { pads }) {
    if (pads.length !== 2 * x.rank)
      throw new GraphError(`pad: need ${2 * x.rank} pads for ${x}, got [${pads.join(',')}]`);
    const shape = x.shape.map((d, i) => d + pads[i] + pads[x.rank + i]);
    if (shape.some((d) => d < 0)) throw new GraphError(`pad: pads [${pads.join(',')}] crop ${x} below zero`);
    return [{ shape, dtype: x.dtype }];
  },
  lower(n, ctx) {
    const x = n.inputs[0];
    ctx.emit(
      'Pad',
      [ctx.name(x), ctx.int64(n.attrs.pads), ctx.scalar(n.attrs.value, x.dtype)],
      [ctx.name(n.outputs[0])],
      { mode: attr.string('constant') },
    );
  },
  vjp(n, [g]) {
    if (!g) return [undefined];
    const x = n.inputs[0];
    const r = x.rank;
    const axes: number[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    for (let a = 0; a < r; a++) {
      const b = n.attrs.pads[a];
      const e = n.attrs.pads[r + a];
      if (b === 0 && e === 0) continue;
      if (b < 0 || e < 0) {
        // Cropping pads: the gradient is the inverse pad.
        return [
          pad(
            g,
            n.attrs.pads.map((p) => -p),
          ),
        ];
      }
      axes.push(a);
      starts.push(b);
      ends.push(b + x.shape[a]);
    }
    return [axes.length > 0 ? slice(g, { axes, starts, ends }) : g];
  },
};

/** Constant padding, ONNX pad order [x1_begin, x2_begin, ..., x1_end, x2_end, ...]. */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  if (pads.every((p) => p === 0)) return x;
  return apply1(padOp, [x], { pads, value });
}
