/**
 * PeakNet configurations: the ConvNeXtV2 backbone variants, the `peaknet-<backbone>-<blocks>x<F>[-h<H>]`
 * naming, and a closed-form parameter count per component.
 *
 * The closed form is a cross-check only: counts that we report come from the built graph's params
 * (see registry.ts); the tests hold the two against each other and against the published numbers.
 */
import { UserError } from '../../util/errors.js';

export type Four = readonly [number, number, number, number];

export interface BackboneVariant {
  /** Channels of the four stages (strides 4, 8, 16, 32). */
  dims: Four;
  /** ConvNeXtV2 blocks per stage. */
  depths: Four;
}

/** The ConvNeXtV2 family (Woo et al. 2023), as used by PeakNet. */
export const CONVNEXTV2_VARIANTS: Readonly<Record<string, BackboneVariant>> = {
  atto: { dims: [40, 80, 160, 320], depths: [2, 2, 6, 2] },
  femto: { dims: [48, 96, 192, 384], depths: [2, 2, 6, 2] },
  pico: { dims: [64, 128, 256, 512], depths: [2, 2, 6, 2] },
  nano: { dims: [80, 160, 320, 640], depths: [2, 2, 8, 2] },
  tiny: { dims: [96, 192, 384, 768], depths: [3, 3, 9, 3] },
  base: { dims: [128, 256, 512, 1024], depths: [3, 3, 27, 3] },
  large: { dims: [192, 384, 768, 1536], depths: [3, 3, 27, 3] },
  huge: { dims: [352, 704, 1408, 2816], depths: [3, 3, 27, 3] },
};

/**
 * braggflow's own backbones below atto, same block design (not published ConvNeXtV2 variants): for CPU
 * edge inference, where the cost of the stride-4 stage and head sets the frame rate (registry.ts has
 * measured rates).
 */
export const EDGE_VARIANTS: Readonly<Record<string, BackboneVariant>> = {
  zepto: { dims: [24, 48, 96, 192], depths: [2, 2, 4, 2] },
  yocto: { dims: [16, 32, 64, 128], depths: [1, 1, 2, 1] },
};

/** Every backbone a PeakNet name may use. */
export const BACKBONE_VARIANTS: Readonly<Record<string, BackboneVariant>> = {
  ...CONVNEXTV2_VARIANTS,
  ...EDGE_VARIANTS,
};

/** Everything that fixes a PeakNet graph's structure (not its input size). */
export interface PeakNetConfig {
  /** Registry name, or a free label for a custom configuration. */
  name: string;
  /** Variant name, or 'custom' when dims/depths were given directly. */
  backbone: string;
  dims: Four;
  depths: Four;
  /** BiFPN blocks (`<blocks>` in the name). */
  bifpnBlocks: number;
  /** BiFPN width F (`<F>` in the name); also the adapters' output channels. */
  bifpnChannels: number;
  /** Segmentation head width H (`-h<H>`; default 256). */
  headChannels: number;
  /** Detector images are single-channel. */
  inChannels: number;
  /** Background and peak. */
  numClasses: number;
}

export const DEFAULT_HEAD_CHANNELS = 256;
/** Total downsampling of the backbone: input height and width must be multiples of this. */
export const PEAKNET_STRIDE = 32;

const NAME_PATTERN = /^peaknet-([a-z]+)-(\d+)x(\d+)(?:-h(\d+))?$/;

function validBackbones(): string {
  return Object.keys(BACKBONE_VARIANTS).join(', ');
}

