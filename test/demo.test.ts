import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from './helpers.js';

test('braggflow demo runs end to end on the embedded detector and reports what it computed', () => {
  const out = mkdtempSync(join(tmpdir(), 'bf-demo-'));
  const result = runCli([
    'demo',
    '--out',
    out,
    '--frames',
    '2',
    '--steps',
    '3',
    '--crop',
    '64',
    '--batch',
    '1',
    '--json',
  ]);
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.equal(report.detector.panels, 4);
  assert.deepEqual(report.detector.slabShape, [2048, 512]);
  assert.equal(report.run.frames, 2);
  assert.equal(report.run.readBackIdentical, true);
  assert.ok(report.run.truthPeaks >= 2 * 20, 'at least minSpots per frame');
  assert.equal(report.training.steps, 3);
  assert.ok(Number.isFinite(report.training.firstLoss) && report.training.firstLoss > 0);
  assert.ok(report.inference.mpixPerS > 0);
  assert.equal(report.inference.frame, 1);
  assert.ok(report.inference.precision >= 0 && report.inference.precision <= 1);
  assert.ok(existsSync(join(out, 'run.cxi')) && existsSync(join(out, 'peaks.cxi')));
  // Progress lines go to stderr with --json, so stdout stays machine-readable.
  assert.match(result.stderr, /train 1\/3 loss/);
});

test('braggflow demo rejects a bad option with one line', () => {
  const result = runCli(['demo', '--frames', 'many']);
  assert.equal(result.code, 2);
  assert.equal(result.stderr.trim().split('\n').length, 1);
  assert.match(result.stderr, /--frames must be a positive integer/);
});
