import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from '../helpers.js';

describe('braggflow model', () => {
  it('list --json gives every registered configuration with its parameter count', () => {
    const run = runCli(['model', 'list', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const rows = JSON.parse(run.stdout) as { name: string; params: number }[];
    const byName = new Map(rows.map((r) => [r.name, r.params]));
    assert.equal(byName.get('peaknet-huge-4x512'), 672_994_084);
    assert.equal(byName.get('peaknet-atto-2x512'), 13_354_110);
    assert.equal(byName.get('peaknet-atto-1x32-h32'), 3_478_031);
    // Edge configurations of 1-5M parameters are listed.
    assert.ok(rows.filter((r) => r.params >= 1e6 && r.params <= 5e6).length >= 3);
  });

  it('info --json splits the count into backbone, neck and head and gives GFLOP per megapixel', () => {
    const run = runCli(['model', 'info', 'peaknet-huge-4x512', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const info = JSON.parse(run.stdout);
    assert.equal(info.params, 672_994_084);
    assert.equal(info.backboneParams, 657_466_304);
    assert.equal(info.backboneParams + info.neckParams + info.headParams, info.params);
    const small = JSON.parse(runCli(['model', 'info', 'peaknet-atto-1x32-h32', '--json']).stdout);
    assert.equal(small.params, 3_478_031);
    assert.ok(info.gflopsPerMpix > 100 * small.gflopsPerMpix && small.gflopsPerMpix > 1);
  });

  it('an unknown model name is one line naming the valid backbones, exit 2', () => {
    const run = runCli(['model', 'info', 'peaknet-mega-4x512']);
    assert.equal(run.code, 2);
    assert.equal(run.stderr.trim().split('\n').length, 1);
    assert.match(run.stderr, /^braggflow: .*unknown backbone 'mega'.*atto.*huge/);
  });
});
