import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildTrainingGraph, gradients } from '../src/nn/autodiff.js';
import { Graph, GraphError, type Op } from '../src/nn/graph.js';
import { constant, kaimingUniform, normal, Rng, truncNormal, zeros } from '../src/nn/init.js';
import { encodeModel } from '../src/nn/onnx/emit.js';
import * as op from '../src/nn/ops/index.js';
import { createSession, hostTensor } from '../src/nn/runtime.js';

test('shape mismatches throw a GraphError naming the op and the shapes', () => {
  const g = new Graph('bad');
  const a = g.input('a', [2, 3]);
  const b = g.input('b', [4]);
  assert.throws(
    () => op.add(a, b),
    (e: Error) =>
      e instanceof GraphError &&
      /Add/.test(e.message) &&
      /\[2,3\]/.test(e.message) &&
      /\[4\]/.test(e.message),
  );
  const x = g.input('x', [1, 3, 8, 8]);
  const w = g.param('w', [4, 2, 3, 3], zeros());
  assert.throws(() => op.conv(x, w), /conv: input \[1,3,8,8\] and weight \[4,2,3,3\]/);
  assert.throws(() => op.matmul(a, a), /matmul: inner dims differ: \[2,3\] x \[2,3\]/);
  assert.throws(() => op.reshape(a, [5]), /reshape: cannot reshape .*\[2,3\] to \[5\]/);
  assert.throws(() => op.resize(x, { scales: [1.5, 2] }), /resize: scale 1.5/);
  const other = new Graph('other').input('z', [2, 3]);
  assert.throws(() => op.add(a, other), /belongs to graph other/);
});

test('broadcasting follows numpy and scalars lift to the other operand dtype', () => {
  const g = new Graph('bc');
  const a = g.input('a', [2, 1, 4]);
  const b = g.input('b', [3, 1]);
  assert.deepEqual(op.add(a, b).shape, [2, 3, 4]);
  assert.deepEqual(op.where(op.greater(a, 0), a, b).shape, [2, 3, 4]);
  const d = g.input('d', [3], 'float64');
  assert.equal(op.mul(d, 2).dtype, 'float64');
  assert.throws(() => op.add(a, d), /dtypes differ/);
});

test('toOnnx prunes what the outputs do not need and lists only needed inputs', () => {
  const g = new Graph('prune');
  const x = g.input('x', [2, 2]);
  const unusedInput = g.input('unused', [2]);
  const w = g.param('w', [2, 2], constant(0.5));
  const dead = g.param('dead', [2], zeros());
  const y = op.matmul(x, w);
  op.exp(op.add(unusedInput, dead)); // a dead branch
  g.output('y', y);
  const spec = g.toOnnx();
  assert.deepEqual(
    spec.nodes.map((n) => n.opType),
    ['MatMul'],
  );
  assert.deepEqual(
    spec.inputs.map((i) => i.name),
    ['x'],
  );
  assert.deepEqual(
    spec.initializers.map((i) => i.name),
    ['w'],
  );
  const training = g.toOnnx({ params: 'inputs' });
  assert.deepEqual(
    training.inputs.map((i) => i.name),
    ['x', 'w'],
  );
  assert.equal(training.initializers.length, 0);
});

test('a 2-op graph gives the hand-computed result in onnxruntime (params as initializers or inputs)', async () => {
  const g = new Graph('two');
  const x = g.input('x', [2, 3]);
  const w = g.param('w', [3, 2], normal(1));
  g.output('y', op.relu(op.matmul(x, w)));
  const xs = Float32Array.from([1, -2, 3, 0.5, 0.25, -1]);
  const wv = g.getParam('w').data;
  const expected = new Float32Array(4);
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 2; j++) {
      let s = 0;
      for (let k = 0; k < 3; k++) s += xs[i * 3 + k] * wv[k * 2 + j];
      expected[i * 2 + j] = Math.max(0, s);
    }
  }
  const inference = await createSession(encodeModel(g.toOnnx()));
  const out1 = (await inference.run({ x: hostTensor('float32', [2, 3], xs) })).y;
  assert.deepEqual(out1.dims, [2, 2]);
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(Number(out1.values[i]) - expected[i]) < 1e-5);
  const fed = await createSession(encodeModel(g.toOnnx({ params: 'inputs' })));
  const out2 = (await fed.run({ x: hostTensor('float32', [2, 3], xs), w: hostTensor('float32', [3, 2], wv) }))
    .y;
  assert.deepEqual([...out2.values], [...out1.values]);
  await inference.release();
  await fed.release();
});

test('params: lazy, deterministic per (seed, name), counted without allocation', () => {
  const build = (seed: number, extraFirst: boolean) => {
    const g = new Graph('p', seed);
    if (extraFirst) g.param('extra', [10], normal(1));
    g.param('a.weight', [64, 3, 3, 3], kaimingUniform({ a: Math.sqrt(5) }));
    g.param('a.bias', [64], zeros());
    return g;
  };
  const g1 = build(7, false);
  assert.equal(g1.paramCount(), 64 * 27 + 64);
  assert.deepEqual(
    g1.params().map((p) => [p.name, p.size]),
    [
      ['a.weight', 1728],
      ['a.bias', 64],
    ],
  );
  assert.equal(g1.getParam('a.weight').initialized, false);
  const w1 = g1.getParam('a.weight').data;
  // Adding another param before it changes nothing; another seed changes everything.
  assert.deepEqual(build(7, true).getParam('a.weight').data, w1);
  assert.notDeepEqual(build(8, false).getParam('a.weight').data, w1);
  const bound = 1 / Math.sqrt(27); // PyTorch default conv init
  assert.ok(w1.every((v) => Math.abs(v) <= bound));
  assert.ok(Math.max(...w1) > 0.9 * bound);
  // A huge param costs nothing until touched.
  const big = new Graph('big');
  big.param('w', [673, 1000, 1000], zeros());
  assert.equal(big.paramCount(), 673e6);
  assert.equal(big.getParam('w').initialized, false);
});

