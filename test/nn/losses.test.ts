import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTrainingGraph } from '../../src/nn/autodiff.js';
import { Graph } from '../../src/nn/graph.js';
import { Rng } from '../../src/nn/init.js';
import { distillationLoss, focalLoss } from '../../src/nn/losses.js';
import { encodeModel } from '../../src/nn/onnx/emit.js';
import { createSession, type HostTensor, hostTensor } from '../../src/nn/runtime.js';

const [B, C, H, W] = [2, 2, 3, 4];
const PIXELS = B * H * W;

/** Value of logits[b, c, y, x] in a flat NCHW array. */
const at = (values: ArrayLike<number>, b: number, c: number, p: number) => values[(b * C + c) * H * W + p];

function logSoftmax2(z0: number, z1: number): [number, number] {
  const m = Math.max(z0, z1);
  const lse = m + Math.log(Math.exp(z0 - m) + Math.exp(z1 - m));
  return [z0 - lse, z1 - lse];
}

/** Focal loss written out per pixel in float64: -alpha_t (1 - p_t)^2 log p_t, mean over pixels. */
function referenceFocal(logits: ArrayLike<number>, labels: ArrayLike<number>, alpha = [0.25, 0.75]): number {
  let sum = 0;
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < H * W; p++) {
      const logp = logSoftmax2(at(logits, b, 0, p), at(logits, b, 1, p));
      const t = labels[b * H * W + p];
      sum += -alpha[t] * (1 - Math.exp(logp[t])) ** 2 * logp[t];
    }
  }
  return sum / PIXELS;
}

function referenceDistill(student: ArrayLike<number>, teacher: ArrayLike<number>, T = 2) {
  let mse = 0;
  for (let i = 0; i < student.length; i++) mse += (student[i] - teacher[i]) ** 2;
  mse /= student.length;
  let kl = 0;
  const argmax: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < H * W; p++) {
      const lt = logSoftmax2(at(teacher, b, 0, p) / T, at(teacher, b, 1, p) / T);
      const ls = logSoftmax2(at(student, b, 0, p) / T, at(student, b, 1, p) / T);
      kl += Math.exp(lt[0]) * (lt[0] - ls[0]) + Math.exp(lt[1]) * (lt[1] - ls[1]);
      argmax.push(at(teacher, b, 1, p) > at(teacher, b, 0, p) ? 1 : 0);
    }
  }
  kl = (T * T * kl) / PIXELS;
  const focal = referenceFocal(student, argmax);
  return { mse, kl, focal, loss: 0.4 * mse + 0.4 * kl + 0.2 * focal };
}

function randomLogits(rng: Rng, scale: number): Float32Array {
  const values = Float32Array.from({ length: B * C * H * W }, () => scale * rng.normal());
  // A few very confident pixels, right and wrong: a naive softmax-then-log would give -inf/NaN here.
  values[0] = 60;
  values[H * W] = -60;
  values[5] = -45;
  values[H * W + 5] = 45;
  return values;
}

async function runSpec(spec: ReturnType<Graph['toOnnx']>, feeds: Record<string, HostTensor>) {
  const session = await createSession(encodeModel(spec), { intraOpThreads: 1 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

const scalar = (t: HostTensor) => (t.values as Float32Array)[0];

/** Central differences of a float64 reference function at x, one coordinate at a time. */
function numericGrad(f: (x: Float64Array) => number, x: Float64Array, eps = 1e-5): Float64Array {
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const original = x[i];
    x[i] = original + eps;
    const up = f(x);
    x[i] = original - eps;
    const down = f(x);
    x[i] = original;
    grad[i] = (up - down) / (2 * eps);
  }
  return grad;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string) {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tol * (1 + Math.abs(expected[i])),
      `${what}[${i}]: ${actual[i]} vs ${expected[i]}`,
    );
  }
}

