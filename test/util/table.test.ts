import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatTable } from '../../src/util/table.js';

test('formatTable aligns columns, right-aligns numbers on request and trims line ends', () => {
  const rows = [
    ['method', 'F1', 'found'],
    ['pf8 tuned', '0.913', '398'],
    ['model', '0.82', ''],
  ];
  assert.equal(formatTable(rows), 'method     F1     found\npf8 tuned  0.913  398\nmodel      0.82');
  assert.equal(
    formatTable(rows, 'right'),
    'method        F1  found\npf8 tuned  0.913    398\nmodel       0.82',
  );
  assert.equal(formatTable([]), '');
});
