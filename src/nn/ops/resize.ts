/**
 * Bilinear Resize of [N, C, H, W] by integer factors up (2, 3, ...) or down (1/2, 1/3, ...), ONNX
 * half_pixel coordinates (PyTorch's interpolate(mode='bilinear', align_corners=False)).
 *
 * VJP (documented rule), one spatial axis at a time since bilinear is separable:
 *  - up by s: output o samples input coordinate (o + 0.5)/s - 0.5, clamped to [0, L-1]. That equals
 *    interpolating the edge-padded input, so the adjoint is (a) a strided correlation of the gradient with
 *    the tent kernel K[t] = max(0, 1 - |t - (s-1)/2| / s) onto L+2 padded positions, then (b) folding the
 *    two edge positions back onto the first and last row.
 *  - down by s: output o samples coordinate s*o + (s-1)/2 (never clamped): one tap for odd s, the mean of
 *    two for even s. The adjoint scatters back with a ConvTranspose of stride s (kernel one-hot or halves).
 */
import { attr, GraphError, type Op, type Tensor } from '../graph.js';
import { conv, convTranspose } from './conv.js';
import { apply1, requireFloat, requireRank } from './core.js';
import { add } from './elementwise.js';
import { reduceSum } from './reduce.js';
import { concat, reshape, slice } from './shape.js';

interface ResizeAttrs {
  /** [scaleH, scaleW]; each an integer >= 1 or the reciprocal of one. */
  scales: readonly number[];
}

/** { up: s } or { down: s } for a scale, or undefined for 1. */
function factor(scale: number): { up: boolean; s: number } | undefined {
  if (scale === 1) return undefined;
  if (scale > 1 && Number.isInteger(scale)) return { up: true, s: scale };
  const inv = 1 / scale;
  const s = Math.round(inv);
  if (scale < 1 && Math.abs(inv - s) < 1e-9) return { up: false, s };
  return { up: false, s: Number.NaN };
}

const resizeOp: Op<ResizeAttrs> = {
  type: 'Resize',
  infer([x], { scales }) {
    requireRank('resize', x, 4);
    requireFloat('resize', x);
    const shape = [...x.shape];
    scales.forEach((scale, i) => {
      const f = factor(scale);
      if (f && Number.isNaN(f.s))
        throw new GraphError(`resize: scale ${scale} is not an integer or 1/integer`);
      const len = x.shape[2 + i];
      if (f && !f.up && len % f.s !== 0)
        throw new GraphError(`resize: axis ${2 + i} of ${x} is not divisible by ${f.s}`);
      shape[2 + i] = f ? (f.up ? len * f.s : len / f.s) : len;
    });
    return [{ shape, dtype: x.dtype }];
  },
  lower(n, ctx) {
    ctx.emit(
      'Resize',
      [ctx.name(n.inputs[0]), '', ctx.float32([1, 1, ...n.attrs.scales])],
      [ctx.name(n.outputs[0])],
      { mode: attr.string('linear'), coordinate_transformation_mode: attr.string('half_pixel') },
    );
  },
  vjp(n, [g]) {
    if (!g) return [undefined];
    const x = n.inputs[0];
    let grad = g;
    n.attrs.scales.forEach((scale, i) => {
      const f = factor(scale);
      if (f) grad = f.up ? upAdjoint(grad, 2 + i, f.s, x.shape[2 + i]) : downAdjoint(grad, 2 + i, f.s);
    });
    return [grad];
  },
};

export function resize(x: Tensor, options: { scales: readonly number[] }): Tensor {
  if (options.scales.length !== 2)
    throw new GraphError(`resize: give [scaleH, scaleW], got [${options.scales.join(',')}]`);
  return apply1(resizeOp, [x], { scales: options.scales });
}

/** A [1, 1, kh, kw] kernel that is `taps` along `axis` (2 or 3) and 1 wide across. */
function axisKernel(like: Tensor, taps: readonly number[], axis: number): Tensor {
  const values = like.dtype === 'float64' ? Float64Array.from(taps) : Float32Array.from(taps);
  return like.graph.constant(
    values,
    axis === 2 ? [1, 1, taps.length, 1] : [1, 1, 1, taps.length],
    like.dtype,
  );
}

function asChannels(g: Tensor): Tensor {
  const [n, c, h, w] = g.shape;
  return reshape(g, [n * c, 1, h, w]);
}

function upAdjoint(g: Tensor, axis: number, s: number, len: number): Tensor {
  const [n, c] = g.shape;
  const centre = (s - 1) / 2;
  const taps: number[] = [];
  let t0 = Number.NaN;
  for (let t = -s; t <= 2 * s; t++) {
    const k = 1 - Math.abs(t - centre) / s;
    if (k <= 1e-12) continue;
    if (Number.isNaN(t0)) t0 = t;
    taps.push(k);
  }
  // Correlation output m' = 0..len+1 is padded position m' - 1: begin pad s - t0, end pad to len + 2.
  const begin = s - t0;
  const end = taps.length + s - begin;
  const pads = axis === 2 ? [begin, 0, end, 0] : [0, begin, 0, end];
  const strides = axis === 2 ? [s, 1] : [1, s];
  const gp = conv(asChannels(g), axisKernel(g, taps, axis), undefined, { strides, pads });
  const padded = reshape(gp, [n, c, ...gp.shape.slice(2)]);
  if (padded.shape[axis] !== len + 2)
    throw new GraphError(`resize grad: internal size ${padded.shape[axis]} != ${len + 2}`);
  const part = (from: number, to: number) => slice(padded, { axes: [axis], starts: [from], ends: [to] });
  if (len === 1) return reduceSum(padded, [axis], true);
  const head = add(part(0, 1), part(1, 2));
  const tail = add(part(len, len + 1), part(len + 1, len + 2));
  return concat(len > 2 ? [head, part(2, len), tail] : [head, tail], axis);
}

function downAdjoint(g: Tensor, axis: number, s: number): Tensor {
  const [n, c] = g.shape;
  const taps = new Array<number>(s).fill(0);
  if (s % 2 === 1) taps[(s - 1) / 2] = 1;
  else {
    taps[s / 2 - 1] = 0.5;
    taps[s / 2] = 0.5;
  }
  const strides = axis === 2 ? [s, 1] : [1, s];
  const gx = convTranspose(asChannels(g), axisKernel(g, taps, axis), undefined, { strides });
  return reshape(gx, [n, c, ...gx.shape.slice(2)]);
}
