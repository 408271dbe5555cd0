/**
 * The optimiser side of training, on plain Float32Arrays updated in place: AdamW with decoupled
 * weight decay and bias correction (the PyTorch `torch.optim.AdamW` update), global-norm gradient
 * clipping, and the learning-rate schedule (linear warm-up, then cosine decay to a floor).
 *
 * Scalars (bias corrections, step sizes) are computed in float64 once per tensor; the per-element
 * loops only do float32-array reads and writes, and nothing is allocated per step.
 */

export interface AdamWConfig {
  /** First-moment decay; default 0.9. */
  beta1: number;
  /** Second-moment decay; default 0.95. */
  beta2: number;
  /** Added to sqrt(v̂); default 1e-8. */
  eps: number;
  /** Decoupled weight decay per unit learning rate; default 0.05. */
  weightDecay: number;
}

export const DEFAULT_ADAMW: Readonly<AdamWConfig> = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.05 };

/**
 * One AdamW update of one tensor, in place, as torch.optim.AdamW does it:
 *   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
 *   p ← p − lr/(1−β1ᵗ) · m / (sqrt(v)/sqrt(1−β2ᵗ) + eps)
 * `step` is the 1-based index of this update (t above). `gradScale` multiplies g on the fly (the
 * clipping factor), so clipping costs no extra pass over the gradients.
 */
export function adamwUpdate(
  param: Float32Array,
  grad: Float32Array,
  m: Float32Array,
  v: Float32Array,
  lr: number,
  step: number,
  config: AdamWConfig = DEFAULT_ADAMW,
  weightDecay: number = config.weightDecay,
  gradScale = 1,
): void {
  const n = param.length;
  if (grad.length !== n || m.length !== n || v.length !== n) {
    throw new Error(`adamw: lengths differ (param ${n}, grad ${grad.length}, m ${m.length}, v ${v.length})`);
  }
  if (!(step >= 1)) throw new Error(`adamw: step must be >= 1, got ${step}`);
  const { beta1, beta2, eps } = config;
  const decay = 1 - lr * weightDecay;
  const oneMinusBeta1 = 1 - beta1;
  const oneMinusBeta2 = 1 - beta2;
  const stepSize = lr / (1 - beta1 ** step);
  const invSqrtBias2 = 1 / Math.sqrt(1 - beta2 ** step);
  for (let i = 0; i < n; i++) {
    const g = grad[i] * gradScale;
    const mi = beta1 * m[i] + oneMinusBeta1 * g;
    const vi = beta2 * v[i] + oneMinusBeta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - (stepSize * mi) / (Math.sqrt(vi) * invSqrtBias2 + eps);
  }
}

/** One parameter tensor the optimiser updates. */
export interface OptimParam {
  values: Float32Array;
  /** Whether weight decay applies (commonly off for biases and norm scales). Default true. */
  decay?: boolean;
}

/** AdamW over a fixed list of tensors: owns the moments and the step count. */
export class AdamW {
  readonly m: Float32Array[];
  readonly v: Float32Array[];
  /** Updates done so far; the next update uses bias corrections for `step + 1`. */
  step = 0;

  constructor(
    readonly params: readonly OptimParam[],
    readonly config: AdamWConfig = DEFAULT_ADAMW,
  ) {
    this.m = params.map((p) => new Float32Array(p.values.length));
    this.v = params.map((p) => new Float32Array(p.values.length));
  }

  /**
   * Applies one update with learning rate `lr`; `grads[i]` belongs to `params[i]`, scaled by
   * `gradScale` (see clipFactor) without modifying the gradient arrays.
   */
  update(grads: readonly Float32Array[], lr: number, gradScale = 1): void {
    if (grads.length !== this.params.length) {
      throw new Error(`adamw: ${grads.length} gradients for ${this.params.length} params`);
    }
    const step = this.step + 1;
    for (let i = 0; i < this.params.length; i++) {
      const param = this.params[i];
      const weightDecay = param.decay === false ? 0 : this.config.weightDecay;
      adamwUpdate(
        param.values,
        grads[i],
        this.m[i],
        this.v[i],
        lr,
        step,
        this.config,
        weightDecay,
        gradScale,
      );
    }
    this.step = step;
  }

  /** Restores moments and step (from a checkpoint); copies into the existing arrays. */
  restore(m: readonly Float32Array[], v: readonly Float32Array[], step: number): void {
    if (m.length !== this.m.length || v.length !== this.v.length)
      throw new Error('adamw: state size mismatch');
    for (let i = 0; i < this.m.length; i++) {
      this.m[i].set(m[i]);
      this.v[i].set(v[i]);
    }
    this.step = step;
  }
}

/** sqrt(Σ g²) over all tensors, accumulated in float64. */
export function globalNorm(grads: readonly Float32Array[]): number {
  let sum = 0;
  for (const grad of grads) {
    for (let i = 0; i < grad.length; i++) sum += grad[i] * grad[i];
  }
  return Math.sqrt(sum);
}

/**
 * The factor global-norm clipping applies: maxNorm/(norm + 1e-6) when that is below 1, else 1 (as
 * torch.nn.utils.clip_grad_norm_). 1 when `maxNorm` is 0, Infinity or the norm is not finite.
 */
export function clipFactor(norm: number, maxNorm: number): number {
  if (!Number.isFinite(norm) || !(maxNorm > 0) || !Number.isFinite(maxNorm)) return 1;
  return Math.min(1, maxNorm / (norm + 1e-6));
}

/**
 * Scales all gradients in place so their global L2 norm is at most `maxNorm` (as
 * torch.nn.utils.clip_grad_norm_: factor maxNorm/(norm + 1e-6) when that is below 1). Returns the
 * norm before clipping; a non-finite norm leaves the gradients untouched so the caller can skip the
 * step. `maxNorm <= 0` or Infinity only measures.
 */
export function clipGradNorm(grads: readonly Float32Array[], maxNorm: number): number {
  const norm = globalNorm(grads);
  const factor = clipFactor(norm, maxNorm);
  if (factor === 1) return norm;
  for (const grad of grads) {
    for (let i = 0; i < grad.length; i++) grad[i] *= factor;
  }
  return norm;
}

export interface LrSchedule {
  peakLr: number;
  /** Steps of linear warm-up from peakLr/warmupSteps up to peakLr. */
  warmupSteps: number;
  /** Step at which the cosine reaches minLr (and stays). */
  totalSteps: number;
  /** Floor of the cosine decay. */
  minLr: number;
}

/**
 * Learning rate for the update with 0-based index `step`:
 * - warm-up, step < warmupSteps: peakLr·(step+1)/warmupSteps (the first update is not wasted at 0,
 *   the last warm-up step reaches peakLr);
 * - then cosine: minLr + (peakLr − minLr)·½(1 + cos(π·p)), p = (step − warmupSteps)/(totalSteps − warmupSteps),
 *   clamped to [0, 1], so step = warmupSteps gives peakLr and step ≥ totalSteps gives minLr.
 */
export function lrAt(step: number, schedule: LrSchedule): number {
  const { peakLr, warmupSteps, totalSteps, minLr } = schedule;
  if (step < warmupSteps) return (peakLr * (step + 1)) / warmupSteps;
  const span = totalSteps - warmupSteps;
  const progress = span <= 0 ? 1 : Math.min(1, Math.max(0, (step - warmupSteps) / span));
  return minLr + (peakLr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
