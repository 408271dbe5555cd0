/**
 * Parameter initialisers, drawn from a small seeded PRNG so that building the same model with the same
 * seed gives bit-identical weights on every machine. Each parameter gets its own stream, seeded from the
 * graph seed and the parameter's name: adding or reordering parameters does not change the others.
 *
 * Fans follow PyTorch: for a weight [out, in, k...] fan_in = in * prod(k), fan_out = out * prod(k).
 */

/** sfc32: fast, 128-bit state, good enough statistics for initialisation; deterministic across platforms. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /** A second normal from the last Box-Muller pair. */
  private spare: number | undefined;

  constructor(seed: number, stream = '') {
    // splitmix32 spreads the seed and a FNV-1a hash of the stream name over the state.
    let h = 0x811c9dc5 ^ (seed >>> 0);
    for (let i = 0; i < stream.length; i++) h = Math.imul(h ^ stream.charCodeAt(i), 0x01000193);
    const mix = () => {
      h = (h + 0x9e3779b9) | 0;
      let z = h;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = mix();
    this.b = mix();
    this.c = mix();
    this.d = mix();
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Standard normal by Box-Muller (both values of each pair used). */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const u = 1 - this.uniform(); // (0, 1]: log stays finite
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

export interface Initializer {
  /** Human-readable, e.g. `truncNormal(std=0.02)`; shown by model info. */
  readonly describe: string;
  fill(out: Float32Array | Float64Array, shape: readonly number[], rng: Rng): void;
}

export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length === 0) return { fanIn: 1, fanOut: 1 };
  if (shape.length === 1) return { fanIn: shape[0], fanOut: shape[0] };
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

export function constant(value: number): Initializer {
  return { describe: `constant(${value})`, fill: (out) => out.fill(value) };
}

export function zeros(): Initializer {
  return { describe: 'zeros', fill: (out) => out.fill(0) };
}

export function ones(): Initializer {
  return { describe: 'ones', fill: (out) => out.fill(1) };
}

export function uniform(low: number, high: number): Initializer {
  return {
    describe: `uniform(${low}, ${high})`,
    fill(out, _shape, rng) {
      for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * rng.uniform();
    },
  };
}

export function normal(std: number, mean = 0): Initializer {
  return {
    describe: `normal(mean=${mean}, std=${std})`,
    fill(out, _shape, rng) {
      for (let i = 0; i < out.length; i++) out[i] = mean + std * rng.normal();
    },
  };
}

/**
 * Normal(mean, std) redrawn until inside [low, high] (absolute bounds, as torch.nn.init.trunc_normal_).
 * Default bounds mean +- 2 std; timm's ConvNeXt uses trunc_normal_(std=.02) with the absolute default
 * [-2, 2]: pass `{ low: -2, high: 2 }` to match it exactly.
 */
export function truncNormal(
  std: number,
  options: { mean?: number; low?: number; high?: number } = {},
): Initializer {
  const mean = options.mean ?? 0;
  const low = options.low ?? mean - 2 * std;
  const high = options.high ?? mean + 2 * std;
  if (!(low < high)) throw new Error(`truncNormal: empty interval [${low}, ${high}]`);
  return {
    describe: `truncNormal(mean=${mean}, std=${std}, [${low}, ${high}])`,
    fill(out, _shape, rng) {
      for (let i = 0; i < out.length; i++) {
        let v = mean + std * rng.normal();
        // Rejection is cheap for the usual bounds (>= 95% accepted at +-2 std).
        while (v < low || v > high) v = mean + std * rng.normal();
        out[i] = v;
      }
    },
  };
}

export interface FanOptions {
  mode?: 'fanIn' | 'fanOut';
  /** Negative slope of the following leaky ReLU; PyTorch's default Conv/Linear init uses sqrt(5). */
  a?: number;
}

function kaimingStd(shape: readonly number[], options: FanOptions): number {
  const { fanIn, fanOut } = fans(shape);
  const fan = (options.mode ?? 'fanIn') === 'fanIn' ? fanIn : fanOut;
  const gain = Math.sqrt(2 / (1 + (options.a ?? 0) ** 2));
  return gain / Math.sqrt(fan);
}

/** He uniform: U(-b, b), b = gain * sqrt(3 / fan). `{ a: Math.sqrt(5) }` is PyTorch's Conv/Linear default. */
export function kaimingUniform(options: FanOptions = {}): Initializer {
  return {
    describe: `kaimingUniform(${options.mode ?? 'fanIn'}, a=${options.a ?? 0})`,
    fill(out, shape, rng) {
      const bound = Math.sqrt(3) * kaimingStd(shape, options);
      for (let i = 0; i < out.length; i++) out[i] = (2 * rng.uniform() - 1) * bound;
    },
  };
}

export function kaimingNormal(options: FanOptions = {}): Initializer {
  return {
    describe: `kaimingNormal(${options.mode ?? 'fanIn'}, a=${options.a ?? 0})`,
    fill(out, shape, rng) {
      const std = kaimingStd(shape, options);
      for (let i = 0; i < out.length; i++) out[i] = std * rng.normal();
    },
  };
}

/** Glorot uniform: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform(gain = 1): Initializer {
  return {
    describe: `xavierUniform(gain=${gain})`,
    fill(out, shape, rng) {
      const { fanIn, fanOut } = fans(shape);
      const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
      for (let i = 0; i < out.length; i++) out[i] = (2 * rng.uniform() - 1) * bound;
    },
  };
}

/** PyTorch's default bias init for Conv/Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) of the WEIGHT's fan_in. */
export function biasUniform(weightShape: readonly number[]): Initializer {
  const bound = 1 / Math.sqrt(fans(weightShape).fanIn);
  return { ...uniform(-bound, bound), describe: `biasUniform(fan_in=${fans(weightShape).fanIn})` };
}
