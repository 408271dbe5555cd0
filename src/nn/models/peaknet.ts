/**
 * PeakNet: ConvNeXtV2 backbone -> 1x1 adapters -> BiFPN -> multi-scale segmentation head, all NCHW,
 * following carbonscott/peaknet's ConvNeXtV2-BiFPN net (structure and parameter layout), with two
 * deliberate changes for an inference engine that sees single frames:
 * - BiFPN nodes normalise with a channel LayerNorm (2F params, like the reference's BatchNorm) instead of
 *   BatchNorm: no running statistics, no train/eval difference, batch-size independent.
 * - BiFPN nodes use GELU (the reference: ReLU) like every other activation here; it is smooth, which
 *   also keeps gradient checks free of kinks.
 *
 * Parameter keys mirror a PyTorch module tree (`backbone.stages.2.blocks.5.pwconv1.weight`), with the
 * four components under `backbone.`, `adapters.`, `bifpn.`, `head.`.
 */
import type { Tensor } from '../graph.js';
import { type Initializer, kaimingNormal, kaimingUniform, ones, truncNormal, zeros } from '../init.js';
import {
  bilinear,
  type Conv2dOptions,
  channelLayerNorm,
  conv2d,
  grn,
  groupCount,
  groupNorm,
  pointwiseLinear,
  type Scope,
} from '../layers.js';
import * as op from '../ops/index.js';
import type { PeakNetConfig } from './config.js';

/** Top-level parameter prefixes, one per component. */
export const COMPONENTS = ['backbone', 'adapters', 'bifpn', 'head'] as const;
export type Component = (typeof COMPONENTS)[number];

/** timm/HF ConvNeXt init: trunc_normal(std 0.02) with absolute bounds +-2, zero biases. */
const convNextWeight = (): Initializer => truncNormal(0.02, { low: -2, high: 2 });

/** LayerNorm eps of the backbone (ConvNeXt: 1e-6) and of the BiFPN nodes. */
const BACKBONE_NORM_EPS = 1e-6;
const BIFPN_NORM_EPS = 1e-5;
const GROUP_NORM_EPS = 1e-5;
/** Fast normalised fusion's eps (EfficientDet). */
const FUSION_EPS = 1e-4;

/** One ConvNeXtV2 block, 8d^2 + 65d params: dw 7x7 -> LN -> d->4d -> GELU -> GRN -> 4d->d -> + x. */
export function convNextV2Block(scope: Scope, x: Tensor): Tensor {
  const d = x.shape[1];
  const init = { weightInit: convNextWeight(), biasInit: zeros() };
  let y = conv2d(scope.child('dwconv'), x, { outChannels: d, kernel: 7, pad: 3, groups: d, ...init });
  y = channelLayerNorm(scope.child('norm'), y, BACKBONE_NORM_EPS);
  y = pointwiseLinear(scope.child('pwconv1'), y, 4 * d, init.weightInit, init.biasInit);
  y = op.gelu(y);
  y = grn(scope.child('grn'), y);
  y = pointwiseLinear(scope.child('pwconv2'), y, d, init.weightInit, init.biasInit);
  return op.add(x, y);
}

/** ConvNeXtV2 backbone; returns the four LayerNorm'ed stage outputs (strides 4, 8, 16, 32). */
export function convNextV2Backbone(scope: Scope, image: Tensor, config: PeakNetConfig): Tensor[] {
  const init = { weightInit: convNextWeight(), biasInit: zeros() };
  let x = conv2d(scope.child('stem', 'conv'), image, {
    outChannels: config.dims[0],
    kernel: 4,
    stride: 4,
    ...init,
  });
  x = channelLayerNorm(scope.child('stem', 'norm'), x, BACKBONE_NORM_EPS);
  const features: Tensor[] = [];
  for (let stage = 0; stage < 4; stage++) {
    const stageScope = scope.child('stages', stage);
    if (stage > 0) {
      x = channelLayerNorm(stageScope.child('downsample', 'norm'), x, BACKBONE_NORM_EPS);
      x = conv2d(stageScope.child('downsample', 'conv'), x, {
        outChannels: config.dims[stage],
        kernel: 2,
        stride: 2,
        ...init,
      });
    }
    for (let block = 0; block < config.depths[stage]; block++)
      x = convNextV2Block(stageScope.child('blocks', block), x);
    // The normalised copy feeds the neck; the next stage continues from the un-normalised x (as HF's backbone).
    features.push(channelLayerNorm(stageScope.child('out_norm'), x, BACKBONE_NORM_EPS));
  }
  return features;
}

