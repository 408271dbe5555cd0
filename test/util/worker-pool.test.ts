import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserError } from '../../src/util/errors.js';
import { createWorkerPool, workerScriptUrl } from '../../src/util/worker-pool.js';

const script = workerScriptUrl(import.meta.url, '../fixtures/pool-worker');

interface Task {
  values: Float64Array;
  fail?: 'user' | 'bug' | 'crash';
  delayMs?: number;
}
type Result = { squares: Float64Array; offset: number };

test('workerScriptUrl keeps the caller extension', () => {
  assert.match(workerScriptUrl('file:///a/b/run.ts', 'sim-worker').href, /\/a\/b\/sim-worker\.ts$/);
  assert.match(workerScriptUrl('file:///a/dist/run.js', 'sim-worker').href, /\/a\/dist\/sim-worker\.js$/);
});

test('pool returns each task its own result, in submission order, with workerData', async () => {
  const pool = createWorkerPool<Task, Result>(script, 2, { offset: 1 });
  try {
    // Early tasks sleep longest so they finish last: results must still match their tasks.
    const runs = Array.from({ length: 6 }, (_, i) => {
      const values = Float64Array.from([i, i + 0.5]);
      return pool.run({ values, delayMs: (6 - i) * 5 }, [values.buffer as ArrayBuffer]);
    });
    const results = await Promise.all(runs);
    results.forEach((result, i) => {
      assert.deepEqual(Array.from(result.squares), [i * i + 1, (i + 0.5) ** 2 + 1]);
    });
  } finally {
    await pool.close();
  }
});

test('a UserError in a worker arrives as a UserError; a bug keeps its message; a crash is replaced', async () => {
  const pool = createWorkerPool<Task, Result>(script, 1, { offset: 0 });
  try {
    await assert.rejects(pool.run({ values: new Float64Array(1), fail: 'user' }), (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.equal(error.toLine(), 'input.cxi: frame 3: bad value');
      return true;
    });
    await assert.rejects(pool.run({ values: new Float64Array(1), fail: 'bug' }), /worker: something broke/);
    await assert.rejects(pool.run({ values: new Float64Array(1), fail: 'crash' }), /exited with code 3/);
    const after = await pool.run({ values: Float64Array.from([3]) });
    assert.deepEqual(Array.from(after.squares), [9]);
  } finally {
    await pool.close();
  }
});

test('closing rejects queued tasks and later runs', async () => {
  const pool = createWorkerPool<Task, Result>(script, 1, { offset: 0 });
  const slow = assert.rejects(pool.run({ values: new Float64Array(1), delayMs: 200 }), /closed while/);
  const queued = assert.rejects(pool.run({ values: new Float64Array(1) }), /closed before/);
  await pool.close();
  await slow;
  await queued;
  await assert.rejects(pool.run({ values: new Float64Array(1) }), /closed/);
});

test('pool size must be a positive integer', () => {
  assert.throws(() => createWorkerPool(script, 0), UserError);
});
