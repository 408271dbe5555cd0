/**
 * TS/onnxruntime vs PyTorch eager, side by side in one run, on the same network and batch: a training
 * step (forward, backward, clipping + AdamW) and inference, both with 2 intra-op threads.
 *
 * The PyTorch side is bench/torch/peaknet.py under Debian's /usr/bin/python3 (package python3-torch;
 * it uses the system libblas.so.3, so install libopenblas0-openmp too: with the reference BLAS its
 * Linear layers are ~10x slower and the comparison meaningless; the script reports the BLAS it mapped).
 *
 * Env: BENCH_NN_STEPS (timed rounds, default 5); BENCH_NN_PROFILE=0 skips the separate profiled run
 * (an onnxruntime profile of the training step, summarised by op type and by op + input shapes).
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { Trainer } from '../src/train/trainer.js';
import { median } from '../src/util/stats.js';

const MODEL = 'peaknet-atto-1x32-h32';
const BATCH = 4;
const SIZE_PX = 256;
const THREADS = 2;
const STEPS = Number(process.env.BENCH_NN_STEPS ?? 5);
const WARMUP = 2;
const PYTHON = '/usr/bin/python3';
const TORCH_SCRIPT = join(import.meta.dirname, 'torch', 'peaknet.py');

/** Deterministic pseudo-random batch: noise image, ~1% peak pixels. */
function makeBatch(): { image: Float32Array; target: Uint8Array } {
  let s = 12345;
  const rnd = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const n = BATCH * SIZE_PX * SIZE_PX;
  const image = new Float32Array(n);
  const target = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    image[i] = rnd() * 2 - 1;
    target[i] = rnd() < 0.01 ? 1 : 0;
  }
  return { image, target };
}

