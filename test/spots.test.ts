import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultGeometry } from '../src/detector/default-geometry.js';
import { pixelMapsFor } from '../src/detector/index.js';
import { defaultSpotFrameOptions, generateSpotFrame } from '../src/simulate/spots.js';
import { seededRandom } from '../src/util/random.js';

test('the embedded default geometry parses into four 512x512 modules stacked along ss', () => {
  const geometry = defaultGeometry();
  assert.equal(geometry.panels.length, 4);
  const maps = pixelMapsFor(geometry);
  assert.deepEqual([maps.ssSize, maps.fsSize], [2048, 512]);
  assert.ok(maps.panelIndex.every((p) => p >= 0));
});

test('spot frames are deterministic for a seed, on real pixels, with masks at their spots', () => {
  const maps = pixelMapsFor(defaultGeometry());
  const a = generateSpotFrame(maps, seededRandom(5));
  const b = generateSpotFrame(maps, seededRandom(5));
  const c = generateSpotFrame(maps, seededRandom(6));
  assert.deepEqual(a.truth.fs, b.truth.fs);
  assert.deepEqual(a.image, b.image);
  assert.notDeepEqual(a.truth.fs, c.truth.fs);
  const { minSpots, maxSpots } = defaultSpotFrameOptions;
  assert.ok(a.truth.count >= minSpots && a.truth.count <= maxSpots);
  for (let k = 0; k < a.truth.count; k++) {
    const centre = Math.round(a.truth.ss[k]) * maps.fsSize + Math.round(a.truth.fs[k]);
    assert.equal(a.mask[centre], 1, `spot ${k} centre is labelled`);
    assert.ok(maps.panelIndex[centre] >= 0);
  }
  // Every labelled pixel lies within the half-maximum radius of some spot.
  const radius = Math.sqrt(2 * Math.LN2) * defaultSpotFrameOptions.spotSigmaPx;
  let labelled = 0;
  for (let i = 0; i < a.mask.length; i++) {
    if (!a.mask[i]) continue;
    labelled++;
    const ss = Math.floor(i / maps.fsSize);
    const fs = i % maps.fsSize;
    let near = false;
    for (let k = 0; k < a.truth.count && !near; k++)
      near = Math.hypot(fs - a.truth.fs[k], ss - a.truth.ss[k]) <= radius + 1e-9;
    assert.ok(near, `pixel ${fs},${ss} is near a spot`);
  }
  assert.ok(labelled >= a.truth.count);
});
