import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserError } from '../../src/util/errors.js';
import { createWorkerPool, mapInOrder, workerScriptUrl } from '../../src/util/worker-pool.js';

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

test('depth: tasks posted ahead run one after another in order, while this thread is busy', async () => {
  const pool = createWorkerPool<Task, Result>(script, 1, { offset: 0 }, { depth: 4 });
  try {
    await pool.run({ values: new Float64Array(1) }); // started
    // Early tasks wait longest (the handler awaits): they must still run, and answer, in order.
    const done: number[] = [];
    const runs = Array.from({ length: 4 }, (_, i) =>
      pool.run({ values: Float64Array.from([i]), delayMs: 40 - 10 * i }).then((r) => {
        done.push(i);
        return r;
      }),
    );
    // This thread busy for 150 ms: with depth 1 the worker would take one task in that time.
    const start = performance.now();
    while (performance.now() - start < 150) {}
    const busyEnd = performance.now();
    const results = await Promise.all(runs);
    assert.deepEqual(done, [0, 1, 2, 3]);
    assert.deepEqual(
      results.map((r) => r.squares[0]),
      [0, 1, 4, 9],
    );
    // All four (100 ms of waits) ran during the busy stretch.
    assert.ok(performance.now() - busyEnd < 60, `${performance.now() - busyEnd} ms after the busy stretch`);
  } finally {
    await pool.close();
  }
});

test('depth: tasks posted behind one that crashes the worker run on its replacement', async () => {
  const pool = createWorkerPool<Task, Result>(script, 1, { offset: 0 }, { depth: 3 });
  try {
    const crash = pool.run({ values: new Float64Array(1), fail: 'crash', delayMs: 20 });
    const next = pool.run({ values: Float64Array.from([2]) });
    const last = pool.run({ values: Float64Array.from([3]) });
    await assert.rejects(crash, /exited with code 3/);
    assert.deepEqual(Array.from((await next).squares), [4]);
    assert.deepEqual(Array.from((await last).squares), [9]);
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

test('a worker that dies while loading fails the pool at once with its error (no respawning)', async () => {
  const started = performance.now();
  const pool = createWorkerPool<Task, Result>(script, 2, { offset: 0, crashAtStart: true });
  const runs = Array.from({ length: 5 }, () => pool.run({ values: new Float64Array(1) }));
  for (const run of runs)
    await assert.rejects(run, /worker failed to start: cannot open the detector library/);
  await assert.rejects(pool.run({ values: new Float64Array(1) }), /cannot open the detector library/);
  await pool.close();
  // A respawning pool never settles these; bounded generously for a loaded 2-core machine.
  assert.ok(performance.now() - started < 20_000);
});

test('mapInOrder: results in input order, at most `window` in flight, pulls lazily, stops on error', async () => {
  let inFlight = 0;
  let most = 0;
  const delays = [30, 5, 20, 1, 10, 2, 8];
  const results: number[] = [];
  for await (const r of mapInOrder(delays, 3, async (ms, i) => {
    inFlight++;
    most = Math.max(most, inFlight);
    await new Promise((resolve) => setTimeout(resolve, ms));
    inFlight--;
    return i * 10;
  }))
    results.push(r);
  assert.deepEqual(results, [0, 10, 20, 30, 40, 50, 60]);
  assert.equal(most, 3);
  // An endless source: only what the consumer takes (plus the window) is ever pulled.
  let pulled = 0;
  function* endless() {
    for (let i = 0; ; i++) {
      pulled++;
      yield i;
    }
  }
  const taken: number[] = [];
  for await (const r of mapInOrder(endless(), 4, async (v) => v * v)) {
    taken.push(r);
    if (taken.length === 5) break;
  }
  assert.deepEqual(taken, [0, 1, 4, 9, 16]);
  assert.ok(pulled <= 5 + 4, `pulled ${pulled}`);
  // The first failure ends the map with its error.
  const seen: number[] = [];
  await assert.rejects(async () => {
    for await (const r of mapInOrder([1, 2, 3, 4], 2, async (v) => {
      if (v === 3) throw new Error('frame 3 is corrupt');
      return v;
    }))
      seen.push(r);
  }, /frame 3 is corrupt/);
  assert.deepEqual(seen, [1, 2]);
});
