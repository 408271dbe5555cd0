/**
 * Conv and ConvTranspose (any number of spatial axes), with their VJPs.
 *
 * Conv: y = conv(x, w) + b.
 *   dx: stride 1: a Conv of dy with the spatially flipped kernel (pads d(k-1) - p); otherwise
 *       ConvTranspose(dy, w) with the same attributes and an output_padding that restores x's size when
 *       the forward conv ignored trailing rows. 1x1 convs: a MatMul.
 *   dw: a Conv over the data with batch and channel axes swapped, where the output gradient plays the
 *       kernel: dw[m, c, k] = sum_{n, o} dy[n, m, o] x[n, c, o*s + k*d - p], i.e. a conv with stride d and
 *       dilation s (see `convWeightGrad` for the one layout that serves groups = 1, grouped and depthwise);
 *       1x1 convs: a batched MatMul; non-overlapping (kernel = stride) convs: space-to-depth + Gemm.
 *   db: ReduceSum(dy) over batch and spatial axes.
 * ConvTranspose is the adjoint of Conv in its input: its dx is a Conv, and its dw the same weight-gradient
 * conv with the roles of input and output gradient exchanged.
 */
import { attr, GraphError, type Op, shapeStr, type Tensor } from '../graph.js';
import { apply1, expandPads, expandSpatial, requireFloat, sameDtype } from './core.js';
import { gemm, matmul } from './matmul.js';
import { reduceSum } from './reduce.js';
import { reshape, slice, transpose } from './shape.js';

export interface ConvOptions {
  strides?: readonly number[];
  /** Per spatial axis (symmetric) or ONNX order [begin..., end...]. */
  pads?: readonly number[];
  dilations?: readonly number[];
  groups?: number;
}

export interface ConvAttrs {
  strides: readonly number[];
  pads: readonly number[];
  dilations: readonly number[];
  groups: number;
}

export interface ConvTransposeAttrs extends ConvAttrs {
  outputPadding: readonly number[];
}

/**
 * Lowering choices for conv gradients, picked by measurement (bench/nn-lowering.bench.ts); switchable so
 * the bench can compare them.
 */
export const convGradLowering = {
  /** 1x1, stride 1, unpadded, ungrouped convs: gradients as MatMuls instead of convs. */
  pointwiseAsMatMul: true,
  /** Weight gradients of non-overlapping (kernel = stride) convs by space-to-depth + Gemm. */
  patchifyAsMatMul: true,
  /** Stride-1 input gradients as a Conv with the flipped kernel instead of ConvTranspose. */
  inputGradAsFlippedConv: true,
};

function normalizeConv(op: string, x: Tensor, w: Tensor, o: ConvOptions): ConvAttrs {
  const spatial = x.rank - 2;
  if (spatial < 1) throw new GraphError(`${op}: input must be [N, C, spatial...], got ${x}`);
  if (w.rank !== x.rank) throw new GraphError(`${op}: weight ${w} and input ${x} differ in rank`);
  const groups = o.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1) throw new GraphError(`${op}: bad groups ${groups}`);
  return {
    strides: expandSpatial(op, 'strides', o.strides, spatial, 1),
    pads: expandPads(op, o.pads, spatial),
    dilations: expandSpatial(op, 'dilations', o.dilations, spatial, 1),
    groups,
  };
}

function convAttrs(a: ConvAttrs) {
  return {
    strides: attr.ints(a.strides),
    pads: attr.ints(a.pads),
    dilations: attr.ints(a.dilations),
    group: attr.int(a.groups),
  };
}

/** Output size of one conv axis. */
function convOut(len: number, k: number, s: number, d: number, pb: number, pe: number): number {
  return Math.floor((len + pb + pe - d * (k - 1) - 1) / s) + 1;
}

function checkBias(op: string, b: Tensor | undefined, channels: number): void {
  if (b && (b.rank !== 1 || b.shape[0] !== channels))
    throw new GraphError(`${op}: bias ${b} must be [${channels}]`);
}

// ---- Conv ----------------------------------------------------------------------------------------

