import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeModel, encodeModel, writeModel } from '../src/nn/onnx/emit.js';
import type { OnnxModelSpec } from '../src/nn/onnx/spec.js';
import { createSession, hostTensor } from '../src/nn/runtime.js';
import { UserError } from '../src/util/errors.js';

/** y = Relu(Conv(x, w, b)) * scale + Cast(shift): exercises ints, floats, tensors and initialisers. */
function smallSpec(): OnnxModelSpec {
  const w = new Float32Array(2 * 1 * 3 * 3);
  for (let i = 0; i < w.length; i++) w[i] = ((i * 7) % 5) - 2;
  const big = new Float32Array(600).fill(0.5); // > 1 KiB, so it moves to external data
  return {
    graphName: 'small',
    opset: 17,
    metadata: { model: 'test' },
    inputs: [{ name: 'x', dataType: 'float32', dims: ['batch', 1, 4, 4] }],
    outputs: [{ name: 'y', dataType: 'float32', dims: ['batch', 2, 4, 4] }],
    initializers: [
      { name: 'w', dataType: 'float32', dims: [2, 1, 3, 3], values: w },
      { name: 'b', dataType: 'float32', dims: [2], values: Float32Array.from([0.5, -1]) },
      { name: 'big', dataType: 'float32', dims: [600], values: big },
      { name: 'shift', dataType: 'int64', dims: [1], values: BigInt64Array.from([3n]) },
    ],
    nodes: [
      {
        opType: 'Conv',
        inputs: ['x', 'w', 'b'],
        outputs: ['c'],
        attributes: { pads: { type: 'ints', value: [1, 1, 1, 1] }, group: { type: 'int', value: 1 } },
      },
      { opType: 'Relu', inputs: ['c'], outputs: ['r'] },
      {
        opType: 'Constant',
        inputs: [],
        outputs: ['scale'],
        attributes: {
          value: {
            type: 'tensor',
            value: { name: 'scale', dataType: 'float32', dims: [], values: Float32Array.of(2) },
          },
        },
      },
      { opType: 'Mul', inputs: ['r', 'scale'], outputs: ['m'] },
      {
        opType: 'Cast',
        inputs: ['shift'],
        outputs: ['shiftF'],
        attributes: { to: { type: 'int', value: 1 } },
      },
      {
        opType: 'ReduceMean',
        inputs: ['big'],
        outputs: ['bigMean'],
        attributes: { keepdims: { type: 'int', value: 0 } },
      },
      { opType: 'Add', inputs: ['m', 'shiftF'], outputs: ['a'] },
      { opType: 'Add', inputs: ['a', 'bigMean'], outputs: ['y'] },
    ],
  };
}

/** The same computation written out by hand. */
function reference(x: Float32Array, spec: OnnxModelSpec): Float32Array {
  const w = spec.initializers[0].values as Float32Array;
  const b = spec.initializers[1].values as Float32Array;
  const out = new Float32Array(2 * 16);
  for (let o = 0; o < 2; o++)
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 4; j++) {
        let sum = b[o];
        for (let di = -1; di <= 1; di++)
          for (let dj = -1; dj <= 1; dj++) {
            const ii = i + di;
            const jj = j + dj;
            if (ii >= 0 && ii < 4 && jj >= 0 && jj < 4)
              sum += x[ii * 4 + jj] * w[o * 9 + (di + 1) * 3 + (dj + 1)];
          }
        out[o * 16 + i * 4 + j] = Math.max(sum, 0) * 2 + 3 + 0.5;
      }
  return out;
}

const x = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i) * 3);

test('an emitted model runs in onnxruntime and matches a hand computation', async () => {
  const spec = smallSpec();
  const session = await createSession(encodeModel(spec));
  assert.deepEqual(session.inputNames, ['x']);
  const { y } = await session.run({ x: hostTensor('float32', [1, 1, 4, 4], x) });
  assert.deepEqual(y.dims, [1, 2, 4, 4]);
  const expected = reference(x, spec);
  for (let i = 0; i < expected.length; i++)
    assert.ok(Math.abs((y.values[i] as number) - expected[i]) < 1e-5, `at ${i}`);
  await session.release();
});

test('decodeModel inverts encodeModel', () => {
  const spec = smallSpec();
  const back = decodeModel(encodeModel(spec));
  assert.equal(back.opset, 17);
  assert.equal(back.graphName, 'small');
  assert.deepEqual(back.metadata, { model: 'test' });
  assert.deepEqual(back.inputs, spec.inputs);
  assert.deepEqual(
    back.nodes.map((n) => [n.opType, n.inputs, n.outputs]),
    spec.nodes.map((n) => [n.opType, n.inputs, n.outputs]),
  );
  assert.deepEqual(back.nodes[0].attributes?.pads, { type: 'ints', value: [1, 1, 1, 1] });
  const scale = back.nodes[2].attributes?.value;
  assert.ok(scale?.type === 'tensor' && scale.value.values[0] === 2);
  for (const [i, t] of spec.initializers.entries()) {
    assert.equal(back.initializers[i].name, t.name);
    assert.deepEqual(
      Array.from(back.initializers[i].values as ArrayLike<unknown>),
      Array.from(t.values as ArrayLike<unknown>),
    );
  }
});

test('external data: weights go to a side file, the model loads from its path and computes the same', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bf-onnx-'));
  const path = join(dir, 'small.onnx');
  const spec = smallSpec();
  const written = writeModel(spec, path, { externalData: 'always' });
  assert.equal(written.externalDataPath, `${path}.data`);
  assert.ok(statSync(`${path}.data`).size >= 600 * 4);
  assert.ok(written.modelBytes < 1500, 'big tensor is not inline');
  const back = decodeModel(readFileSync(path), path);
  assert.deepEqual(
    Array.from(back.initializers[2].values as Float32Array),
    Array.from(spec.initializers[2].values as Float32Array),
  );
  const session = await createSession(path);
  const { y } = await session.run({ x: hostTensor('float32', [1, 1, 4, 4], x) });
  const expected = reference(x, spec);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs((y.values[i] as number) - expected[i]) < 1e-5);
  await session.release();
});

test('corrupt model bytes are a UserError, not a crash', async () => {
  assert.throws(() => decodeModel(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x0f), 'bad.onnx'), UserError);
  await assert.rejects(createSession(Uint8Array.of(1, 2, 3)), UserError);
});

test('hostTensor rejects a size that does not match its dims', () => {
  assert.throws(() => hostTensor('float32', [2, 3], new Float32Array(5)), /needs 6 values/);
});
