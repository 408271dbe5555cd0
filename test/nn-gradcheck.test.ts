/**
 * Every VJP rule against central finite differences, all run through onnxruntime (see the harness for
 * dtypes and tolerances). Shapes are small and random per seed; each case asserts worstRatio <= 1.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Graph, Op, Tensor } from '../src/nn/graph.js';
import type { Rng } from '../src/nn/init.js';
import * as op from '../src/nn/ops/index.js';
import { type CheckOptions, gradcheck, type InputSpec } from './nn-gradcheck-harness.js';

type Build = (g: Graph, x: Tensor[], dtype: 'float32' | 'float64') => Tensor;

const positive = (r: Rng) => 0.5 + 2 * r.uniform();
/** Normal values kept at least 0.1 away from 0 (kinks of relu/abs). */
const awayFromZero = (r: Rng) => {
  const v = r.normal();
  return v >= 0 ? v + 0.1 : v - 0.1;
};
/** Distinct values (no ties for max pooling / reduceMax), in shuffled order. */
const distinct = (() => {
  let k = 0;
  return (r: Rng) => ((k++ * 0.6180339887) % 7) - 3.5 + 0.01 * r.uniform();
})();

const cases: { name: string; inputs: InputSpec[]; build: Build; options?: CheckOptions }[] = [
  {
    name: 'add (broadcast)',
    inputs: [{ shape: [2, 3, 4] }, { shape: [3, 1] }],
    build: (_g, [a, b]) => op.add(a, b),
  },
  {
    name: 'sub (broadcast)',
    inputs: [{ shape: [4] }, { shape: [2, 3, 4] }],
    build: (_g, [a, b]) => op.sub(a, b),
  },
  {
    name: 'mul (broadcast)',
    inputs: [{ shape: [2, 1, 4] }, { shape: [3, 1] }],
    build: (_g, [a, b]) => op.mul(a, b),
  },
  {
    name: 'div (broadcast)',
    inputs: [{ shape: [2, 3] }, { shape: [3], gen: positive }],
    build: (_g, [a, b]) => op.div(a, b),
  },
  {
    name: 'pow (tensor exponent)',
    inputs: [{ shape: [2, 3], gen: positive }, { shape: [3] }],
    build: (_g, [a, b]) => op.pow(a, b),
  },
  {
    name: 'pow (scalar exponent)',
    inputs: [{ shape: [5], gen: positive }],
    build: (_g, [a]) => op.pow(a, 2.5),
  },
  { name: 'neg', inputs: [{ shape: [3, 2] }], build: (_g, [a]) => op.neg(a) },
  { name: 'exp', inputs: [{ shape: [3, 2] }], build: (_g, [a]) => op.exp(a) },
  { name: 'log', inputs: [{ shape: [3, 2], gen: positive }], build: (_g, [a]) => op.log(a) },
  { name: 'sqrt', inputs: [{ shape: [3, 2], gen: positive }], build: (_g, [a]) => op.sqrt(a) },
  { name: 'abs', inputs: [{ shape: [3, 4], gen: awayFromZero }], build: (_g, [a]) => op.abs(a) },
  { name: 'relu', inputs: [{ shape: [3, 4], gen: awayFromZero }], build: (_g, [a]) => op.relu(a) },
  { name: 'sigmoid', inputs: [{ shape: [3, 4] }], build: (_g, [a]) => op.sigmoid(a) },
  { name: 'tanh', inputs: [{ shape: [3, 4] }], build: (_g, [a]) => op.tanh(a) },
  { name: 'erf', inputs: [{ shape: [3, 4] }], build: (_g, [a]) => op.erf(a) },
  { name: 'gelu', inputs: [{ shape: [3, 4] }], build: (_g, [a]) => op.gelu(a) },
  {
    name: 'clip',
    inputs: [{ shape: [4, 5], gen: (r) => 3 * r.normal() + 0.05 }],
    build: (_g, [a]) => op.clip(a, -1, 1.5),
  },
  {
    name: 'where (broadcast, mask input)',
    inputs: [{ shape: [2, 3], dtype: 'bool', constant: true }, { shape: [2, 3] }, { shape: [3] }],
    build: (_g, [c, a, b]) => op.where(c, a, b),
  },
  {
    name: 'where with greater/less/equal masks',
    inputs: [{ shape: [4, 3], gen: awayFromZero }],
    build: (_g, [a]) =>
      op.add(op.where(op.greater(a, 0), a, op.mul(a, 0.1)), op.where(op.less(a, -0.5), a, 0)),
  },
  {
    // float32 -> float64 -> float32 is exact; the other way round would quantise under the FD step.
    name: 'cast float->float',
    inputs: [{ shape: [3] }],
    build: (_g, [a]) => op.mul(op.cast(op.mul(op.cast(a, 'float64'), 2), 'float32'), a),
    options: { dtype: 'float32' },
  },
  { name: 'identity', inputs: [{ shape: [3] }], build: (_g, [a]) => op.identity(a) },
  {
    name: 'matmul (batched, broadcast)',
    inputs: [{ shape: [2, 3, 4] }, { shape: [4, 5] }],
    build: (_g, [a, b]) => op.matmul(a, b),
  },
  {
    name: 'matmul (batch broadcast left)',
    inputs: [{ shape: [1, 3, 4] }, { shape: [2, 4, 2] }],
    build: (_g, [a, b]) => op.matmul(a, b),
  },
  {
    name: 'gemm transA transB alpha beta',
    inputs: [{ shape: [4, 3] }, { shape: [5, 4] }, { shape: [5] }],
    build: (_g, [a, b, c]) => op.gemm(a, b, c, { transA: true, transB: true, alpha: 0.7, beta: 1.3 }),
  },
  {
    name: 'gemm plain with [m,n] bias',
    inputs: [{ shape: [3, 4] }, { shape: [4, 2] }, { shape: [3, 2] }],
    build: (_g, [a, b, c]) => op.gemm(a, b, c),
  },
  { name: 'reduceSum', inputs: [{ shape: [2, 3, 4] }], build: (_g, [a]) => op.reduceSum(a, [0, 2], true) },
  { name: 'reduceMean', inputs: [{ shape: [2, 3, 4] }], build: (_g, [a]) => op.reduceMean(a, [1]) },
  { name: 'reduceL2', inputs: [{ shape: [2, 3, 4] }], build: (_g, [a]) => op.reduceL2(a, [-1]) },
  {
    name: 'reduceMax',
    inputs: [{ shape: [2, 3, 4], gen: distinct }],
    build: (_g, [a]) => op.reduceMax(a, [1, 2]),
  },
  { name: 'softmax', inputs: [{ shape: [2, 5, 3] }], build: (_g, [a]) => op.softmax(a, 1) },
  { name: 'logSoftmax', inputs: [{ shape: [2, 5, 3] }], build: (_g, [a]) => op.logSoftmax(a, 1) },
  {
    name: 'layerNorm (last 2 axes, affine)',
    inputs: [{ shape: [2, 3, 4, 5] }, { shape: [4, 5] }, { shape: [4, 5] }],
    build: (_g, [x, w, b]) => op.layerNorm(x, w, b, { axis: -2 }),
  },
  {
    name: 'channelNorm (NCHW, affine)',
    inputs: [{ shape: [2, 4, 3, 3] }, { shape: [4] }, { shape: [4] }],
    build: (_g, [x, w, b]) => op.channelNorm(x, w, b),
  },
  {
    name: 'groupNorm',
    inputs: [{ shape: [2, 6, 3, 2] }, { shape: [6] }, { shape: [6] }],
    build: (_g, [x, w, b]) => op.groupNorm(x, 3, w, b),
  },
  {
    name: 'conv 3x3 pad 1 + bias',
    inputs: [{ shape: [2, 3, 6, 5] }, { shape: [4, 3, 3, 3] }, { shape: [4] }],
    build: (_g, [x, w, b]) => op.conv(x, w, b, { pads: [1, 1] }),
  },
  {
    name: 'conv stride 2, odd size (output_padding), asymmetric pads',
    inputs: [{ shape: [2, 2, 7, 8] }, { shape: [3, 2, 3, 2] }],
    build: (_g, [x, w]) => op.conv(x, w, undefined, { strides: [2, 3], pads: [1, 0, 0, 1] }),
  },
  {
    name: 'conv dilation 2',
    inputs: [{ shape: [1, 2, 9, 9] }, { shape: [2, 2, 3, 3] }],
    build: (_g, [x, w]) => op.conv(x, w, undefined, { dilations: [2, 2], pads: [2, 2] }),
  },
  {
    name: 'conv stride 2 + dilation 2 (trailing rows unused)',
    inputs: [{ shape: [2, 2, 10, 9] }, { shape: [3, 2, 3, 3] }],
    build: (_g, [x, w]) => op.conv(x, w, undefined, { strides: [2, 2], dilations: [2, 2] }),
  },
  {
    name: 'conv depthwise 7x7 pad 3 + bias',
    inputs: [{ shape: [2, 4, 9, 8] }, { shape: [4, 1, 7, 7] }, { shape: [4] }],
    build: (_g, [x, w, b]) => op.conv(x, w, b, { pads: [3, 3], groups: 4 }),
  },
  {
    name: 'conv depthwise multiplier 2, stride 2',
    inputs: [{ shape: [2, 3, 7, 7] }, { shape: [6, 1, 3, 3] }],
    build: (_g, [x, w]) => op.conv(x, w, undefined, { strides: [2, 2], pads: [1, 1], groups: 3 }),
  },
  {
    name: 'conv grouped (groups 2, 4 -> 6)',
    inputs: [{ shape: [2, 4, 6, 6] }, { shape: [6, 2, 3, 3] }],
    build: (_g, [x, w]) => op.conv(x, w, undefined, { pads: [1, 1], groups: 2 }),
  },
  {
    name: 'conv 1x1 (pointwise MatMul lowering)',
    inputs: [{ shape: [2, 5, 4, 3] }, { shape: [3, 5, 1, 1] }, { shape: [3] }],
    build: (_g, [x, w, b]) => op.conv(x, w, b),
  },
  {
    name: 'conv patchify 4x4 stride 4',
    inputs: [{ shape: [2, 1, 8, 12] }, { shape: [5, 1, 4, 4] }, { shape: [5] }],
    build: (_g, [x, w, b]) => op.conv(x, w, b, { strides: [4, 4] }),
  },
  {
    name: 'conv 2x2 stride 2, 8 channels (space-to-depth weight gradient)',
    inputs: [{ shape: [2, 8, 4, 6] }, { shape: [3, 8, 2, 2] }, { shape: [3] }],
    build: (_g, [x, w, b]) => op.conv(x, w, b, { strides: [2, 2] }),
  },
  {
    name: 'convTranspose stride 2, output_padding, bias',
    inputs: [{ shape: [2, 3, 4, 3] }, { shape: [3, 2, 3, 3] }, { shape: [2] }],
    build: (_g, [x, w, b]) =>
      op.convTranspose(x, w, b, { strides: [2, 2], pads: [1, 1], outputPadding: [1, 0] }),
  },
  {
    name: 'convTranspose grouped',
    inputs: [{ shape: [1, 4, 3, 3] }, { shape: [4, 1, 2, 2] }],
    build: (_g, [x, w]) => op.convTranspose(x, w, undefined, { strides: [2, 2], groups: 2 }),
  },
  {
    name: 'resize bilinear up x2',
    inputs: [{ shape: [2, 2, 3, 4] }],
    build: (_g, [x]) => op.resize(x, { scales: [2, 2] }),
  },
  {
    name: 'resize bilinear up x3 / x4 (and a length-1 axis)',
    inputs: [{ shape: [1, 2, 1, 3] }],
    build: (_g, [x]) => op.resize(x, { scales: [3, 4] }),
  },
  {
    name: 'resize bilinear down x2 and x3',
    inputs: [{ shape: [2, 2, 8, 9] }],
    build: (_g, [x]) => op.resize(x, { scales: [0.5, 1 / 3] }),
  },
  {
    name: 'averagePool 2x2',
    inputs: [{ shape: [2, 3, 4, 6] }],
    build: (_g, [x]) => op.averagePool(x, { kernel: [2, 2] }),
  },
  {
    name: 'averagePool 3x3 stride 2 pad 1 (count excludes pad), odd size',
    inputs: [{ shape: [1, 2, 7, 6] }],
    build: (_g, [x]) => op.averagePool(x, { kernel: [3, 3], strides: [2, 2], pads: [1, 1] }),
  },
  {
    name: 'maxPool 3x3 stride 2 (overlapping)',
    inputs: [{ shape: [2, 2, 7, 7], gen: distinct }],
    build: (_g, [x]) => op.maxPool(x, { kernel: [3, 3], strides: [2, 2] }),
  },
  {
    name: 'concat / split / slice / pad',
    inputs: [{ shape: [2, 3, 4] }, { shape: [2, 2, 4] }],
    build: (_g, [a, b]) => {
      const c = op.concat([a, b], 1);
      const [p, q] = op.split(c, 2, [1, 3]);
      const s = op.slice(q, { axes: [1, 2], starts: [1, 0], ends: [-1, 2] });
      return op.add(op.pad(s, [0, 1, 1, 0, 0, 0]), op.sum([op.reduceSum(p), op.reduceMean(q)]));
    },
  },
  {
    name: 'reshape / transpose / expand / unsqueeze',
    inputs: [{ shape: [2, 3, 4] }, { shape: [3, 1] }],
    build: (_g, [a, b]) =>
      op.mul(
        op.transpose(op.reshape(a, [6, 4]), [1, 0]),
        op.reshape(op.expand(op.unsqueeze(b, [0]), [2, 3, 1]), [1, 6]),
      ),
  },
  {
    name: 'tensor used three times (accumulation)',
    inputs: [{ shape: [3, 3] }],
    build: (_g, [a]) => op.add(op.mul(a, a), op.matmul(a, op.exp(a))),
  },
];

