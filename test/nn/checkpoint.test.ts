import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  loadCheckpoint,
  loadCheckpointInto,
  readCheckpointInfo,
  readSafetensors,
  SafetensorsFile,
  saveCheckpoint,
  writeSafetensors,
} from '../../src/nn/checkpoint.js';
import { UserError } from '../../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-ckpt-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function random(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

/** Expects a UserError whose one-line message names the file and the given field. */
function assertUserError(fn: () => unknown, path: string, where: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof UserError, `not a UserError: ${error}`);
    assert.equal(error.file, path);
    assert.match(error.where ?? '', where);
    return true;
  });
}

describe('safetensors', () => {
  it('round-trips mixed dtypes with aligned offsets and a padded header', () => {
    const path = join(dir, 'mixed.safetensors');
    const f32 = random(6, 1);
    const i64 = BigInt64Array.from([1n, -2n, 3n]);
    const u8 = Uint8Array.from([7, 8, 9, 10, 11]);
    const f64 = Float64Array.from([Math.PI]);
    writeSafetensors(
      path,
      [
        { name: 'u8', shape: [5], data: u8 },
        { name: 'w', shape: [2, 3], data: f32 },
        { name: 'i64', shape: [3], data: i64 },
        { name: 'scalar', shape: [], data: f64 },
      ],
      { hello: 'world' },
    );
    const bytes = readFileSync(path);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    assert.equal((8 + headerLength) % 8, 0, 'data section starts 8-byte aligned');
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
    for (const [name, entry] of Object.entries(header) as [
      string,
      { dtype: string; data_offsets: number[] },
    ][]) {
      if (name === '__metadata__') continue;
      const width = { F64: 8, I64: 8, F32: 4, U8: 1 }[entry.dtype]!;
      assert.equal(entry.data_offsets[0] % width, 0, `${name} aligned`);
    }
    assert.deepEqual(header.__metadata__, { hello: 'world' });

    const { tensors, metadata } = readSafetensors(path);
    assert.deepEqual(metadata, { hello: 'world' });
    assert.deepEqual(tensors.get('w'), { dtype: 'F32', shape: [2, 3], data: f32 });
    assert.deepEqual(tensors.get('i64')!.data, i64);
    assert.deepEqual(tensors.get('u8')!.data, u8);
    assert.deepEqual(tensors.get('scalar'), { dtype: 'F64', shape: [], data: f64 });
    assert.equal(statSync(path).size, 8 + headerLength + 8 + 8 * 3 + 4 * 6 + 5);
  });

  it('reads one tensor on demand without touching the others', () => {
    const path = join(dir, 'lazy.safetensors');
    const a = random(1000, 2);
    writeSafetensors(path, [
      { name: 'a', shape: [10, 100], data: a },
      { name: 'b', shape: [3], data: random(3, 3) },
    ]);
    const file = SafetensorsFile.open(path);
    try {
      assert.deepEqual(file.names.sort(), ['a', 'b']);
      assert.deepEqual(file.entry('a').shape, [10, 100]);
      const into = new Float32Array(1000);
      assert.equal(file.readFloat32('a', into), into);
      assert.deepEqual(into, a);
      assertUserError(() => file.read('nope'), path, /tensor nope/);
      assertUserError(() => file.read('b', new Float32Array(4)), path, /tensor b/);
    } finally {
      file.close();
    }
  });

  it('rejects shape/data disagreement when writing', () => {
    assert.throws(() =>
      writeSafetensors(join(dir, 'x'), [{ name: 'a', shape: [2, 2], data: new Float32Array(3) }]),
    );
  });

  describe('malformed files give a UserError naming file and field', () => {
    const good = join(dir, 'good.safetensors');
    writeSafetensors(good, [{ name: 'w', shape: [4], data: random(4, 4) }], { k: 'v' });
    const goodBytes = readFileSync(good);
    const headerLength = Number(goodBytes.readBigUInt64LE(0));

    function variant(name: string, bytes: Uint8Array): string {
      const path = join(dir, name);
      writeFileSync(path, bytes);
      return path;
    }
    function withHeader(name: string, header: unknown, dataBytes = 16): string {
      let text = JSON.stringify(header);
      text += ' '.repeat((8 - ((8 + text.length) % 8)) % 8);
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(text.length));
      return variant(name, Buffer.concat([prefix, Buffer.from(text), Buffer.alloc(dataBytes)]));
    }

    it('missing file', () =>
      assertUserError(() => SafetensorsFile.open(join(dir, 'absent')), join(dir, 'absent'), /^$/));
    it('too short', () => {
      const path = variant('short', goodBytes.subarray(0, 5));
      assertUserError(() => SafetensorsFile.open(path), path, /header length/);
    });
    it('header length beyond the file', () => {
      const path = variant('cut-header', goodBytes.subarray(0, 8 + headerLength - 3));
      assertUserError(() => SafetensorsFile.open(path), path, /header length/);
    });
    it('truncated data', () => {
      const path = variant('cut-data', goodBytes.subarray(0, goodBytes.length - 1));
      assertUserError(() => SafetensorsFile.open(path), path, /tensor w/);
    });
    it('header not JSON', () => {
      const bytes = Buffer.from(goodBytes);
      bytes[8] = 0x7a; // 'z'
      const path = variant('bad-json', bytes);
      assertUserError(() => SafetensorsFile.open(path), path, /header/);
    });
    it('unknown dtype', () => {
      const path = withHeader('dtype', { w: { dtype: 'F33', shape: [4], data_offsets: [0, 16] } });
      assertUserError(() => SafetensorsFile.open(path), path, /tensor w/);
    });
    it('offsets disagree with shape', () => {
      const path = withHeader('offsets', { w: { dtype: 'F32', shape: [5], data_offsets: [0, 16] } });
      assertUserError(() => SafetensorsFile.open(path), path, /tensor w/);
    });
    it('bad shape', () => {
      const path = withHeader('shape', { w: { dtype: 'F32', shape: [-4], data_offsets: [0, 16] } });
      assertUserError(() => SafetensorsFile.open(path), path, /tensor w/);
    });
    it('metadata not strings', () => {
      const path = withHeader('meta', { __metadata__: { step: 3 } }, 0);
      assertUserError(() => SafetensorsFile.open(path), path, /__metadata__/);
    });
  });
});