const convOp: Op<ConvAttrs> = {
  type: 'Conv',
  infer(ins, a) {
    const [x, w, b] = ins;
    const dtype = sameDtype('conv', ins);
    requireFloat('conv', x);
    const [n, c] = x.shape;
    const [m, cg] = w.shape;
    if (c !== cg * a.groups || m % a.groups !== 0) {
      throw new GraphError(
        `conv: input ${shapeStr(x.shape)} and weight ${shapeStr(w.shape)} do not match with groups=${a.groups} (need C = weight[1] * groups, M divisible by groups)`,
      );
    }
    checkBias('conv', b, m);
    const spatial = x.shape.slice(2).map((len, i) => {
      const out = convOut(
        len,
        w.shape[2 + i],
        a.strides[i],
        a.dilations[i],
        a.pads[i],
        a.pads[i + x.rank - 2],
      );
      if (out < 1)
        throw new GraphError(
          `conv: kernel ${shapeStr(w.shape)} does not fit input ${shapeStr(x.shape)} with these pads`,
        );
      return out;
    });
    return [{ shape: [n, m, ...spatial], dtype }];
  },
  lower(n, ctx) {
    ctx.emit('Conv', n.inputs.map(ctx.name), [ctx.name(n.outputs[0])], convAttrs(n.attrs));
  },
  vjp(n, [g]) {
    if (!g) return n.inputs.map(() => undefined);
    const [x, w, b] = n.inputs;
    const grads: (Tensor | undefined)[] = [
      convInputGrad(g, w, x.shape, n.attrs),
      convWeightGrad(x, g, w.shape, n.attrs),
    ];
    if (b)
      grads.push(
        reduceSum(
          g,
          g.shape.map((_, i) => i).filter((i) => i !== 1),
        ),
      );
    return grads;
  },
};

export function conv(x: Tensor, w: Tensor, b?: Tensor, options: ConvOptions = {}): Tensor {
  return apply1(convOp, b ? [x, w, b] : [x, w], normalizeConv('conv', x, w, options));
}

// ---- ConvTranspose -------------------------------------------------------------------------------

function convTransposeOut(len: number, k: number, a: ConvTransposeAttrs, i: number, spatial: number): number {
  return (
    (len - 1) * a.strides[i] -
    a.pads[i] -
    a.pads[i + spatial] +
    a.dilations[i] * (k - 1) +
    1 +
    a.outputPadding[i]
  );
}

const convTransposeOp: Op<ConvTransposeAttrs> = {
  type: 'ConvTranspose',
  infer(ins, a) {
    const [x, w, b] = ins;
    const dtype = sameDtype('convTranspose', ins);
    requireFloat('convTranspose', x);
    const [n, c] = x.shape;
    if (w.shape[0] !== c || c % a.groups !== 0) {
      throw new GraphError(
        `convTranspose: input ${shapeStr(x.shape)} and weight ${shapeStr(w.shape)} do not match with groups=${a.groups} (need weight[0] = C)`,
      );
    }
    const m = w.shape[1] * a.groups;
    checkBias('convTranspose', b, m);
    const spatial = x.rank - 2;
    const out = x.shape.slice(2).map((len, i) => convTransposeOut(len, w.shape[2 + i], a, i, spatial));
    a.outputPadding.forEach((p, i) => {
      if (p < 0 || (p >= a.strides[i] && p >= a.dilations[i])) {
        throw new GraphError(`convTranspose: output_padding ${p} must be below stride or dilation`);
      }
    });
    if (out.some((d) => d < 1)) throw new GraphError(`convTranspose: empty output ${shapeStr(out)} for ${x}`);
    return [{ shape: [n, m, ...out], dtype }];
  },
  lower(n, ctx) {
    const a = n.attrs;
    const attrs: Record<string, ReturnType<typeof attr.ints>> = convAttrs(a);
    if (a.outputPadding.some((p) => p !== 0)) attrs.output_padding = attr.ints(a.outputPadding);
    ctx.emit('ConvTranspose', n.inputs.map(ctx.name), [ctx.name(n.outputs[0])], attrs);
  },
  vjp(n, [g]) {
    if (!g) return n.inputs.map(() => undefined);
    const [x, w, b] = n.inputs;
    const a = n.attrs;
    // y = conv^T(x): dx = conv(dy, w); the forward conv maps y's shape onto x's exactly.
    const convA: ConvAttrs = { strides: a.strides, pads: a.pads, dilations: a.dilations, groups: a.groups };
    const gx = apply1(convOp, [g, w], convA);
    // <dy, conv^T_w(x)> = <conv_w(dy), x>: the weight gradient of a conv with input dy and output grad x.
    const gw = convWeightGrad(g, x, w.shape, convA);
    const grads: (Tensor | undefined)[] = [gx, gw];
    if (b)
      grads.push(
        reduceSum(
          g,
          g.shape.map((_, i) => i).filter((i) => i !== 1),
        ),
      );
    return grads;
  },
};