/** 1x1 conv (bias) from each stage's channels to the BiFPN width F. */
export function adapters(scope: Scope, features: readonly Tensor[], width: number): Tensor[] {
  // PeakNet: kaiming_uniform(fan_in, linear) weights (gain 1, i.e. a = 1), zero biases.
  return features.map((f, level) =>
    pointwiseLinear(scope.child(level), f, width, kaimingUniform({ a: 1 }), zeros()),
  );
}

/** Separable conv (1x1 depthwise + 1x1 pointwise, no bias) -> channel LayerNorm -> GELU: F^2 + 3F params. */
function bifpnNode(scope: Scope, x: Tensor): Tensor {
  const f = x.shape[1];
  let y = conv2d(scope.child('depthwise'), x, { outChannels: f, kernel: 1, groups: f, bias: false });
  y = conv2d(scope.child('pointwise'), y, { outChannels: f, kernel: 1, bias: false });
  y = channelLayerNorm(scope.child('norm'), y, BIFPN_NORM_EPS);
  return op.gelu(y);
}

/** Fast normalised fusion weights: relu(w) / (row sum + eps), one row per node; returns scalars [node][input]. */
function fusionWeights(scope: Scope, name: string, nodes: number, inputs: number): Tensor[][] {
  const raw = op.relu(scope.param(name, [nodes, inputs], ones()));
  const normalised = op.div(raw, op.add(op.reduceSum(raw, [1], true), FUSION_EPS));
  const rows: Tensor[][] = [];
  for (let node = 0; node < nodes; node++) {
    const row: Tensor[] = [];
    for (let i = 0; i < inputs; i++) {
      row.push(
        op.reshape(op.slice(normalised, { axes: [0, 1], starts: [node, i], ends: [node + 1, i + 1] }), []),
      );
    }
    rows.push(row);
  }
  return rows;
}

function weightedSum(weights: readonly Tensor[], maps: readonly Tensor[]): Tensor {
  let sum = op.mul(weights[0], maps[0]);
  for (let i = 1; i < maps.length; i++) sum = op.add(sum, op.mul(weights[i], maps[i]));
  return sum;
}

/**
 * One BiFPN block on levels p[0..3] (strides 4..32), 6 (F^2 + 3F) + 15 params.
 * Top-down (weights `w_td` [3, 2]): m[l] = node(w0 p[l] + w1 up(m[l+1])), with m[3] = p[3].
 * Bottom-up (weights `w_bu` [3, 3]): q[l] = node(w0 p[l] + w1 m[l] + w2 down(q[l-1])), q[0] = m[0]; the
 * coarsest level has no top-down result and, as in PeakNet, uses its input in both of the first two slots.
 */
export function bifpnBlock(scope: Scope, p: readonly Tensor[]): Tensor[] {
  const wTd = fusionWeights(scope, 'w_td', 3, 2);
  const wBu = fusionWeights(scope, 'w_bu', 3, 3);
  const m: Tensor[] = [];
  m[3] = p[3];
  for (let k = 0; k < 3; k++) {
    const level = 2 - k;
    const fused = weightedSum(wTd[k], [p[level], bilinear(m[level + 1], 2)]);
    m[level] = bifpnNode(scope.child('td', level), fused);
  }
  const q: Tensor[] = [m[0]];
  for (let k = 0; k < 3; k++) {
    const level = k + 1;
    const fused = weightedSum(wBu[k], [p[level], m[level], bilinear(q[level - 1], 0.5)]);
    q[level] = bifpnNode(scope.child('bu', level), fused);
  }
  return q;
}

