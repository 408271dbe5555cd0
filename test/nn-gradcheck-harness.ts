/**
 * Gradient checking through onnxruntime: the analytic gradient (our autodiff, lowered to ONNX) against
 * central finite differences of the forward graph (also run in ORT), along random directions.
 *
 * The loss is L = sum(y * r) with a fixed random r, so every output element matters. Graphs are built in
 * float64 when ORT's CPU kernels support every op in them (then eps 1e-6 and tight tolerances); when a
 * session cannot be created in float64 (e.g. Conv, Resize, Erf have float kernels only) the same graph is
 * rebuilt in float32 and checked with eps 1e-2 and a looser tolerance.
 */
import { buildTrainingGraph } from '../src/nn/autodiff.js';
import { type DType, Graph, type Tensor } from '../src/nn/graph.js';
import { Rng } from '../src/nn/init.js';
import { encodeModel } from '../src/nn/onnx/emit.js';
import { cast, mul, reduceSum } from '../src/nn/ops/index.js';
import { createSession, type HostTensor, type Session } from '../src/nn/runtime.js';

export interface InputSpec {
  shape: number[];
  /** Values generator (default standard normal); use it to stay away from kinks or log(0). */
  gen?: (rng: Rng) => number;
  /** Not differentiated (e.g. a bool mask or an int input). */
  dtype?: DType;
  constant?: boolean;
}

export interface CheckResult {
  dtype: 'float32' | 'float64';
  /** Worst |analytic - numeric| / (atol + rtol * max(|analytic|, |numeric|)) over all directions: pass if <= 1. */
  worstRatio: number;
  /** Worst relative error |a - n| / max(|a|, |n|, tiny). */
  worstRel: number;
  details: string[];
}

export interface CheckOptions {
  seed?: number;
  directions?: number;
  /** Force a dtype (skips the float64 attempt). */
  dtype?: 'float32' | 'float64';
  tolerance?: { float64?: [number, number]; float32?: [number, number] };
}

type Build = (g: Graph, inputs: Tensor[], dtype: 'float32' | 'float64') => Tensor;

function typed(dtype: DType, n: number): Float32Array | Float64Array {
  return dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
}

async function tryBuild(
  specs: InputSpec[],
  build: Build,
  dtype: 'float32' | 'float64',
  seed: number,
): Promise<{ train: Session; fwd: Session; feeds: Record<string, HostTensor>; names: string[] } | undefined> {
  const g = new Graph('gradcheck', seed);
  const rng = new Rng(seed, 'inputs');
  const feeds: Record<string, HostTensor> = {};
  const inputs = specs.map((s, i) => {
    const dt = s.dtype ?? dtype;
    const name = `x${i}`;
    const size = s.shape.reduce((a, b) => a * b, 1);
    const gen = s.gen ?? ((r: Rng) => r.normal());
    let values: HostTensor['values'];
    if (dt === 'bool') values = Uint8Array.from({ length: size }, () => (gen(rng) > 0 ? 1 : 0));
    else if (dt === 'int64')
      values = BigInt64Array.from({ length: size }, () => BigInt(Math.floor(gen(rng))));
    else {
      const v = typed(dt, size);
      for (let k = 0; k < size; k++) v[k] = gen(rng);
      values = v;
    }
    feeds[name] = { dataType: dt, dims: s.shape, values };
    return g.input(name, s.shape, dt);
  });
  const y = build(g, inputs, dtype);
  const r = typed(y.dtype, y.size);
  for (let k = 0; k < r.length; k++) r[k] = rng.normal();
  // Sum in float64 when the graph is float32 would need Cast; keep the loss in the graph's dtype.
  const loss = reduceSum(mul(cast(y, dtype), g.constant(r, y.shape, dtype)));
  const wrt = inputs.filter((_, i) => !specs[i].constant && (specs[i].dtype ?? dtype) === dtype);
  const trainSpec = buildTrainingGraph(g, { loss, wrt }).spec;
  const fwdSpec = g.toOnnx({ outputs: { loss } });
  try {
    const train = await createSession(encodeModel(trainSpec), { intraOpThreads: 1 });
    const fwd = await createSession(encodeModel(fwdSpec), { intraOpThreads: 1 });
    return { train, fwd, feeds, names: wrt.map((t) => (t.source as { name: string }).name) };
  } catch (error) {
    if (dtype === 'float64') return undefined;
    throw error;
  }
}

/** Checks d(sum(build(inputs) * r))/d(input) for every non-constant input. Throws nothing; returns ratios. */
export async function gradcheck(
  specs: InputSpec[],
  build: Build,
  options: CheckOptions = {},
): Promise<CheckResult> {
  const seed = options.seed ?? 1;
  let dtype: 'float32' | 'float64' = options.dtype ?? 'float64';
  let built = await tryBuild(specs, build, dtype, seed);
  if (!built) {
    dtype = 'float32';
    built = await tryBuild(specs, build, dtype, seed);
  }
  if (!built) throw new Error('unreachable');
  const { train, fwd, feeds, names } = built;
  const [atol, rtol] =
    dtype === 'float64'
      ? (options.tolerance?.float64 ?? [1e-8, 1e-6])
      : (options.tolerance?.float32 ?? [1e-3, 5e-3]);
  const eps = dtype === 'float64' ? 1e-6 : 1e-2;
  const rng = new Rng(seed, 'directions');
  const grads = await train.run(feeds);
  const fwdFeeds = Object.fromEntries(Object.entries(feeds).filter(([k]) => fwd.inputNames.includes(k)));
  const lossAt = async (name: string, dir: Float32Array | Float64Array, scale: number) => {
    const base = feeds[name].values as Float32Array | Float64Array;
    const moved = typed(dtype, base.length);
    for (let k = 0; k < base.length; k++) moved[k] = base[k] + scale * dir[k];
    const out = await fwd.run({ ...fwdFeeds, [name]: { ...feeds[name], values: moved } });
    return Number((out.loss.values as Float64Array)[0]);
  };
  let worstRatio = 0;
  let worstRel = 0;
  const details: string[] = [];
  for (const name of names) {
    const grad = grads[`grad/${name}`].values as Float32Array | Float64Array;
    for (let d = 0; d < (options.directions ?? 2); d++) {
      const dir = typed(dtype, grad.length);
      for (let k = 0; k < dir.length; k++) dir[k] = rng.normal();
      let analytic = 0;
      for (let k = 0; k < dir.length; k++) analytic += grad[k] * dir[k];
      // Directional derivative by central differences; eps relative to the direction's scale.
      const numeric = ((await lossAt(name, dir, eps)) - (await lossAt(name, dir, -eps))) / (2 * eps);
      const err = Math.abs(analytic - numeric);
      const scale = Math.max(Math.abs(analytic), Math.abs(numeric));
      const ratio = err / (atol + rtol * scale);
      worstRatio = Math.max(worstRatio, ratio);
      worstRel = Math.max(worstRel, err / Math.max(scale, 1e-30));
      details.push(`${name} dir${d}: analytic ${analytic.toPrecision(8)} numeric ${numeric.toPrecision(8)}`);
    }
  }
  await train.release();
  await fwd.release();
  return { dtype, worstRatio, worstRel, details };
}
