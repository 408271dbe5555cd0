import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createPeakList, strongestWithColumn } from '../../src/peaks/peak-list.js';

test('strongestWithColumn: the strongest rows with their column entries; the whole list when it fits', () => {
  const list = createPeakList(8);
  const intensities = [5, 50, 20, 50, 1];
  list.count = intensities.length;
  intensities.forEach((v, i) => {
    list.totalIntensity[i] = v;
    list.fs[i] = i;
  });
  const column = Int32Array.from([10, 11, 12, 13, 14, 99, 99, 99]);
  const top = strongestWithColumn(list, column, 3);
  assert.deepEqual(Array.from(top.peaks.fs.subarray(0, top.peaks.count)), [1, 3, 2]);
  assert.deepEqual(Array.from(top.column), [11, 13, 12]);
  assert.ok(top.column instanceof Int32Array);
  const all = strongestWithColumn(list, Float32Array.from(column), 5);
  assert.equal(all.peaks, list);
  assert.deepEqual(Array.from(all.column), [10, 11, 12, 13, 14]);
});