export function convTranspose(
  x: Tensor,
  w: Tensor,
  b?: Tensor,
  options: ConvOptions & { outputPadding?: readonly number[] } = {},
): Tensor {
  const base = normalizeConv('convTranspose', x, w, options);
  const outputPadding = expandSpatial('convTranspose', 'outputPadding', options.outputPadding, x.rank - 2, 0);
  return apply1(convTransposeOp, b ? [x, w, b] : [x, w], { ...base, outputPadding });
}

// ---- Gradient helpers ----------------------------------------------------------------------------

/** Minimum input channels for the space-to-depth weight gradient of non-overlapping convs. */
const PATCHIFY_MIN_CHANNELS = 8;

function isPatchify(xShape: readonly number[], wShape: readonly number[], a: ConvAttrs): boolean {
  return (
    convGradLowering.patchifyAsMatMul &&
    a.groups === 1 &&
    xShape[1] >= PATCHIFY_MIN_CHANNELS &&
    wShape.slice(2).every((k, i) => k === a.strides[i] && xShape[2 + i] % k === 0) &&
    a.pads.every((p) => p === 0) &&
    a.dilations.every((d) => d === 1)
  );
}

function isPointwise(wShape: readonly number[], a: ConvAttrs): boolean {
  return (
    a.groups === 1 &&
    wShape.slice(2).every((k) => k === 1) &&
    a.strides.every((s) => s === 1) &&
    a.pads.every((p) => p === 0)
  );
}

/** dx of y = conv(x, w): a ConvTranspose (or, for stride 1, a Conv with the flipped kernel). */
export function convInputGrad(g: Tensor, w: Tensor, xShape: readonly number[], a: ConvAttrs): Tensor {
  const spatial = xShape.length - 2;
  const [n, c] = xShape;
  const m = w.shape[0];
  if (convGradLowering.pointwiseAsMatMul && isPointwise(w.shape, a)) {
    // dx[n] (C, P) = W^T (C, M) @ dy[n] (M, P).
    const p = g.size / (n * m);
    const wt = transpose(reshape(w, [m, c]), [1, 0]);
    return reshape(matmul(wt, reshape(g, [n, m, p])), xShape);
  }
  // Stride 1: dx[i] = sum_k w[K-1-k] dy[i + k d - (d (K-1) - p_begin)], a Conv whose pads are d (K-1) - p.
  const flippedPads = [...a.pads.keys()].map(
    (j) => a.dilations[j % spatial] * (w.shape[2 + (j % spatial)] - 1) - a.pads[j],
  );
  if (
    convGradLowering.inputGradAsFlippedConv &&
    a.strides.every((s) => s === 1) &&
    flippedPads.every((p) => p >= 0)
  ) {
    const G = a.groups;
    const og = m / G;
    const cg = w.shape[1];
    const ks = w.shape.slice(2);
    let wf = slice(w, { axes: ks.map((_, i) => 2 + i), starts: ks.map(() => -1), steps: ks.map(() => -1) });
    if (cg !== 1 || og !== 1) {
      // [G, og, cg, k...] -> [G, cg, og, k...] -> [C, og, k...]: in/out channels exchanged within each group.
      const perm = [0, 2, 1, ...ks.map((_, i) => 3 + i)];
      wf = reshape(transpose(reshape(wf, [G, og, cg, ...ks]), perm), [G * cg, og, ...ks]);
    }
    return apply1(convOp, [g, wf], {
      strides: a.strides,
      pads: flippedPads,
      dilations: a.dilations,
      groups: G,
    });
  }
  const outputPadding = xShape.slice(2).map((len, i) => {
    const k = w.shape[2 + i];
    const full =
      (g.shape[2 + i] - 1) * a.strides[i] - a.pads[i] - a.pads[i + spatial] + a.dilations[i] * (k - 1) + 1;
    return len - full;
  });
  return apply1(convTransposeOp, [g, w], { ...a, outputPadding });
}

