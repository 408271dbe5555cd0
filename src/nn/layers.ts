/**
 * Reusable layers over the graph IR, all in NCHW. A layer is a function of a `Scope` (graph + dotted
 * name prefix, so every parameter gets its checkpoint key, e.g. `backbone.stages.1.blocks.0.dwconv.weight`)
 * and its input tensor(s). Layers declare their parameters as they are called: building a model is
 * running its forward function once.
 */
import type { Graph, Tensor } from './graph.js';
import { biasUniform, type Initializer, kaimingUniform, ones, zeros } from './init.js';
import * as op from './ops/index.js';

/** A graph plus the name prefix for the parameters declared inside it. */
export class Scope {
  constructor(
    readonly graph: Graph,
    readonly prefix = '',
  ) {}

  /** `scope.child('stages', 1)` -> prefix `stages.1`. */
  child(...parts: (string | number)[]): Scope {
    return new Scope(this.graph, this.key(parts.join('.')));
  }

  key(name: string): string {
    return this.prefix === '' ? name : `${this.prefix}.${name}`;
  }

  param(name: string, shape: readonly number[], init: Initializer): Tensor {
    return this.graph.param(this.key(name), shape, init);
  }
}

/** PyTorch's default Conv2d weight init (kaiming uniform, a = sqrt 5). */
export const torchDefaultWeight = (): Initializer => kaimingUniform({ a: Math.sqrt(5) });

export interface Conv2dOptions {
  outChannels: number;
  kernel: number;
  stride?: number;
  /** Symmetric zero padding on each side; default 0. */
  pad?: number;
  /** Channel groups; `groups = C` is a depthwise conv. */
  groups?: number;
  /** Default true. */
  bias?: boolean;
  /** Default: PyTorch's Conv2d default. */
  weightInit?: Initializer;
  /** Default: PyTorch's default bias init (uniform in +-1/sqrt(fan_in)); zeros() for ConvNeXt. */
  biasInit?: Initializer;
}

/** 2-D convolution; params `weight` [out, in/groups, k, k] and `bias` [out], as torch.nn.Conv2d. */
export function conv2d(scope: Scope, x: Tensor, o: Conv2dOptions): Tensor {
  const groups = o.groups ?? 1;
  const inChannels = x.shape[1];
  const weightShape = [o.outChannels, inChannels / groups, o.kernel, o.kernel];
  const weight = scope.param('weight', weightShape, o.weightInit ?? torchDefaultWeight());
  const bias =
    (o.bias ?? true)
      ? scope.param('bias', [o.outChannels], o.biasInit ?? biasUniform(weightShape))
      : undefined;
  const stride = o.stride ?? 1;
  const pad = o.pad ?? 0;
  return op.conv(x, weight, bias, { strides: [stride, stride], pads: [pad, pad], groups });
}

/** A Linear layer applied at every pixel of NCHW: a 1x1 conv, so no transposes are needed. */
export function pointwiseLinear(
  scope: Scope,
  x: Tensor,
  outChannels: number,
  weightInit?: Initializer,
  biasInit?: Initializer,
): Tensor {
  return conv2d(scope, x, { outChannels, kernel: 1, weightInit, biasInit });
}

/** LayerNorm over the channel axis of NCHW (ConvNeXt's "channels_first" LayerNorm); params `weight`, `bias` [C]. */
export function channelLayerNorm(scope: Scope, x: Tensor, eps = 1e-6): Tensor {
  const c = x.shape[1];
  return op.channelNorm(x, scope.param('weight', [c], ones()), scope.param('bias', [c], zeros()), { eps });
}

/** GroupNorm; params `weight`, `bias` [C] (per channel, as torch.nn.GroupNorm). */
export function groupNorm(scope: Scope, x: Tensor, groups: number, eps = 1e-5): Tensor {
  const c = x.shape[1];
  return op.groupNorm(x, groups, scope.param('weight', [c], ones()), scope.param('bias', [c], zeros()), {
    eps,
  });
}

/** The usual 32 groups, or the largest divisor of C below it when C is small or not a multiple of 32. */
export function groupCount(channels: number, preferred = 32): number {
  for (let g = Math.min(preferred, channels); g > 1; g--) if (channels % g === 0) return g;
  return 1;
}

/**
 * Global Response Normalisation (ConvNeXtV2), NCHW: Gx = ||x||_2 over H, W per channel;
 * Nx = Gx / (mean over channels of Gx + eps); out = gamma * (x * Nx) + beta + x. Params `gamma`, `beta`
 * [C] start at zero, so the layer starts as the identity (as in the reference implementation).
 */
export function grn(scope: Scope, x: Tensor, eps = 1e-6): Tensor {
  const c = x.shape[1];
  const gamma = op.reshape(scope.param('gamma', [c], zeros()), [1, c, 1, 1]);
  const beta = op.reshape(scope.param('beta', [c], zeros()), [1, c, 1, 1]);
  const gx = op.reduceL2(x, [2, 3], true);
  const nx = op.div(gx, op.add(op.reduceMean(gx, [1], true), eps));
  // gamma * (x * Nx) + beta + x = x * (gamma * Nx + 1) + beta: the factor is [N, C, 1, 1], so the
  // map is read twice instead of four times (GRN at the stride-4 stage was ~8 % of a served tile).
  return op.add(op.mul(x, op.add(op.mul(gamma, nx), 1)), beta);
}

/** Bilinear resampling by an integer factor up (2, 4) or down (0.5), half-pixel centres (PyTorch's align_corners=False). */
export function bilinear(x: Tensor, scale: number): Tensor {
  return op.resize(x, { scales: [scale, scale] });
}