/** Conv layers per level in the head (strides 4, 8, 16, 32): each but the stride-4 one ends in a x2 upsample. */
export const HEAD_LAYERS_PER_LEVEL = [1, 1, 2, 3] as const;

/**
 * How the head's two class convolutions (segmask 1x1, final 3x3) are lowered. `dense`: plain convs.
 * `grouped`: the same weights as a grouped conv (one group per class) over the input repeated once
 * per class, which is the same arithmetic. Why: onnxruntime's CPU provider turns every dense conv
 * with constant weights into its blocked NCHWc layout, padding the 2 class channels to 16 and
 * dragging the x4 upsample between the two convs along at 16 channels; at 256 x 256 that tail was a
 * fifth of the model's time. A grouped conv whose output channels are no multiple of the block stays
 * in NCHW, so the tail runs at its 2 channels. Served graphs (weights as initialisers) use it;
 * training graphs keep the dense form.
 */
export type ClassConvs = 'dense' | 'grouped';

function classConv(scope: Scope, x: Tensor, o: Conv2dOptions, layout: ClassConvs): Tensor {
  if (layout === 'dense' || o.outChannels === 1) return conv2d(scope, x, o);
  const repeated = op.concat(
    Array.from({ length: o.outChannels }, () => x),
    1,
  );
  return conv2d(scope, repeated, { ...o, groups: o.outChannels });
}

/**
 * Segmentation head: per level, [3x3 conv (bias) + GroupNorm + GELU (+ x2 bilinear)] x n, summed at
 * stride 4; 1x1 conv H -> classes; x4 bilinear; final 3x3 conv classes -> classes.
 */
export function segmentationHead(
  scope: Scope,
  levels: readonly Tensor[],
  config: PeakNetConfig,
  classConvs: ClassConvs = 'dense',
): Tensor {
  const h = config.headChannels;
  // PeakNet's init: kaiming_normal(fan_out, relu) lateral convs; fan_in linear segmask; fan_out linear final conv.
  const lateralInit = { weightInit: kaimingNormal({ mode: 'fanOut' }), biasInit: zeros() };
  let sum: Tensor | undefined;
  for (let level = 3; level >= 0; level--) {
    let x = levels[level];
    for (let layer = 0; layer < HEAD_LAYERS_PER_LEVEL[level]; layer++) {
      const layerScope = scope.child('lateral', level, 'layers', layer);
      x = conv2d(layerScope.child('conv'), x, { outChannels: h, kernel: 3, pad: 1, ...lateralInit });
      x = op.gelu(groupNorm(layerScope.child('norm'), x, groupCount(h), GROUP_NORM_EPS));
      if (level > 0) x = bilinear(x, 2);
    }
    sum = sum === undefined ? x : op.add(sum, x);
  }
  const classes = config.numClasses;
  let logits = classConv(
    scope.child('segmask'),
    sum as Tensor,
    { outChannels: classes, kernel: 1, weightInit: kaimingNormal({ a: 1 }), biasInit: zeros() },
    classConvs,
  );
  logits = bilinear(logits, 4);
  return classConv(
    scope.child('final_conv'),
    logits,
    {
      outChannels: classes,
      kernel: 3,
      pad: 1,
      weightInit: kaimingNormal({ mode: 'fanOut', a: 1 }),
      biasInit: zeros(),
    },
    classConvs,
  );
}

/** The whole network on an image [B, C, H, W] (H, W multiples of 32): logits [B, classes, H, W]. */
export function peakNetForward(
  root: Scope,
  image: Tensor,
  config: PeakNetConfig,
  classConvs: ClassConvs = 'dense',
): Tensor {
  const features = convNextV2Backbone(root.child('backbone'), image, config);
  let levels = adapters(root.child('adapters'), features, config.bifpnChannels);
  for (let block = 0; block < config.bifpnBlocks; block++)
    levels = bifpnBlock(root.child('bifpn', 'blocks', block), levels);
  return segmentationHead(root.child('head'), levels, config, classConvs);
}
