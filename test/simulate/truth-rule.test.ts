import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultGeometry } from '../../src/detector/default-geometry.js';
import { createFrameContext, simulateFrame } from '../../src/simulate/frame.js';
import { parseSimulateOptions } from '../../src/simulate/options.js';
import { resolveSetup } from '../../src/simulate/run.js';
import { UserError } from '../../src/util/errors.js';

test('--truth-min-snr: the same pixels, fewer true spots, every one at or above the rule', () => {
  const geometry = defaultGeometry();
  const render = (truthMinSnr?: number) => {
    const options = parseSimulateOptions({ frames: 1, outPath: 'x', seed: 5, hitRate: 1, truthMinSnr });
    return simulateFrame(createFrameContext(resolveSetup(geometry, options)), 0).rendered;
  };
  const lax = render();
  const strict = render(8);
  assert.deepEqual(strict.imageAdu, lax.imageAdu);
  assert.ok(
    strict.truth.count > 0 && strict.truth.count < lax.truth.count,
    `${strict.truth.count} of ${lax.truth.count}`,
  );
  for (let i = 0; i < lax.truth.count; i++) assert.ok(lax.truth.snr[i] >= 3);
  for (let i = 0; i < strict.truth.count; i++) assert.ok(strict.truth.snr[i] >= 8);
  const strongInLax = Array.from(lax.truth.snr.subarray(0, lax.truth.count)).filter((s) => s >= 8).length;
  assert.equal(strict.truth.count, strongInLax);
  let laxMask = 0;
  let strictMask = 0;
  for (let i = 0; i < lax.peakMask.length; i++) {
    laxMask += lax.peakMask[i];
    strictMask += strict.peakMask[i];
    assert.ok(strict.peakMask[i] <= lax.peakMask[i], 'a strict mask pixel is a lax one');
  }
  assert.ok(strictMask < laxMask);
  assert.throws(() => parseSimulateOptions({ frames: 1, outPath: 'x', truthMinSnr: -1 }), UserError);
});
