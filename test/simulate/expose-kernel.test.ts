import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createExposureKernel,
  GAIN_UNIT,
  type PanelExposure,
  PEDESTAL_UNIT_ADU,
} from '../../src/simulate/expose-kernel.js';
import {
  normalQuantiles,
  POISSON_TABLE_MEANS,
  poissonTables,
  smallNormalQuantiles,
} from '../../src/simulate/poisson.js';
import { MULBERRY32_STEP, mulberry32Hash, seededRandom } from '../../src/util/random.js';

/** Round to nearest, ties to even (f32.nearest on an f32 value). */
const nearestEven = (x: number) => x + 6755399441055744 - 6755399441055744;

/**
 * The kernel's documented algorithm (expose-kernel.ts), one pixel at a time in plain JavaScript, every
 * f32 operation rounded with Math.fround: the kernel must match it bit for bit.
 */
function referenceExposeRows(
  gp: Int32Array,
  bg: Float32Array,
  out: Float32Array,
  start: number,
  rows: number,
  width: number,
  stride: number,
  seed: number,
  panel: PanelExposure,
  rare = { normalLanes: 0, outerLanes: 0 },
): number {
  const f = Math.fround;
  const small = smallNormalQuantiles();
  const big = normalQuantiles();
  const { guide, offset, cdf } = poissonTables();
  const scale = f(panel.backgroundScale);
  const gain = f(panel.aduPerPhoton * GAIN_UNIT);
  const offsetAdu = f(panel.offsetAdu);
  const maxAdu = f(panel.maxAdu);
  const darkSq = f(panel.darkNoiseAdu * panel.darkNoiseAdu);
  const spreadSq = f(panel.photonSpreadAdu * panel.photonSpreadAdu);
  let c = seed | 0;
  for (let r = 0; r < rows; r++) {
    for (let x = 0; x < width; x += 4) {
      const a = [0, 1, 2, 3].map((l) => mulberry32Hash((c + Math.imul(l + 1, MULBERRY32_STEP)) | 0));
      const b = [0, 1, 2, 3].map((l) => mulberry32Hash((c + Math.imul(l + 5, MULBERRY32_STEP)) | 0));
      c = (c + Math.imul(8, MULBERRY32_STEP)) | 0;
      for (let l = 0; l < 4 && x + l < width; l++) {
        const i = start + r * stride + x + l;
        const g = gp[i];
        const mu = f(bg[i] * scale);
        const j = Math.min(Math.trunc(f(f(mu * 32) + f((b[l] & 255) * 0.00390625))), POISSON_TABLE_MEANS - 1);
        const u = a[l] >>> 8;
        let k = guide[(j << 8) | (u >>> 16)];
        while (u >= cdf[offset[j] + k]) k++;
        if (mu >= 30) {
          k = Math.max(0, nearestEven(f(mu + f(f(Math.sqrt(mu)) * big[a[l] >>> 16]))));
          rare.normalLanes++;
        }
        const level = b[l] >>> 20;
        if (((level + 1) & 4095) < 2) rare.outerLanes++;
        const z = ((level + 1) & 4095) < 2 ? big[b[l] >>> 16] : small[level];
        const kf = f(k);
        let adu = f(kf * f(f(g >>> 16) * gain));
        adu = f(adu + f(f((g << 16) >> 16) * PEDESTAL_UNIT_ADU));
        adu = f(adu + offsetAdu);
        adu = f(adu + f(f(Math.sqrt(f(darkSq + f(spreadSq * kf)))) * z));
        if (maxAdu < adu) adu = maxAdu;
        if (panel.roundAdu) adu = nearestEven(adu);
        out[i] = g === 0 ? 0 : adu;
      }
    }
  }
  return c;
}

/** A slab with every kind of pixel: unmeasured, zero mean, small and large means, odd gains. */
function fixture(pixelCount: number, seed: number) {
  const random = seededRandom(seed);
  const gp = new Int32Array(pixelCount);
  const bg = new Float32Array(pixelCount);
  for (let i = 0; i < pixelCount; i++) {
    const gain = Math.max(1, Math.round((0.9 + 0.2 * random()) / GAIN_UNIT));
    const pedestal = Math.round((random() - 0.5) * 6 * 64);
    gp[i] = random() < 0.03 ? 0 : (gain << 16) | (pedestal & 0xffff);
    const kind = random();
    bg[i] = kind < 0.1 ? 0 : kind < 0.7 ? 2 * random() : kind < 0.9 ? 40 * random() : 100 + 400 * random();
  }
  return { gp, bg };
}

