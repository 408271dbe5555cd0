/**
 * Conv-gradient lowering choices, measured with onnxruntime CPU on
 *  (1) a ConvNeXt-like block  y = x + pw2(gelu(pw1(channelNorm(dwconv7x7(x)))))  and
 *  (2) a ConvNeXt downsampling layer  y = conv2x2s2(channelNorm(x)),
 * a training step (loss + gradients of every param and of x) per lowering variant, against the forward.
 * Variants run interleaved and each reports its best of N runs: on a shared machine the minimum is the
 * least disturbed estimate. Prints markdown. Env: BENCH_N, BENCH_C, BENCH_HW (default 4, 96, 64),
 * BENCH_THREADS (default '1,2'), BENCH_REPEATS (default 7).
 */
import { buildTrainingGraph } from '../src/nn/autodiff.js';
import { Graph } from '../src/nn/graph.js';
import { kaimingUniform, ones, zeros } from '../src/nn/init.js';
import { encodeModel } from '../src/nn/onnx/emit.js';
import type { OnnxModelSpec } from '../src/nn/onnx/spec.js';
import * as op from '../src/nn/ops/index.js';
import { convGradLowering } from '../src/nn/ops/index.js';
import { createSession, type HostTensor } from '../src/nn/runtime.js';

const N = Number(process.env.BENCH_N ?? 4);
const C = Number(process.env.BENCH_C ?? 96);
const HW = Number(process.env.BENCH_HW ?? 64);
const THREADS = (process.env.BENCH_THREADS ?? '1,2').split(',').map(Number);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 7);
const DEFAULTS = { ...convGradLowering };

interface Case {
  name: string;
  spec: OnnxModelSpec;
  feeds: Record<string, HostTensor>;
}

function feedsFor(g: Graph, spec: OnnxModelSpec): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const info of spec.inputs) {
    const dims = info.dims as number[];
    if (info.name === 'x') {
      const values = new Float32Array(dims.reduce((a, b) => a * b, 1));
      for (let i = 0; i < values.length; i++) values[i] = Math.sin(i * 0.37);
      feeds.x = { dataType: 'float32', dims, values };
    } else feeds[info.name] = { dataType: 'float32', dims, values: g.getParam(info.name).data };
  }
  return feeds;
}

/** Builds with the given lowering settings (restored afterwards); `forward` exports the forward only. */
function build(
  name: string,
  settings: Partial<typeof convGradLowering>,
  body: (g: Graph) => void,
  forward = false,
): Case {
  Object.assign(convGradLowering, DEFAULTS, settings);
  try {
    const g = new Graph(name, 0);
    body(g);
    const y = g.outputs.get('y');
    if (!y) throw new Error('no output y');
    const spec = forward
      ? g.toOnnx()
      : buildTrainingGraph(g, {
          loss: op.reduceMean(op.mul(y, y)),
          wrt: [...g.paramTensorList(), g.inputs.get('x') as never],
        }).spec;
    return { name, spec, feeds: feedsFor(g, spec) };
  } finally {
    Object.assign(convGradLowering, DEFAULTS);
  }
}

function convnextBlock(g: Graph): void {
  const x = g.input('x', [N, C, HW, HW]);
  const init = kaimingUniform({ a: Math.sqrt(5) });
  const p = (name: string, shape: number[], i = init) => g.param(name, shape, i);
  const dw = op.conv(x, p('dw.weight', [C, 1, 7, 7]), p('dw.bias', [C], zeros()), {
    pads: [3, 3],
    groups: C,
  });
  const normed = op.channelNorm(dw, p('norm.weight', [C], ones()), p('norm.bias', [C], zeros()));
  const h = op.gelu(op.conv(normed, p('pw1.weight', [4 * C, C, 1, 1]), p('pw1.bias', [4 * C], zeros())));
  g.output('y', op.add(x, op.conv(h, p('pw2.weight', [C, 4 * C, 1, 1]), p('pw2.bias', [C], zeros()))));
}

