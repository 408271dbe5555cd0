import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildTrainingGraph } from '../../src/nn/autodiff.js';
import { readSafetensors, saveCheckpoint, writeSafetensors } from '../../src/nn/checkpoint.js';
import { Rng } from '../../src/nn/init.js';
import { focalLoss } from '../../src/nn/losses.js';
import { buildPeakNet, paramCounts } from '../../src/nn/models/registry.js';
import { encodeModel } from '../../src/nn/onnx/emit.js';
import { createSession } from '../../src/nn/runtime.js';
import { repoRoot } from '../helpers.js';

const PYTHON = '/usr/bin/python3';
const haveTorch =
  existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
const needsTorch = haveTorch ? {} : { skip: `python3-torch is not installed for ${PYTHON}` };

/**
 * bench/torch/peaknet.py is written from the structure spec, independently of the TS models: equal
 * counts per component are evidence that both built the same network (and that the bench compares
 * like with like).
 */
const dir = mkdtempSync(join(tmpdir(), 'braggflow-torch-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('PyTorch PeakNet cross-check', needsTorch, () => {
  for (const name of ['peaknet-atto-1x32-h32', 'peaknet-atto-2x512']) {
    it(`${name}: parameter counts per component agree with the TS model`, () => {
      const run = spawnSync(PYTHON, [join(repoRoot, 'bench/torch/peaknet.py'), '--count', name], {
        encoding: 'utf8',
      });
      assert.equal(run.status, 0, run.stderr);
      const torch = JSON.parse(run.stdout);
      const ts = paramCounts(buildPeakNet(name).graph);
      for (const part of ['backbone', 'adapters', 'bifpn', 'head', 'total'] as const) {
        assert.equal(torch[part], ts[part], `${part}: torch ${torch[part]} vs TS ${ts[part]}`);
      }
    });
  }

  it('the same checkpoint gives the same logits in PyTorch and in TS/onnxruntime', async () => {
    const name = 'peaknet-atto-1x32-h32';
    const [batch, heightPx, widthPx] = [2, 64, 96];
    const model = buildPeakNet(name, { batch, heightPx, widthPx, seed: 7 });
    // Perturb every parameter so norms' scales, GRN (which starts as the identity) and the fusion
    // weights all matter.
    const rng = new Rng(3, 'perturb');
    const params = model.graph.params().map((info) => {
      const values = model.graph.getParam(info.name).data;
      for (let i = 0; i < values.length; i++) values[i] += 0.05 * (rng.nextU32() / 2 ** 32 - 0.5);
      return { name: info.name, shape: info.shape, values };
    });
    const weights = join(dir, 'weights.safetensors');
    saveCheckpoint(weights, { params, step: 0, modelName: name, modelConfig: model.config });
    const image = new Float32Array(batch * heightPx * widthPx);
    for (let i = 0; i < image.length; i++) image[i] = Math.sin(i * 0.37) + (i % 97 === 0 ? 5 : 0);
    const imagePath = join(dir, 'image.safetensors');
    writeSafetensors(imagePath, [{ name: 'image', shape: [batch, 1, heightPx, widthPx], data: image }]);

    const session = await createSession(encodeModel(model.toOnnx()), { intraOpThreads: 1 });
    const ours = (
      await session.run({
        image: { dataType: 'float32', dims: [batch, 1, heightPx, widthPx], values: image },
      })
    ).logits.values as Float32Array;
    await session.release();

    const out = join(dir, 'logits.safetensors');
    const script = join(repoRoot, 'bench/torch/peaknet.py');
    const run = spawnSync(
      PYTHON,
      [script, '--forward', name, '--weights', weights, '--image', imagePath, '--out', out, '--threads', '1'],
      { encoding: 'utf8' },
    );
    assert.equal(run.status, 0, run.stderr);
    const theirs = readSafetensors(out).tensors.get('logits')!;
    assert.deepEqual(theirs.shape, [batch, 2, heightPx, widthPx]);
    const values = theirs.data as Float32Array;
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < values.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(values[i] - ours[i]));
      maxAbs = Math.max(maxAbs, Math.abs(values[i]));
    }
    assert.ok(maxAbs > 1e-3, 'logits are not trivially zero');
    assert.ok(
      maxDiff <= 1e-4 * Math.max(1, maxAbs),
      `max |torch - ours| = ${maxDiff} (max |logit| ${maxAbs})`,
    );
  });

  it('the focal loss and every parameter gradient agree with PyTorch autograd', async () => {
    const name = 'peaknet-atto-1x32-h32';
    const [batch, heightPx, widthPx] = [2, 64, 64];
    const model = buildPeakNet(name, { batch, heightPx, widthPx, seed: 11, paramsAs: 'inputs' });
    const rng = new Rng(5, 'perturb');
    const params = model.graph.params().map((info) => {
      const values = model.graph.getParam(info.name).data;
      for (let i = 0; i < values.length; i++) values[i] += 0.05 * (rng.nextU32() / 2 ** 32 - 0.5);
      return { name: info.name, shape: info.shape, values };
    });
    const target = model.graph.input('target', [batch, heightPx, widthPx], 'uint8');
    const train = buildTrainingGraph(model.graph, { loss: focalLoss(model.logits, target) });

    const image = new Float32Array(batch * heightPx * widthPx);
    const labels = new Uint8Array(image.length);
    for (let i = 0; i < image.length; i++) {
      labels[i] = i % 53 === 0 ? 1 : 0;
      image[i] = Math.cos(i * 0.11) + 4 * labels[i];
    }
    const weights = join(dir, 'grad-weights.safetensors');
    saveCheckpoint(weights, { params, step: 0, modelName: name, modelConfig: model.config });
    const imagePath = join(dir, 'grad-image.safetensors');
    writeSafetensors(imagePath, [{ name: 'image', shape: [batch, 1, heightPx, widthPx], data: image }]);
    const targetPath = join(dir, 'grad-target.safetensors');
    writeSafetensors(targetPath, [{ name: 'target', shape: [batch, heightPx, widthPx], data: labels }]);

    const session = await createSession(encodeModel(train.spec), { intraOpThreads: 1 });
    const feeds: Record<
      string,
      { dataType: 'float32' | 'uint8'; dims: readonly number[]; values: Float32Array | Uint8Array }
    > = {
      image: { dataType: 'float32', dims: [batch, 1, heightPx, widthPx], values: image },
      target: { dataType: 'uint8', dims: [batch, heightPx, widthPx], values: labels },
    };
    for (const p of params) feeds[p.name] = { dataType: 'float32', dims: p.shape, values: p.values };
    const ours = await session.run(feeds);
    await session.release();

    const out = join(dir, 'grads.safetensors');
    const script = join(repoRoot, 'bench/torch/peaknet.py');
    const args = ['--forward', name, '--weights', weights, '--image', imagePath, '--target', targetPath];
    const run = spawnSync(PYTHON, [script, ...args, '--out', out, '--threads', '1'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const theirs = readSafetensors(out).tensors;

    const theirLoss = (theirs.get('loss')!.data as Float32Array)[0];
    const ourLoss = (ours.loss.values as Float32Array)[0];
    assert.ok(
      Math.abs(theirLoss - ourLoss) <= 1e-5 * Math.abs(theirLoss),
      `loss ${ourLoss} vs torch ${theirLoss}`,
    );
    let worst = { name: '', relative: 0 };
    for (const gradName of train.gradNames) {
      const a = ours[gradName].values as Float32Array;
      const b = theirs.get(gradName)?.data as Float32Array;
      assert.ok(b, `torch has no ${gradName}`);
      assert.equal(a.length, b.length, gradName);
      let diff = 0;
      let scale = 0;
      for (let i = 0; i < a.length; i++) {
        diff = Math.max(diff, Math.abs(a[i] - b[i]));
        scale = Math.max(scale, Math.abs(b[i]));
      }
      // Conv biases right before a per-channel GroupNorm have a true gradient of 0 (the norm removes
      // them): both sides give ~1e-9 noise there, so the scale has a floor.
      const relative = diff / Math.max(scale, 1e-5);
      if (relative > worst.relative) worst = { name: gradName, relative };
    }
    assert.ok(worst.relative < 1e-3, `${worst.name}: max |ours - torch| / max |torch| = ${worst.relative}`);
  });
});
