/**
 * Shared helpers for op definitions: applying an op, numpy broadcasting, axis normalisation and the
 * "sum a gradient back to an operand's shape" step that every broadcasting op's VJP needs.
 */
import { type DType, GraphError, isFloat, type Op, type Shape, shapeStr, type Tensor } from '../graph.js';

export type TensorLike = Tensor | number;

/** Runs a single-output op. */
export function apply1<A>(op: Op<A>, inputs: readonly Tensor[], attrs: A): Tensor {
  return inputs[0].graph.apply(op, inputs, attrs)[0];
}

/** Turns a JS number into a scalar constant of the other operand's dtype. */
export function lift(x: TensorLike, like: Tensor): Tensor {
  return typeof x === 'number' ? like.graph.constant(x, [], like.dtype) : x;
}

export function lift2(a: TensorLike, b: TensorLike, op: string): [Tensor, Tensor] {
  if (typeof a === 'number' && typeof b === 'number')
    throw new GraphError(`${op}: at least one operand must be a Tensor`);
  const ta = typeof a === 'number' ? lift(a, b as Tensor) : a;
  const tb = typeof b === 'number' ? lift(b, ta) : b;
  return [ta, tb];
}

/** numpy broadcasting of two shapes; throws naming the op and both shapes. */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i];
      if (d === out[o] || d === 1) continue;
      if (out[o] === 1) out[o] = d;
      else throw new GraphError(`${op}: shapes ${shapes.map(shapeStr).join(' and ')} do not broadcast`);
    }
  }
  return out;
}

export function sameDtype(op: string, tensors: readonly Tensor[]): DType {
  const dt = tensors[0].dtype;
  for (const t of tensors) {
    if (t.dtype !== dt) throw new GraphError(`${op}: dtypes differ (${tensors.map(String).join(', ')})`);
  }
  return dt;
}

export function requireFloat(op: string, t: Tensor): void {
  if (!isFloat(t.dtype)) throw new GraphError(`${op}: needs a float tensor, got ${t}`);
}

export function requireRank(op: string, t: Tensor, rank: number | readonly number[]): void {
  const ok = typeof rank === 'number' ? t.rank === rank : rank.includes(t.rank);
  if (!ok) throw new GraphError(`${op}: expected rank ${rank}, got ${t}`);
}

/** Normalises possibly negative axes against a rank; sorted, unique. */
export function normAxes(op: string, axes: readonly number[], rank: number): number[] {
  const out = axes.map((a) => {
    if (!Number.isInteger(a) || a < -rank || a >= rank)
      throw new GraphError(`${op}: axis ${a} out of range for rank ${rank}`);
    return a < 0 ? a + rank : a;
  });
  const unique = [...new Set(out)].sort((a, b) => a - b);
  if (unique.length !== out.length) throw new GraphError(`${op}: repeated axis in [${axes.join(',')}]`);
  return unique;
}

export function normAxis(op: string, axis: number, rank: number): number {
  return normAxes(op, [axis], rank)[0];
}

/** Pairs [begin..., end...] in ONNX order from a shorthand. */
export function expandPads(op: string, pads: readonly number[] | undefined, spatial: number): number[] {
  if (pads === undefined) return new Array(2 * spatial).fill(0);
  if (pads.length === spatial) return [...pads, ...pads];
  if (pads.length === 2 * spatial) return [...pads];
  throw new GraphError(`${op}: pads needs ${spatial} or ${2 * spatial} values, got [${pads.join(',')}]`);
}

export function expandSpatial(
  op: string,
  name: string,
  v: readonly number[] | undefined,
  spatial: number,
  fill: number,
): number[] {
  if (v === undefined) return new Array(spatial).fill(fill);
  if (v.length !== spatial)
    throw new GraphError(`${op}: ${name} needs ${spatial} values, got [${v.join(',')}]`);
  return [...v];
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