describe('focal loss', () => {
  const rng = new Rng(11, 'focal');
  const logits = randomLogits(rng, 2);
  const labels = Array.from({ length: PIXELS }, () => (rng.uniform() < 0.4 ? 1 : 0));
  labels[0] = 1; // confidently wrong pixel: large loss, still finite
  labels[5] = 1; // confidently right pixel

  it('matches the per-pixel float64 reference, from int64 labels and from a float mask alike', async () => {
    const g = new Graph('focal');
    const x = g.input('logits', [B, C, H, W]);
    const labelInput = g.input('labels', [B, H, W], 'int64');
    const maskInput = g.input('mask', [B, 1, H, W]);
    const spec = g.toOnnx({
      outputs: { fromLabels: focalLoss(x, labelInput), fromMask: focalLoss(x, maskInput) },
    });
    const out = await runSpec(spec, {
      logits: hostTensor('float32', [B, C, H, W], logits),
      labels: hostTensor('int64', [B, H, W], BigInt64Array.from(labels.map(BigInt))),
      mask: hostTensor('float32', [B, 1, H, W], Float32Array.from(labels)),
    });
    const expected = referenceFocal(logits, labels);
    assert.ok(expected > 1, 'the confidently wrong pixel dominates');
    assertClose([scalar(out.fromLabels), scalar(out.fromMask)], [expected, expected], 1e-5, 'focal');
  });

  it('gradient w.r.t. the logits matches central differences of the reference', async () => {
    const small = randomLogits(rng, 1.5).map((v) => Math.max(-8, Math.min(8, v)));
    const g = new Graph('focal-grad');
    const x = g.input('logits', [B, C, H, W]);
    const target = g.input('labels', [B, H, W], 'int64');
    const train = buildTrainingGraph(g, { loss: focalLoss(x, target), wrt: [x] });
    const out = await runSpec(train.spec, {
      logits: hostTensor('float32', [B, C, H, W], small),
      labels: hostTensor('int64', [B, H, W], BigInt64Array.from(labels.map(BigInt))),
    });
    const expected = numericGrad((z) => referenceFocal(z, labels), Float64Array.from(small));
    assertClose(out['grad/logits'].values as Float32Array, expected, 2e-5, 'dfocal/dlogits');
  });
});

describe('distillation loss', () => {
  const rng = new Rng(12, 'distill');
  const student = randomLogits(rng, 2);
  const teacher = Float32Array.from({ length: student.length }, () => 3 * rng.normal());

  it('matches 0.4 MSE + 0.4 T^2 KL + 0.2 focal(argmax teacher) in float64', async () => {
    const g = new Graph('distill');
    const s = g.input('student', [B, C, H, W]);
    const t = g.input('teacher', [B, C, H, W]);
    const terms = distillationLoss(s, t);
    const out = await runSpec(g.toOnnx({ outputs: { ...terms } }), {
      student: hostTensor('float32', [B, C, H, W], student),
      teacher: hostTensor('float32', [B, C, H, W], teacher),
    });
    const expected = referenceDistill(student, teacher);
    for (const key of ['mse', 'kl', 'focal', 'loss'] as const) {
      assertClose([scalar(out[key])], [expected[key]], 1e-5, key);
    }
  });

  it("gradient w.r.t. the student's logits matches central differences of the reference", async () => {
    const g = new Graph('distill-grad');
    const s = g.input('student', [B, C, H, W]);
    const t = g.input('teacher', [B, C, H, W]);
    const { loss } = distillationLoss(s, t);
    const small = student.map((v) => Math.max(-8, Math.min(8, v)));
    const train = buildTrainingGraph(g, { loss, wrt: [s] });
    const out = await runSpec(train.spec, {
      student: hostTensor('float32', [B, C, H, W], small),
      teacher: hostTensor('float32', [B, C, H, W], teacher),
    });
    const expected = numericGrad((z) => referenceDistill(z, teacher).loss, Float64Array.from(small));
    assertClose(out['grad/student'].values as Float32Array, expected, 2e-5, 'ddistill/dstudent');
  });
});