test('the SIMD kernel equals the scalar reference bit for bit, and continues the same random stream', () => {
  const ssSize = 97;
  const fsSize = 131; // rows of 131 pixels leave a 3-pixel tail after the groups of 4
  const pixelCount = ssSize * fsSize;
  const { gp, bg } = fixture(pixelCount, 4);
  const kernel = createExposureKernel(pixelCount);
  kernel.gainPedestal.set(gp);
  kernel.background.set(bg);
  const panels: { start: number; rows: number; width: number; panel: PanelExposure }[] = [
    {
      start: 0,
      rows: 20,
      width: 131,
      panel: {
        backgroundScale: 1.3,
        aduPerPhoton: 9.7,
        offsetAdu: -0.8,
        maxAdu: 900,
        darkNoiseAdu: 1.3,
        photonSpreadAdu: 2.9,
        roundAdu: true,
      },
    },
    {
      start: 20 * fsSize + 5,
      rows: 77,
      width: 62, // a rectangle inside the slab: 2-pixel tail, pixels around it untouched
      panel: {
        backgroundScale: 0.7,
        aduPerPhoton: 1,
        offsetAdu: 0.25,
        maxAdu: 1e6,
        darkNoiseAdu: 0.4,
        photonSpreadAdu: 0,
        roundAdu: false,
      },
    },
    {
      // 3 pixels wide and ending on the slab's last pixel: every group is a tail, and the lanes past
      // the row read the padding after the arrays.
      start: pixelCount - 3 * fsSize - 3,
      rows: 4,
      width: 3,
      panel: {
        backgroundScale: 2,
        aduPerPhoton: 25,
        offsetAdu: 3,
        maxAdu: 1e4,
        darkNoiseAdu: 5,
        photonSpreadAdu: 7,
        roundAdu: true,
      },
    },
  ];
  const expected = new Float32Array(pixelCount).fill(-7);
  kernel.image.fill(-7);
  let seedKernel = 123456789;
  let seedReference = 123456789;
  const rare = { normalLanes: 0, outerLanes: 0 };
  for (const { start, rows, width, panel } of panels) {
    seedKernel = kernel.exposeRows(start, rows, width, fsSize, seedKernel, panel);
    seedReference = referenceExposeRows(
      gp,
      bg,
      expected,
      start,
      rows,
      width,
      fsSize,
      seedReference,
      panel,
      rare,
    );
    assert.equal(seedKernel, seedReference);
  }
  let differences = 0;
  for (let i = 0; i < pixelCount; i++) if (!Object.is(kernel.image[i], expected[i])) differences++;
  assert.equal(differences, 0, `${differences} pixels differ`);
  // The rare branches ran: large means (normal approximation) and the outer Gaussian levels.
  assert.ok(rare.normalLanes > 100 && rare.outerLanes > 2, JSON.stringify(rare));
  // The second rectangle left the pixels beside it alone, and some pixels saturated.
  assert.equal(kernel.image[20 * fsSize + 4], -7);
  assert.equal(kernel.image[20 * fsSize + 67], -7);
  assert.ok(kernel.image.includes(900), 'some pixels saturate at max_adu');
  assert.ok(
    kernel.image.every((v, i) => gp[i] !== 0 || v === 0 || v === -7),
    'unmeasured pixels read 0',
  );
  assert.ok(!kernel.image.some((v) => Object.is(v, -0)), 'no negative zeros');
});

test('kernel pixels have Poisson x gain means and the variance of Poisson plus one Gaussian', () => {
  const pixelCount = 64 * 1024;
  const kernel = createExposureKernel(pixelCount);
  kernel.gainPedestal.fill(8192 << 16); // relative gain 1, no pedestal
  for (const [mean, dark, spread] of [
    [0.2, 0, 0],
    [3, 1.5, 0],
    [12, 0, 2],
    [64, 2, 3],
  ]) {
    kernel.background.fill(mean);
    kernel.exposeRows(0, 64, 1024, 1024, mean * 1000, {
      backgroundScale: 1,
      aduPerPhoton: 10,
      offsetAdu: 0,
      maxAdu: 1e9,
      darkNoiseAdu: dark,
      photonSpreadAdu: spread,
      roundAdu: false,
    });
    let sum = 0;
    let sum2 = 0;
    for (const v of kernel.image) {
      sum += v;
      sum2 += v * v;
    }
    const m = sum / pixelCount;
    const variance = sum2 / pixelCount - m * m;
    const wantVariance = 100 * mean + dark * dark + spread * spread * mean;
    assert.ok(Math.abs(m - 10 * mean) < 5 * Math.sqrt(wantVariance / pixelCount), `mean ${m} at ${mean}`);
    assert.ok(Math.abs(variance / wantVariance - 1) < 0.05, `variance ${variance} vs ${wantVariance}`);
  }
});

test('the kernel refuses rows outside its slab', () => {
  const kernel = createExposureKernel(100);
  const panel = {
    backgroundScale: 1,
    aduPerPhoton: 1,
    offsetAdu: 0,
    maxAdu: 10,
    darkNoiseAdu: 0,
    photonSpreadAdu: 0,
    roundAdu: true,
  };
  assert.throws(() => kernel.exposeRows(0, 11, 10, 10, 1, panel), /outside 100 pixels/);
  assert.throws(() => kernel.exposeRows(-1, 1, 10, 10, 1, panel), /outside/);
  assert.doesNotThrow(() => kernel.exposeRows(90, 1, 10, 10, 1, panel));
});
