import assert from 'node:assert/strict';
import { test } from 'node:test';
import { segmentPeaks } from '../src/peaks/segment.js';

test('segmentPeaks turns 2-class logits into 8-connected components with weighted centroids', () => {
  const ss = 8;
  const fs = 10;
  const n = ss * fs;
  const logits = new Float32Array(2 * n).fill(0);
  const image = new Float32Array(n).fill(1);
  const mark = (s: number, f: number, value: number) => {
    logits[n + s * fs + f] = 5; // peak class wins
    image[s * fs + f] = value;
  };
  // Component 1: a diagonal pair (8-connected, not 4-connected) with weights 1 and 3.
  mark(1, 1, 1);
  mark(2, 2, 3);
  // Component 2: a single pixel at the far corner.
  mark(7, 9, 10);
  const peaks = segmentPeaks(logits, image, ss, fs);
  assert.equal(peaks.count, 2);
  assert.ok(Math.abs(peaks.fs[0] - (1 * 1 + 3 * 2) / 4) < 1e-6);
  assert.ok(Math.abs(peaks.ss[0] - (1 * 1 + 3 * 2) / 4) < 1e-6);
  assert.equal(peaks.nPixels[0], 2);
  assert.equal(peaks.totalIntensity[0], 4);
  assert.equal(peaks.maxValue[0], 3);
  assert.equal(peaks.fs[1], 9);
  assert.equal(peaks.ss[1], 7);
  const bigOnly = segmentPeaks(logits, image, ss, fs, { minPixels: 2 });
  assert.equal(bigOnly.count, 1);
  assert.equal(segmentPeaks(logits, image, ss, fs, { maxPeaks: 1 }).count, 1);
});