/** Parses `peaknet-atto-2x512` / `peaknet-atto-1x32-h32`; a bad name is a UserError naming the valid parts. */
export function parsePeakNetName(name: string): PeakNetConfig {
  const match = NAME_PATTERN.exec(name);
  if (!match) {
    throw new UserError(
      `'${name}' is not a PeakNet name: expected peaknet-<backbone>-<blocks>x<F>[-h<H>] with backbone one of ${validBackbones()}`,
      undefined,
      'model',
    );
  }
  const [, backbone, blocksText, widthText, headText] = match;
  const variant = Object.hasOwn(BACKBONE_VARIANTS, backbone) ? BACKBONE_VARIANTS[backbone] : undefined;
  if (!variant) {
    throw new UserError(
      `unknown backbone '${backbone}' in '${name}': valid backbones are ${validBackbones()}`,
      undefined,
      'model',
    );
  }
  return validateConfig({
    name,
    backbone,
    dims: variant.dims,
    depths: variant.depths,
    bifpnBlocks: Number(blocksText),
    bifpnChannels: Number(widthText),
    headChannels: headText === undefined ? DEFAULT_HEAD_CHANNELS : Number(headText),
    inChannels: 1,
    numClasses: 2,
  });
}

/** Checks a (possibly hand-written) configuration; returns it unchanged. */
export function validateConfig(config: PeakNetConfig): PeakNetConfig {
  const positive = (value: number) => Number.isInteger(value) && value > 0;
  const where = config.name;
  if (config.dims.length !== 4 || !config.dims.every(positive)) {
    throw new UserError('dims must be four positive integers', undefined, where);
  }
  if (config.depths.length !== 4 || !config.depths.every(positive)) {
    throw new UserError('depths must be four positive integers', undefined, where);
  }
  if (!Number.isInteger(config.bifpnBlocks) || config.bifpnBlocks < 0) {
    throw new UserError('the BiFPN block count must be a non-negative integer', undefined, where);
  }
  for (const [label, value] of [
    ['BiFPN width F', config.bifpnChannels],
    ['head width H', config.headChannels],
    ['input channels', config.inChannels],
    ['class count', config.numClasses],
  ] as const) {
    if (!positive(value))
      throw new UserError(`${label} must be a positive integer, got ${value}`, undefined, where);
  }
  return config;
}

/** Per-component parameter counts. `neck` = adapters + BiFPN. */
export interface ParamBreakdown {
  backbone: number;
  adapters: number;
  bifpn: number;
  neck: number;
  head: number;
  total: number;
}

/**
 * Closed-form counts from the structure (see layers.ts for the structure itself):
 * - stem: Conv 4x4 (bias) + LayerNorm; downsample: LayerNorm + Conv 2x2 (bias); stage-output LayerNorm;
 * - block: depthwise 7x7 (49d + d) + LN (2d) + d->4d (4d^2 + 4d) + GRN (8d) + 4d->d (4d^2 + d) = 8d^2 + 65d;
 * - adapters: 1x1 conv (bias) d_i -> F;
 * - BiFPN block: 6 nodes x (1x1 depthwise F + pointwise F^2 + norm 2F) + 15 fusion weights;
 * - head: 4 first layers 3x3 F->H (+bias, GN 2H), 3 more H->H, 1x1 H->2 (bias), final 3x3 2->2 (bias).
 */
export function expectedParamCounts(config: PeakNetConfig): ParamBreakdown {
  const { dims, depths, inChannels: cin, bifpnBlocks: blocks, bifpnChannels: f, headChannels: h } = config;
  const classes = config.numClasses;
  let backbone = 16 * cin * dims[0] + dims[0] + 2 * dims[0];
  for (let stage = 0; stage < 4; stage++) {
    const d = dims[stage];
    if (stage > 0) backbone += 2 * dims[stage - 1] + 4 * dims[stage - 1] * d + d;
    backbone += depths[stage] * (8 * d * d + 65 * d) + 2 * d;
  }
  const adapters = dims.reduce((sum, d) => sum + d * f + f, 0);
  const bifpn = blocks * (6 * (f * f + 3 * f) + 3 * 2 + 3 * 3);
  const firstLayer = 9 * f * h + h + 2 * h;
  const laterLayer = 9 * h * h + h + 2 * h;
  const head = 4 * firstLayer + 3 * laterLayer + (h * classes + classes) + (9 * classes * classes + classes);
  const neck = adapters + bifpn;
  return { backbone, adapters, bifpn, neck, head, total: backbone + neck + head };
}