test('truncNormal stays inside its bounds and has about the right spread', () => {
  const out = new Float32Array(20000);
  truncNormal(0.02).fill(out, [out.length], new Rng(1, 't'));
  assert.ok(out.every((v) => Math.abs(v) <= 0.04));
  const mean = out.reduce((a, b) => a + b, 0) / out.length;
  const std = Math.sqrt(out.reduce((a, b) => a + (b - mean) ** 2, 0) / out.length);
  // std of N(0, s) truncated at +-2s is 0.88 s.
  assert.ok(Math.abs(std - 0.88 * 0.02) < 0.001, `std ${std}`);
});

test('autodiff: accumulates reused tensors, prunes branches, rejects non-scalar loss and non-differentiable paths', async () => {
  const g = new Graph('ad');
  const x = g.input('x', [3]);
  const w = g.param('w', [3], constant(2));
  const unusedW = g.param('unused', [3], constant(1));
  // loss = sum(w*x + w*w): dL/dw = x + 2w
  const loss = op.reduceSum(op.add(op.mul(w, x), op.mul(w, w)));
  const metric = op.reduceMean(x);
  op.exp(unusedW); // not on the loss path
  const train = buildTrainingGraph(g, { loss, metrics: { mean_x: metric } });
  assert.deepEqual(train.wrtNames, ['w', 'unused']);
  assert.deepEqual(train.unused, ['unused']);
  assert.deepEqual(
    train.spec.outputs.map((o) => o.name),
    ['loss', 'mean_x', 'grad/w', 'grad/unused'],
  );
  assert.ok(!train.spec.nodes.some((n) => n.opType === 'Exp'));
  const session = await createSession(encodeModel(train.spec));
  const out = await session.run({
    x: hostTensor('float32', [3], Float32Array.from([1, 2, 3])),
    w: hostTensor('float32', [3], Float32Array.from([2, 2, 2])),
  });
  assert.deepEqual([...out['grad/w'].values], [5, 6, 7]);
  assert.deepEqual([...out['grad/unused'].values], [0, 0, 0]);
  assert.equal(out.loss.values[0], 2 * 6 + 12);
  await session.release();

  assert.throws(() => gradients(op.mul(x, w), [w]), /loss must be a scalar/);
  // Through an index the gradient is zero (none), not an error.
  const viaArgMax = op.reduceSum(op.cast(op.argMax(op.mul(x, w), 0), 'float32'));
  assert.deepEqual(gradients(viaArgMax, [w]), [undefined]);
  // An op without a VJP on the path is an error naming it.
  const opaque: Op<object> = {
    type: 'Opaque',
    infer: ([t]) => [{ shape: t.shape, dtype: t.dtype }],
    lower: (n, ctx) => ctx.emit('Identity', [ctx.name(n.inputs[0])], [ctx.name(n.outputs[0])]),
  };
  const viaOpaque = op.reduceSum(g.apply(opaque, [op.mul(x, w)], {})[0]);
  assert.throws(() => gradients(viaOpaque, [w]), /Opaque#\d+ is not differentiable/);
});

test('forward export is unchanged by building a training graph on the same graph', () => {
  const g = new Graph('same');
  const x = g.input('x', [2, 4]);
  const w = g.param('w', [4, 4], normal(1));
  const y = op.gelu(op.matmul(x, w));
  g.output('y', y);
  const before = g.toOnnx().nodes.length;
  buildTrainingGraph(g, { loss: op.reduceMean(y) });
  assert.equal(g.toOnnx().nodes.length, before);
});

/** erf to ~1.5e-7 (Abramowitz & Stegun 7.1.26): enough to check GELU's gradient to 1e-6. */
function erfApprox(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-x * x);
  return x >= 0 ? y : -y;
}

test('GELU gradient from the forward output is exact at 0, tiny and large |x|', async () => {
  const xs = Float32Array.from([0, 1e-30, -1e-19, 1e-8, -1e-3, 0.5, -1, 2, -3, 5, -10, 10, -30]);
  const g = new Graph('gelu');
  const x = g.input('x', [xs.length]);
  const train = buildTrainingGraph(g, { loss: op.reduceSum(op.gelu(x)), wrt: [x] });
  const session = await createSession(encodeModel(train.spec));
  const grad = (await session.run({ x: hostTensor('float32', [xs.length], xs) }))['grad/x'].values;
  await session.release();
  xs.forEach((v, i) => {
    const expected =
      0.5 * (1 + erfApprox(v / Math.SQRT2)) + (v * Math.exp((-v * v) / 2)) / Math.sqrt(2 * Math.PI);
    assert.ok(Number.isFinite(Number(grad[i])), `gelu'(${v}) is ${grad[i]}`);
    assert.ok(Math.abs(Number(grad[i]) - expected) <= 1e-6, `gelu'(${v}) = ${grad[i]}, expected ${expected}`);
  });
});