function torchUnavailable(): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} is absent`;
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0)
    return `python3-torch is not installed for ${PYTHON} (apt-get install -y python3-torch)`;
  return undefined;
}

/** bench/torch/peaknet.py --serve: one timed PyTorch step per request, so the two sides interleave. */
class TorchServer {
  private readonly pending: ((line: string) => void)[] = [];
  private stderr = '';

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly info: { torch: string; blas: string },
  ) {}

  static async start(): Promise<TorchServer> {
    const args = [TORCH_SCRIPT, '--serve', MODEL, '--batch', String(BATCH), '--size', String(SIZE_PX)];
    const child = spawn(PYTHON, [...args, '--threads', String(THREADS)], { stdio: 'pipe' });
    const lines = createInterface({ input: child.stdout });
    let server: TorchServer | undefined;
    const first = new Promise<string>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`peaknet.py exited (${code}): ${server?.stderr ?? ''}`)));
      lines.once('line', resolve);
    });
    server = new TorchServer(child, { torch: '', blas: '' });
    child.stderr.on('data', (chunk) => {
      server.stderr += chunk;
    });
    const ready = JSON.parse(await first);
    server.info.torch = ready.torch;
    server.info.blas = ready.blas;
    lines.on('line', (line) => server.pending.shift()?.(line));
    return server;
  }

  async time(command: 'train' | 'infer'): Promise<number> {
    const answer = new Promise<string>((resolve) => this.pending.push(resolve));
    this.child.stdin.write(`${command}\n`);
    const parsed = JSON.parse(await answer);
    if (parsed.error) throw new Error(`peaknet.py: ${parsed.error}`);
    return parsed.ms;
  }

  close(): void {
    this.child.stdin.end('quit\n');
  }
}

interface Timings {
  ortTrain: number[];
  ortRun: number[];
  ortUpdate: number[];
  ortInfer: number[];
  torchTrain: number[];
  torchInfer: number[];
}

/** Rounds of (TS train, PyTorch train, TS infer, PyTorch infer): both sides see the same machine load. */
async function benchInterleaved(torch: TorchServer | undefined): Promise<Timings> {
  const trainer = await Trainer.create({
    model: MODEL,
    intraOpThreads: THREADS,
    training: { batch: BATCH, heightPx: SIZE_PX, widthPx: SIZE_PX },
  });
  const batch = makeBatch();
  const session = await trainer.inferenceSession(
    { batch: BATCH, heightPx: SIZE_PX, widthPx: SIZE_PX },
    { intraOpThreads: THREADS },
  );
  const feeds = {
    image: { dataType: 'float32' as const, dims: [BATCH, 1, SIZE_PX, SIZE_PX], values: batch.image },
  };
  const t: Timings = {
    ortTrain: [],
    ortRun: [],
    ortUpdate: [],
    ortInfer: [],
    torchTrain: [],
    torchInfer: [],
  };
  for (let k = 0; k < WARMUP + STEPS; k++) {
    const keep = k >= WARMUP;
    let started = performance.now();
    const result = await trainer.trainStep(batch);
    if (keep) {
      t.ortTrain.push(performance.now() - started);
      t.ortRun.push(result.runMs);
      t.ortUpdate.push(result.updateMs);
    }
    if (torch) {
      const ms = await torch.time('train');
      if (keep) t.torchTrain.push(ms);
    }
    started = performance.now();
    await session.run(feeds);
    if (keep) t.ortInfer.push(performance.now() - started);
    if (torch) {
      const ms = await torch.time('infer');
      if (keep) t.torchInfer.push(ms);
    }
  }
  await session.release();
  await trainer.release();
  return t;
}

interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string; input_type_shape?: Record<string, number[]>[] };
}

/**
 * Node time per run from an onnxruntime profile, skipping the first run (allocation, first-touch):
 * by op type, and by op type + input shapes (which names the layer, e.g. a depthwise weight gradient).
 */
function summariseProfile(path: string): {
  runs: number;
  byType: { key: string; ms: number; share: number }[];
  bySignature: { key: string; ms: number; count: number }[];
} {
  const events = JSON.parse(readFileSync(path, 'utf8')) as ProfileEvent[];
  const runs = events.filter((e) => e.name === 'model_run').slice(1);
  const inRun = (e: ProfileEvent) => runs.some((r) => e.ts >= r.ts && e.ts <= r.ts + r.dur);
  const nodes = events.filter((e) => e.cat === 'Node' && e.args?.op_name && inRun(e));
  const byType = new Map<string, number>();
  const bySignature = new Map<string, { us: number; count: number }>();
  let total = 0;
  for (const e of nodes) {
    const opType = e.args!.op_name!;
    byType.set(opType, (byType.get(opType) ?? 0) + e.dur);
    const shapes = (e.args!.input_type_shape ?? []).map((t) => `[${Object.values(t)[0]}]`).join(' ');
    const key = `${opType} ${shapes}`;
    const entry = bySignature.get(key) ?? { us: 0, count: 0 };
    entry.us += e.dur;
    entry.count += 1;
    bySignature.set(key, entry);
    total += e.dur;
  }
  const n = Math.max(1, runs.length);
  return {
    runs: runs.length,
    byType: [...byType.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([key, us]) => ({ key, ms: us / 1e3 / n, share: us / total })),
    bySignature: [...bySignature.entries()]
      .sort((a, b) => b[1].us - a[1].us)
      .map(([key, v]) => ({ key, ms: v.us / 1e3 / n, count: v.count / n })),
  };
}

/** A separate, profiled training run (profiling slows onnxruntime down, so not the timed one). */
async function profileTraining(prefix: string, steps: number): Promise<void> {
  const trainer = await Trainer.create({
    model: MODEL,
    intraOpThreads: THREADS,
    profilePrefix: prefix,
    training: { batch: BATCH, heightPx: SIZE_PX, widthPx: SIZE_PX },
  });
  const batch = makeBatch();
  for (let k = 0; k < steps; k++) await trainer.trainStep(batch);
  trainer.endProfiling();
  await trainer.release();
}

const PROFILE_STEPS = 4;
const skipReason = torchUnavailable();
const torch = skipReason === undefined ? await TorchServer.start() : undefined;
let t: Timings;
try {
  t = await benchInterleaved(torch);
} finally {
  torch?.close();
}

const ms = (values: number[]) => (values.length === 0 ? 'skipped' : median(values).toFixed(0));
const best = (values: number[]) => (values.length === 0 ? 'skipped' : Math.min(...values).toFixed(0));
const ratio = (a: number[], b: number[], pick: (v: number[]) => number) =>
  b.length === 0 ? 'n/a' : (pick(a) / pick(b)).toFixed(2);
const min = (v: number[]) => Math.min(...v);
const lines: string[] = [];
lines.push('### PeakNet training step and inference: TS/onnxruntime vs PyTorch eager');
lines.push('');
lines.push(
  `${MODEL}, batch ${BATCH} x 1 x ${SIZE_PX} x ${SIZE_PX}, ${THREADS} intra-op threads each; ${STEPS} interleaved rounds ` +
    `(TS train, PyTorch train, TS infer, PyTorch infer) after ${WARMUP} warm-up rounds. Training step = forward + ` +
    'focal loss + backward + global-norm clipping + AdamW (betas 0.9/0.95, wd 0.05). Median (and best) wall time.',
);
lines.push('');
lines.push('| | TS / onnxruntime (ms) | PyTorch eager (ms) | ratio TS / PyTorch, median (best) | goal |');
lines.push('|---|---:|---:|---:|---|');
lines.push(
  `| training step | ${ms(t.ortTrain)} (${best(t.ortTrain)}) | ${ms(t.torchTrain)} (${best(t.torchTrain)}) | ` +
    `${ratio(t.ortTrain, t.torchTrain, median)} (${ratio(t.ortTrain, t.torchTrain, min)}) | <= 1.3 |`,
);
lines.push(
  `| inference | ${ms(t.ortInfer)} (${best(t.ortInfer)}) | ${ms(t.torchInfer)} (${best(t.torchInfer)}) | ` +
    `${ratio(t.ortInfer, t.torchInfer, median)} (${ratio(t.ortInfer, t.torchInfer, min)}) | <= 0.67 (1.5x faster) |`,
);
lines.push('');
lines.push(
  `TS training step split (median): onnxruntime run (forward + backward) ${ms(t.ortRun)} ms, ` +
    `clipping + AdamW in TS ${median(t.ortUpdate).toFixed(1)} ms.`,
);
lines.push('');
const list = (values: number[]) => values.map((v) => v.toFixed(0)).join(', ');
lines.push(`- TS runs (ms): train ${list(t.ortTrain)}; infer ${list(t.ortInfer)}`);
if (torch) {
  lines.push(
    `- PyTorch ${torch.info.torch} runs (ms): train ${list(t.torchTrain)}; infer ${list(t.torchInfer)}`,
  );
  lines.push(`- PyTorch BLAS: \`${torch.info.blas}\``);
} else {
  lines.push(`- PyTorch side skipped: ${skipReason}.`);
}
const profilePrefix =
  process.env.BENCH_NN_PROFILE !== '0' ? join(tmpdir(), `braggflow-nn-bench-${process.pid}`) : undefined;
