import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AdamW, adamwUpdate, clipFactor, clipGradNorm, globalNorm, lrAt } from '../../src/nn/optim.js';

/** The AdamW update written out in float64 scalars, one element, as the paper/PyTorch define it. */
function referenceAdamW(
  p0: number,
  grads: number[],
  lrs: number[],
  { beta1 = 0.9, beta2 = 0.95, eps = 1e-8, wd = 0.05 } = {},
): number[] {
  let p = p0;
  let m = 0;
  let v = 0;
  const trajectory: number[] = [];
  grads.forEach((g, index) => {
    const t = index + 1;
    const lr = lrs[index];
    p = p - lr * wd * p;
    m = beta1 * m + (1 - beta1) * g;
    v = beta2 * v + (1 - beta2) * g * g;
    const mHat = m / (1 - beta1 ** t);
    const vHat = v / (1 - beta2 ** t);
    p = p - (lr * mHat) / (Math.sqrt(vHat) + eps);
    trajectory.push(p);
  });
  return trajectory;
}

describe('AdamW', () => {
  it('matches the float64 reference over several steps with changing gradients and lr', () => {
    const p0 = [0.5, -1.25, 2, 0];
    const gradSeq = [
      [0.1, -0.3, 2.5, 0],
      [0.2, 0.1, -1.5, 1e-4],
      [-0.05, 0.4, 0.5, -2],
      [0.3, -0.2, 0.25, 0.5],
      [0, 0, 0, 0],
    ];
    const lrs = [1e-3, 2e-3, 3e-3, 2.5e-3, 1e-3];
    const values = Float32Array.from(p0);
    const optimizer = new AdamW([{ values }]);
    gradSeq.forEach((g, k) => {
      optimizer.update([Float32Array.from(g)], lrs[k]);
    });
    assert.equal(optimizer.step, gradSeq.length);
    p0.forEach((start, i) => {
      const expected = referenceAdamW(
        start,
        gradSeq.map((g) => g[i]),
        lrs,
      ).at(-1)!;
      assert.ok(Math.abs(values[i] - expected) < 1e-6, `element ${i}: ${values[i]} vs ${expected}`);
    });
  });

  it('first step moves each weight by about lr against the gradient sign (bias correction)', () => {
    // With bias correction m̂ = g and v̂ = g², so the first step is lr·sign(g) (plus decay).
    const values = Float32Array.from([1, 1]);
    adamwUpdate(values, Float32Array.from([3, -0.001]), new Float32Array(2), new Float32Array(2), 0.01, 1, {
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0,
    });
    assert.ok(Math.abs(values[0] - 0.99) < 1e-6);
    assert.ok(Math.abs(values[1] - 1.01) < 1e-5);
  });

  it('applies decoupled weight decay only where asked', () => {
    const decayed = Float32Array.from([2]);
    const kept = Float32Array.from([2]);
    const optimizer = new AdamW([{ values: decayed }, { values: kept, decay: false }]);
    optimizer.update([new Float32Array(1), new Float32Array(1)], 0.1);
    // Zero gradient: only the decay acts, p·(1 − lr·wd) = 2·(1 − 0.1·0.05).
    assert.ok(Math.abs(decayed[0] - 2 * (1 - 0.1 * 0.05)) < 1e-6);
    assert.equal(kept[0], 2);
  });

  it('restore() continues exactly like an uninterrupted optimizer', () => {
    const grads = [Float32Array.from([0.3, -0.7]), Float32Array.from([-0.1, 0.2]), Float32Array.from([1, 1])];
    const full = Float32Array.from([1, 2]);
    const a = new AdamW([{ values: full }]);
    for (const g of grads) a.update([g], 0.01);
    const resumed = Float32Array.from([1, 2]);
    const b = new AdamW([{ values: resumed }]);
    b.update([grads[0]], 0.01);
    const c = new AdamW([{ values: resumed }]);
    c.restore(b.m, b.v, b.step);
    c.update([grads[1]], 0.01);
    c.update([grads[2]], 0.01);
    assert.deepEqual(resumed, full);
  });

  it('gradScale equals clipping the gradients first, and leaves them unmodified', () => {
    const grad = Float32Array.from([3, -4, 12]);
    const clipped = Float32Array.from(grad);
    const norm = clipGradNorm([clipped], 2);
    assert.equal(norm, 13);
    const a = Float32Array.from([0.1, 0.2, 0.3]);
    const b = Float32Array.from(a);
    new AdamW([{ values: a }]).update([clipped], 0.01);
    new AdamW([{ values: b }]).update([grad], 0.01, clipFactor(norm, 2));
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-7);
    assert.deepEqual(grad, Float32Array.from([3, -4, 12]));
    assert.equal(clipFactor(1, 2), 1);
    assert.equal(clipFactor(Number.NaN, 2), 1);
  });

  it('rejects mismatched lengths', () => {
    const values = new Float32Array(3);
    assert.throws(() =>
      adamwUpdate(values, new Float32Array(2), new Float32Array(3), new Float32Array(3), 1, 1),
    );
  });
});