for (const c of cases) {
  test(`gradcheck: ${c.name}`, async (t) => {
    const result = await gradcheck(c.inputs, c.build, c.options);
    t.diagnostic(`${result.dtype}: worst relative error ${result.worstRel.toExponential(2)}`);
    assert.ok(result.worstRatio <= 1, `${c.name} (${result.dtype}):\n${result.details.join('\n')}`);
  });
}

test('gradcheck catches a wrong VJP rule (harness self-test)', async () => {
  // Exp with the gradient of x^2/2 instead of exp: the harness must flag it.
  const badExp: Op<object> = {
    type: 'BadExp',
    infer: ([x]) => [{ shape: x.shape, dtype: x.dtype }],
    lower: (n, ctx) => ctx.emit('Exp', [ctx.name(n.inputs[0])], [ctx.name(n.outputs[0])]),
    vjp: (n, [g]) => [g && op.mul(g, n.inputs[0])],
  };
  const result = await gradcheck([{ shape: [4] }], (g, [a]) => g.apply(badExp, [a], {})[0]);
  assert.ok(result.worstRatio > 1, result.details.join('\n'));
});

test('gradcheck: the alternative conv-gradient lowerings (ConvTranspose dx, conv-based 1x1 grads)', async () => {
  const saved = { ...op.convGradLowering };
  Object.assign(op.convGradLowering, {
    pointwiseAsMatMul: false,
    inputGradAsFlippedConv: false,
    patchifyAsMatMul: false,
  });
  try {
    const convCases: [InputSpec[], Build][] = [
      [
        [{ shape: [2, 4, 6, 5] }, { shape: [4, 1, 3, 3] }],
        (_g, [x, w]) => op.conv(x, w, undefined, { pads: [1, 1], groups: 4 }),
      ],
      [[{ shape: [2, 3, 4, 4] }, { shape: [5, 3, 1, 1] }], (_g, [x, w]) => op.conv(x, w)],
      [
        [{ shape: [1, 4, 5, 5] }, { shape: [6, 2, 3, 3] }],
        (_g, [x, w]) => op.conv(x, w, undefined, { groups: 2 }),
      ],
    ];
    for (const [inputs, build] of convCases) {
      const result = await gradcheck(inputs, build);
      assert.ok(result.worstRatio <= 1, result.details.join('\n'));
    }
  } finally {
    Object.assign(op.convGradLowering, saved);
  }
});