describe('checkpoints', () => {
  const params = [
    { name: 'stem.weight', shape: [8, 1, 4, 4], values: random(128, 10) },
    { name: 'stem.bias', shape: [8], values: random(8, 11) },
    { name: 'head.gamma', shape: [1, 8, 1, 1], values: random(8, 12) },
  ];
  const optimizer = {
    m: params.map((p, i) => random(p.values.length, 20 + i)),
    v: params.map((p, i) => random(p.values.length, 30 + i)),
  };
  const path = join(dir, 'model.ckpt.safetensors');
  saveCheckpoint(path, {
    params,
    optimizer,
    step: 1234,
    modelName: 'peaknet-atto-1x32-h32',
    modelConfig: { dims: [40, 80, 160, 320], bifpn: { blocks: 1, features: 32 } },
    trainingConfig: { peakLr: 3e-4, batch: 4 },
  });

  it('keeps weights, moments, step and configs', () => {
    const loaded = loadCheckpoint(path);
    assert.equal(loaded.step, 1234);
    assert.equal(loaded.modelName, 'peaknet-atto-1x32-h32');
    assert.deepEqual(loaded.modelConfig, { dims: [40, 80, 160, 320], bifpn: { blocks: 1, features: 32 } });
    assert.deepEqual(loaded.trainingConfig, { peakLr: 3e-4, batch: 4 });
    assert.deepEqual(
      loaded.params.map((p) => p.name),
      params.map((p) => p.name),
    );
    loaded.params.forEach((p, i) => {
      assert.deepEqual(p.shape, params[i].shape);
      assert.deepEqual(p.values, params[i].values);
      assert.deepEqual(loaded.optimizer!.m[i], optimizer.m[i]);
      assert.deepEqual(loaded.optimizer!.v[i], optimizer.v[i]);
    });
    // Moments live under prefixed names, weights under their own (readable by other tools).
    const names = SafetensorsFile.open(path);
    assert.ok(
      names.has('stem.weight') && names.has('optimizer.m.stem.weight') && names.has('optimizer.v.head.gamma'),
    );
    names.close();
  });

  it('loads in place by name, in any order, ignoring extra tensors', () => {
    const targets = [params[2], params[0]].map((p) => ({ ...p, values: new Float32Array(p.values.length) }));
    const m = targets.map((p) => new Float32Array(p.values.length));
    const v = targets.map((p) => new Float32Array(p.values.length));
    const info = loadCheckpointInto(path, targets, { m, v });
    assert.equal(info.step, 1234);
    assert.deepEqual(targets[0].values, params[2].values);
    assert.deepEqual(targets[1].values, params[0].values);
    assert.deepEqual(m[1], optimizer.m[0]);
    assert.deepEqual(v[0], optimizer.v[2]);
  });

  it('names the tensor on a shape mismatch or a missing parameter', () => {
    const wrongShape = [{ name: 'stem.bias', shape: [9], values: new Float32Array(9) }];
    assertUserError(() => loadCheckpointInto(path, wrongShape), path, /tensor stem\.bias/);
    const missing = [{ name: 'neck.w', shape: [1], values: new Float32Array(1) }];
    assertUserError(() => loadCheckpointInto(path, missing), path, /tensor neck\.w/);
  });

  it('a weights-only checkpoint cannot resume the optimizer', () => {
    const weightsOnly = join(dir, 'weights.safetensors');
    saveCheckpoint(weightsOnly, { params, step: 5, modelName: 'm', modelConfig: {} });
    assert.equal(readCheckpointInfo(weightsOnly).hasOptimizer, false);
    const m = params.map((p) => new Float32Array(p.values.length));
    assertUserError(() => loadCheckpointInto(weightsOnly, params, { m, v: m }), weightsOnly, /has_optimizer/);
  });

  it('a plain safetensors file is not a checkpoint', () => {
    const plain = join(dir, 'plain.safetensors');
    writeSafetensors(plain, [{ name: 'w', shape: [1], data: new Float32Array(1) }], { format: 'pt' });
    assertUserError(() => readCheckpointInfo(plain), plain, /__metadata__\.format/);
    const bare = join(dir, 'bare.safetensors');
    writeSafetensors(bare, [{ name: 'w', shape: [1], data: new Float32Array(1) }]);
    assertUserError(() => readCheckpointInfo(bare), bare, /__metadata__\.format/);
  });

  it('a bad step in the metadata is named', () => {
    const badStep = join(dir, 'bad-step.safetensors');
    writeSafetensors(badStep, [{ name: 'w', shape: [1], data: new Float32Array(1) }], {
      format: 'braggflow-checkpoint',
      format_version: '1',
      step: 'many',
      model_name: 'm',
      model_config: '{}',
      param_names: '["w"]',
      has_optimizer: 'false',
    });
    assertUserError(() => readCheckpointInfo(badStep), badStep, /__metadata__\.step/);
  });
});