/**
 * dw of y = conv(x, w) given dy, as a conv over x with dy as the kernel (stride <-> dilation swapped).
 * With N batch, C = G*ig input and M = G*og output channels, one layout serves every groups setting:
 *   x  [N, G, ig, H, W] -> [ig, G*N, H, W]   (batch = ig, channels = (group, sample))
 *   dy [N, M, Ho, Wo]   -> [M, N, Ho, Wo]    (the kernel: og outputs per group, N inputs)
 *   conv with groups G  -> [ig, M, k]        (the sum over samples happens inside the conv's GEMM)
 *   -> transpose to [M, ig, k]               (a free reshape for depthwise, ig = 1)
 * For groups = 1 this is the classic x^T conv dy^T. Measured on depthwise 7x7 (N 4, C 96, 64x64): 38 ms,
 * against 52 ms with [1, N*C] groups N*C plus a ReduceSum over N, 66 ms for 49 Slice/Mul/ReduceSum taps,
 * 82 ms for 7 row convs (bench/nn-lowering.bench.ts has the block-level numbers).
 */
export function convWeightGrad(x: Tensor, g: Tensor, wShape: readonly number[], a: ConvAttrs): Tensor {
  const spatial = x.rank - 2;
  const [n, c] = x.shape;
  const m = g.shape[1];
  const G = a.groups;
  const ig = c / G;
  const ks = wShape.slice(2);
  const sp = (k: number) => [...Array(spatial).keys()].map((i) => k + i);

  if (convGradLowering.pointwiseAsMatMul && isPointwise(wShape, a)) {
    // dw (M, C) = sum_n dy[n] (M, P) @ x[n]^T (P, C).
    const p = x.size / (n * c);
    const xt = transpose(reshape(x, [n, c, p]), [0, 2, 1]);
    const perImage = matmul(reshape(g, [n, m, p]), xt);
    return reshape(reduceSum(perImage, [0]), wShape);
  }

  if (isPatchify(x.shape, wShape, a)) {
    // Non-overlapping windows (ConvNeXt stem and downsampling layers): space-to-depth, then one GEMM
    // dw (M, C*k) = dy (M, N*P) @ patches (C*k, N*P)^T. 1.6x faster than the swapped conv for a 2x2
    // stride-2 96 -> 192 layer; slower when C is tiny (the 1-channel stem), hence the channel floor.
    const outSp = g.shape.slice(2);
    const split = [n, c, ...outSp.flatMap((o, i) => [o, ks[i]])];
    const perm = [1, ...sp(0).map((i) => 3 + 2 * i), 0, ...sp(0).map((i) => 2 + 2 * i)];
    const kSize = ks.reduce((p, k) => p * k, 1);
    const pSize = outSp.reduce((p, o) => p * o, 1);
    const patches = reshape(transpose(reshape(x, split), perm), [c * kSize, n * pSize]);
    const gm = reshape(transpose(g, [1, 0, ...sp(2)]), [m, n * pSize]);
    return reshape(gemm(gm, patches, undefined, { transB: true }), wShape);
  }

  // Swapped conv: stride d, dilation s, same begin pads; trim end pads so the output is exactly k.
  const pads = [...a.pads];
  let needSlice = false;
  for (let i = 0; i < spatial; i++) {
    const len = x.shape[2 + i];
    const excess =
      len +
      a.pads[i] +
      a.pads[spatial + i] -
      1 -
      a.strides[i] * (g.shape[2 + i] - 1) -
      a.dilations[i] * (ks[i] - 1);
    const end = a.pads[spatial + i] - excess;
    pads[spatial + i] = Math.max(0, end);
    if (end < 0) needSlice = true;
  }
  const swapped = { strides: a.dilations, dilations: a.strides, pads, groups: G };
  const xr = reshape(transpose(reshape(x, [n, G, ig, ...x.shape.slice(2)]), [2, 1, 0, ...sp(3)]), [
    ig,
    G * n,
    ...x.shape.slice(2),
  ]);
  const gt = transpose(g, [1, 0, ...sp(2)]);
  let out = apply1(convOp, [xr, gt], swapped);
  if (needSlice) out = slice(out, { axes: sp(2), starts: ks.map(() => 0), ends: ks });
  return transpose(out, [1, 0, ...sp(2)]);
}