if (profilePrefix) await profileTraining(profilePrefix, PROFILE_STEPS);
// onnxruntime appends a timestamp to the prefix: find the file(s) it wrote.
const profileFiles = profilePrefix
  ? readdirSync(dirname(profilePrefix))
      .filter((f) => f.startsWith(basename(profilePrefix)))
      .map((f) => join(dirname(profilePrefix), f))
  : [];
if (profileFiles.length > 0) {
  const summary = summariseProfile(profileFiles[0]);
  lines.push('');
  lines.push(
    `onnxruntime profile of the training session (a separate run: profiling slows it down), node time per ` +
      `step over ${summary.runs} steps after the first:`,
  );
  lines.push('');
  lines.push('| op type | ms / step | share |');
  lines.push('|---|---:|---:|');
  for (const row of summary.byType.slice(0, 12)) {
    lines.push(`| ${row.key} | ${row.ms.toFixed(1)} | ${(row.share * 100).toFixed(1)}% |`);
  }
  lines.push('');
  lines.push('| op and input shapes | nodes / step | ms / step |');
  lines.push('|---|---:|---:|');
  for (const row of summary.bySignature.slice(0, 15)) {
    lines.push(`| ${row.key} | ${row.count} | ${row.ms.toFixed(1)} |`);
  }
  for (const f of profileFiles) rmSync(f, { force: true });
}
process.stdout.write(`${lines.join('\n')}\n`);
