import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserError } from '../src/util/errors.js';
import { runCli } from './helpers.js';

test('braggflow --help lists the program and exits 0', () => {
  const result = runCli(['--help']);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /Usage: braggflow/);
});

test('an unknown command exits non-zero without a stack trace', () => {
  const result = runCli(['no-such-command']);
  assert.notEqual(result.code, 0);
  assert.doesNotMatch(result.stderr, /at .*\.ts:\d+/);
});

test('UserError prints file, place and message on one line', () => {
  const error = new UserError('expected a number', 'det.geom', 'line 3');
  assert.equal(error.toLine(), 'det.geom: line 3: expected a number');
  assert.equal(new UserError('no such file').toLine(), 'no such file');
});
