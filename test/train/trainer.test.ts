import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { saveCheckpoint } from '../../src/nn/checkpoint.js';
import type { PeakNetConfig } from '../../src/nn/models/config.js';
import { encodeModel } from '../../src/nn/onnx/emit.js';
import { createSession } from '../../src/nn/runtime.js';
import { type Batch, loadPeakNetCheckpoint, Trainer, type TrainingConfig } from '../../src/train/trainer.js';
import { UserError } from '../../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'braggflow-trainer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A PeakNet-shaped network small enough to train in milliseconds per step. */
const TINY: PeakNetConfig = {
  name: 'tiny-test',
  backbone: 'custom',
  dims: [8, 16, 24, 32],
  depths: [1, 1, 1, 1],
  bifpnBlocks: 1,
  bifpnChannels: 8,
  headChannels: 8,
  inChannels: 1,
  numClasses: 2,
};
const B = 2;
const H = 64;
const W = 64;
const TRAINING: Partial<TrainingConfig> = {
  batch: B,
  heightPx: H,
  widthPx: W,
  schedule: { peakLr: 1e-2, warmupSteps: 2, totalSteps: 40, minLr: 1e-3 },
};

/** Noise plus bright 3x3 spots, labelled as peaks. */
function syntheticBatch(seed: number): Batch {
  let s = seed >>> 0;
  const rnd = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const image = new Float32Array(B * H * W);
  const target = new Uint8Array(B * H * W);
  for (let i = 0; i < image.length; i++) image[i] = rnd() * 0.3;
  for (let k = 0; k < 20; k++) {
    const b = Math.floor(rnd() * B);
    const y = 3 + Math.floor(rnd() * (H - 6));
    const x = 3 + Math.floor(rnd() * (W - 6));
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const i = b * H * W + (y + dy) * W + x + dx;
        image[i] += 3;
        target[i] = 1;
      }
    }
  }
  return { image, target };
}

describe('Trainer', () => {
  it('reduces the focal loss on a synthetic batch within 20 steps', async () => {
    const trainer = await Trainer.create({ model: TINY, training: TRAINING, intraOpThreads: 1 });
    try {
      const batch = syntheticBatch(1);
      const losses: number[] = [];
      for (let k = 0; k < 20; k++) {
        const result = await trainer.trainStep(batch);
        assert.equal(result.step, k + 1);
        assert.ok(Number.isFinite(result.loss) && Number.isFinite(result.gradNorm));
        assert.equal(result.skipped, false);
        losses.push(result.loss);
      }
      assert.ok(losses[19] < 0.5 * losses[0], `loss went ${losses[0]} -> ${losses[19]}`);
      assert.ok(Math.min(...losses.slice(15)) < Math.min(...losses.slice(0, 5)));
    } finally {
      await trainer.release();
    }
  });

  it('resuming from a checkpoint reproduces the uninterrupted run exactly', async () => {
    const batches = [syntheticBatch(2), syntheticBatch(3), syntheticBatch(4)];
    const path = join(dir, 'resume.safetensors');
    const straight = await Trainer.create({ model: TINY, training: TRAINING, intraOpThreads: 1 });
    let resumed: Trainer | undefined;
    try {
      for (let k = 0; k < 3; k++) await straight.trainStep(batches[k % 3]);
      straight.save(path);
      const savedWeights = straight.weights.map((p) => Float32Array.from(p.values));
      const straightLosses: number[] = [];
      for (let k = 3; k < 6; k++) straightLosses.push((await straight.trainStep(batches[k % 3])).loss);

      resumed = await Trainer.resume(path, { intraOpThreads: 1 });
      assert.equal(resumed.step, 3);
      assert.deepEqual(resumed.training, straight.training);
      resumed.weights.forEach((p, i) => {
        assert.deepEqual(p.values, savedWeights[i]);
      });
      const resumedLosses: number[] = [];
      for (let k = 3; k < 6; k++) resumedLosses.push((await resumed.trainStep(batches[k % 3])).loss);

      assert.deepEqual(resumedLosses, straightLosses);
      assert.equal(resumed.step, straight.step);
      resumed.weights.forEach((p, i) => {
        assert.deepEqual(p.values, straight.weights[i].values, p.name);
      });
      resumed.optimizer.m.forEach((m, i) => {
        assert.deepEqual(m, straight.optimizer.m[i]);
      });
    } finally {
      await straight.release();
      await resumed?.release();
    }
  });

  it('a checkpoint loads into a model of another batch and image size for inference', async () => {
    const path = join(dir, 'sizes.safetensors');
    const trainer = await Trainer.create({ model: TINY, training: TRAINING, intraOpThreads: 1 });
    try {
      await trainer.trainStep(syntheticBatch(5));
      trainer.save(path);
      // Trained at 2 x 64 x 64; served at 1 x 96 x 128.
      const size = { batch: 1, heightPx: 96, widthPx: 128 };
      const loaded = loadPeakNetCheckpoint(path, size);
      for (const p of trainer.weights) assert.deepEqual(loaded.graph.getParam(p.name).data, p.values, p.name);
      const image = new Float32Array(96 * 128).map((_, i) => ((i * 7919) % 101) / 101);
      const fromFile = await createSession(encodeModel(loaded.toOnnx()), { intraOpThreads: 1 });
      const fromTrainer = await trainer.inferenceSession(size);
      try {
        const feeds = { image: { dataType: 'float32' as const, dims: [1, 1, 96, 128], values: image } };
        const a = (await fromFile.run(feeds)).logits;
        const b = (await fromTrainer.run(feeds)).logits;
        assert.deepEqual(a.dims, [1, 2, 96, 128]);
        assert.ok((a.values as Float32Array).every(Number.isFinite));
        assert.deepEqual(a.values, b.values);
      } finally {
        await fromFile.release();
        await fromTrainer.release();
      }
    } finally {
      await trainer.release();
    }
  });

  it('refuses to resume from a weights-only checkpoint', async () => {
    const path = join(dir, 'weights-only.safetensors');
    saveCheckpoint(path, {
      params: [{ name: 'w', shape: [1], values: new Float32Array(1) }],
      step: 0,
      modelName: TINY.name,
      modelConfig: TINY,
    });
    await assert.rejects(Trainer.resume(path), (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.equal(error.file, path);
      assert.match(error.where ?? '', /has_optimizer/);
      return true;
    });
  });
});