describe('gradient clipping', () => {
  it('returns the global norm and scales down to maxNorm', () => {
    const grads = [Float32Array.from([3, 0]), Float32Array.from([0, 4])];
    const norm = clipGradNorm(grads, 1);
    assert.equal(norm, 5);
    assert.ok(Math.abs(globalNorm(grads) - 1) < 1e-5);
    assert.ok(Math.abs(grads[0][0] - 0.6) < 1e-6 && Math.abs(grads[1][1] - 0.8) < 1e-6);
  });

  it('leaves gradients under the limit alone, and non-finite norms untouched', () => {
    const grads = [Float32Array.from([0.3, 0.4])];
    assert.ok(Math.abs(clipGradNorm(grads, 1) - 0.5) < 1e-7);
    assert.deepEqual(grads[0], Float32Array.from([0.3, 0.4]));
    const bad = [Float32Array.from([Number.NaN, 1])];
    assert.ok(Number.isNaN(clipGradNorm(bad, 1)));
    assert.equal(bad[0][1], 1);
    const big = [Float32Array.from([30, 40])];
    assert.equal(clipGradNorm(big, 0), 50);
    assert.equal(big[0][0], 30);
  });
});

describe('lrAt', () => {
  const schedule = { peakLr: 1e-3, warmupSteps: 10, totalSteps: 110, minLr: 1e-5 };
  it('warms up linearly to the peak', () => {
    assert.ok(Math.abs(lrAt(0, schedule) - 1e-4) < 1e-12);
    assert.ok(Math.abs(lrAt(4, schedule) - 5e-4) < 1e-12);
    assert.ok(Math.abs(lrAt(9, schedule) - 1e-3) < 1e-12);
  });
  it('decays by cosine from the peak to the floor and stays there', () => {
    assert.ok(Math.abs(lrAt(10, schedule) - 1e-3) < 1e-12);
    // Half way through the decay: cos(π/2) = 0, so the mean of peak and floor.
    assert.ok(Math.abs(lrAt(60, schedule) - (1e-3 + 1e-5) / 2) < 1e-12);
    // A quarter: ½(1 + cos(π/4)).
    const quarter = 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + Math.SQRT1_2);
    assert.ok(Math.abs(lrAt(35, schedule) - quarter) < 1e-12);
    assert.ok(Math.abs(lrAt(110, schedule) - 1e-5) < 1e-15);
    assert.ok(Math.abs(lrAt(1000, schedule) - 1e-5) < 1e-15);
  });
  it('is monotone: up during warm-up, down after', () => {
    for (let s = 1; s < 10; s++) assert.ok(lrAt(s, schedule) > lrAt(s - 1, schedule));
    for (let s = 11; s <= 110; s++) assert.ok(lrAt(s, schedule) < lrAt(s - 1, schedule));
  });
  it('handles no warm-up', () => {
    assert.equal(lrAt(0, { ...schedule, warmupSteps: 0 }), 1e-3);
  });
});