function downsample(g: Graph): void {
  const x = g.input('x', [N, C, HW, HW]);
  const normed = op.channelNorm(x, g.param('norm.weight', [C], ones()), g.param('norm.bias', [C], zeros()));
  const w = g.param('down.weight', [2 * C, C, 2, 2], kaimingUniform({ a: Math.sqrt(5) }));
  g.output('y', op.conv(normed, w, g.param('down.bias', [2 * C], zeros()), { strides: [2, 2] }));
}

/** Best-of-REPEATS ms per case, interleaved, for one thread count. */
async function measure(cases: Case[], threads: number): Promise<number[]> {
  const sessions = [];
  for (const c of cases) {
    const session = await createSession(encodeModel(c.spec), { intraOpThreads: threads });
    await session.run(c.feeds); // warm-up: allocations, kernel selection, constant folding
    sessions.push(session);
  }
  const best = cases.map(() => Number.POSITIVE_INFINITY);
  for (let r = 0; r < REPEATS; r++) {
    for (const [i, c] of cases.entries()) {
      const t0 = performance.now();
      await sessions[i].run(c.feeds);
      best[i] = Math.min(best[i], performance.now() - t0);
    }
  }
  for (const s of sessions) await s.release();
  return best;
}

function opCounts(spec: OnnxModelSpec): string {
  const ops = new Map<string, number>();
  for (const n of spec.nodes) ops.set(n.opType, (ops.get(n.opType) ?? 0) + 1);
  const main = ['Conv', 'ConvTranspose', 'MatMul', 'Gemm', 'Transpose'].filter((t) => ops.has(t));
  return `${spec.nodes.length} (${main.map((t) => `${t} ${ops.get(t)}`).join(', ')})`;
}

async function table(title: string, cases: Case[]): Promise<void> {
  const results: number[][] = [];
  for (const t of THREADS) results.push(await measure(cases, t));
  console.log(`### ${title}\n`);
  console.log(
    `| variant | ${THREADS.map((t) => `${t} thread${t > 1 ? 's' : ''}: ms (x forward)`).join(' | ')} | ONNX nodes |`,
  );
  console.log(`|---|${THREADS.map(() => '---|').join('')}---|`);
  for (const [i, c] of cases.entries()) {
    const cells = THREADS.map((_, k) => {
      const ms = results[k][i];
      return i === 0 ? `${ms.toFixed(1)}` : `${ms.toFixed(1)} (${(ms / results[k][0]).toFixed(2)}x)`;
    });
    console.log(`| ${c.name} | ${cells.join(' | ')} | ${opCounts(c.spec)} |`);
  }
  console.log('');
}

console.log('## Conv-gradient lowering (onnxruntime CPU)\n');
console.log(
  `x[${N},${C},${HW},${HW}] float32; loss mean(y^2); a training step computes the loss and the gradients of ` +
    `all params and of x. Best of ${REPEATS} interleaved runs after one warm-up.\n`,
);
await table(`ConvNeXt-like block: depthwise 7x7 -> channelNorm -> 1x1 ${C}->${4 * C} -> GELU -> 1x1 -> +x`, [
  build('forward only', {}, convnextBlock, true),
  build('train, default (1x1 grads as MatMul, stride-1 dx as flipped-kernel Conv)', {}, convnextBlock),
  build(
    'train, 1x1 weight grads as swapped-axes Conv',
    { pointwiseAsMatMul: false, patchifyAsMatMul: false },
    convnextBlock,
  ),
  build(
    'train, dx by ConvTranspose',
    { inputGradAsFlippedConv: false, pointwiseAsMatMul: false },
    convnextBlock,
  ),
]);
await table(`Downsampling layer: channelNorm -> conv 2x2 stride 2 ${C}->${2 * C}`, [
  build('forward only', {}, downsample, true),
  build('train, default (weight grad by space-to-depth + Gemm)', {}, downsample),
  build('train, weight grad by swapped-axes Conv', { patchifyAsMatMul: false }, downsample),
]);
