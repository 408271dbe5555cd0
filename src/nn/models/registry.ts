/**
 * Named PeakNet configurations and the one way to build a PeakNet graph, used by `model`, `train`,
 * `distill`, `export` and `peaks --method peaknet`.
 *
 * Building is cheap at any size: parameters are created lazily (graph.ts), so shapes, parameter counts
 * and FLOPs of the 673M-parameter teacher cost no weight memory until something reads `.data`
 * (lowering with `paramsAs: 'initializers'`, checkpoints, optimisers).
 */

import { UserError } from '../../util/errors.js';
import { Graph, nodesReaching, type Tensor } from '../graph.js';
import { Scope } from '../layers.js';
import type { OnnxModelSpec } from '../onnx/spec.js';
import { PEAKNET_STRIDE, type PeakNetConfig, parsePeakNetName, validateConfig } from './config.js';
import { COMPONENTS, type Component, peakNetForward } from './peaknet.js';

/**
 * The registry: teacher-class models, then edge models for CPU inference. Why the small ones: on
 * 2 cores the rate is set by GFLOP/Mpix (`braggflow model info`) and, for the smallest, by the
 * memory-bound norms and resizes at stride 4. Measured at 512 x 512, batch 1, 2 intra-op threads on a
 * shared 2-core box (noisy): femto-1x32-h32 ~1.8 Mpix/s, atto-1x32-h32 ~2.5, zepto-1x32-h32 ~5,
 * yocto-1x16-h16 5-11. A 4-Mpixel detector at real-time rates needs the bottom of this list; the
 * others trade speed for capacity. zepto and yocto are braggflow's own ConvNeXtV2-shaped backbones
 * below atto (config.ts).
 */
export const REGISTERED_MODELS: readonly string[] = [
  'peaknet-huge-4x512',
  'peaknet-large-4x512',
  'peaknet-base-4x512',
  'peaknet-tiny-4x512',
  'peaknet-nano-4x512',
  'peaknet-atto-4x512',
  'peaknet-atto-2x512',
  // Edge, 1-5M parameters.
  'peaknet-femto-1x32-h32',
  'peaknet-atto-1x64-h64',
  'peaknet-atto-1x32-h32',
  'peaknet-zepto-1x32-h32',
  // Below 1M: for real-time throughput on 2 cores.
  'peaknet-yocto-1x16-h16',
];

export interface BuildOptions {
  batch?: number;
  heightPx?: number;
  widthPx?: number;
  /** 'initializers' (default): weights baked into the model (inference); 'inputs': fed each run (training). */
  paramsAs?: 'initializers' | 'inputs';
  /** Seeds the parameter initialisers (with each parameter's name). */
  seed?: number;
}

export interface PeakNetModel {
  config: PeakNetConfig;
  graph: Graph;
  /** Graph input `image` [B, 1, H, W] float32. */
  image: Tensor;
  /** Graph output `logits` [B, classes, H, W]. */
  logits: Tensor;
  paramsAs: 'initializers' | 'inputs';
  /**
   * Lowers the inference graph (image -> logits); with 'initializers' this allocates the weights.
   * `batchDim` names axis 0 of image and logits symbolically, so the file serves any batch.
   */
  toOnnx(metadata?: Readonly<Record<string, string>>, options?: { batchDim?: string }): OnnxModelSpec;
}

export function resolveConfig(model: string | PeakNetConfig): PeakNetConfig {
  return typeof model === 'string' ? parsePeakNetName(model) : validateConfig(model);
}

/** Builds PeakNet for a fixed input size (default [1, 1, 256, 256]); H and W must be multiples of 32. */
export function buildPeakNet(model: string | PeakNetConfig, options: BuildOptions = {}): PeakNetModel {
  const config = resolveConfig(model);
  const batch = options.batch ?? 1;
  const heightPx = options.heightPx ?? 256;
  const widthPx = options.widthPx ?? 256;
  if (!Number.isInteger(batch) || batch < 1)
    throw new UserError(`batch must be a positive integer, got ${batch}`);
  for (const [label, size] of [
    ['height', heightPx],
    ['width', widthPx],
  ] as const) {
    if (!Number.isInteger(size) || size < PEAKNET_STRIDE || size % PEAKNET_STRIDE !== 0) {
      throw new UserError(
        `input ${label} ${size} px must be a positive multiple of ${PEAKNET_STRIDE}`,
        undefined,
        config.name,
      );
    }
  }
  const graph = new Graph(config.name, options.seed ?? 0);
  const image = graph.input('image', [batch, config.inChannels, heightPx, widthPx]);
  const paramsAs = options.paramsAs ?? 'initializers';
  // Served graphs (constant weights) lower the class convs for onnxruntime's layouts (peaknet.ts).
  const logits = peakNetForward(
    new Scope(graph),
    image,
    config,
    paramsAs === 'initializers' ? 'grouped' : 'dense',
  );
  graph.output('logits', logits);
  return {
    config,
    graph,
    image,
    logits,
    paramsAs,
    toOnnx: (metadata, options) =>
      graph.toOnnx({
        params: paramsAs,
        batchDim: options?.batchDim,
        outputs: { logits },
        metadata: { model: config.name, config: JSON.stringify(config), ...metadata },
      }),
  };
}

/** Parameter counts per component, from the built graph's params (no weights allocated). */
export function paramCounts(graph: Graph): Record<Component, number> & { total: number } {
  const counts = { backbone: 0, adapters: 0, bifpn: 0, head: 0, total: 0 };
  for (const p of graph.params()) {
    const component = p.name.split('.')[0] as Component;
    if (!COMPONENTS.includes(component)) throw new Error(`param ${p.name} is outside the known components`);
    counts[component] += p.size;
    counts.total += p.size;
  }
  return counts;
}

/** Multiply-accumulates of one op node, for the op types that carry the arithmetic. */
function macsOf(node: Graph['nodes'][number]): number {
  switch (node.op.type) {
    case 'Conv': {
      // Each output element sums over C/groups input channels x the kernel window.
      const weight = node.inputs[1].shape;
      const window = weight.slice(1).reduce((a, b) => a * b, 1);
      return node.outputs[0].size * window;
    }
    case 'ConvTranspose': {
      const weight = node.inputs[1].shape;
      const window = weight.slice(1).reduce((a, b) => a * b, 1);
      return node.inputs[0].size * window;
    }
    case 'MatMul':
    case 'Gemm': {
      const a = node.inputs[0].shape;
      const inner =
        node.op.type === 'Gemm' && (node.attrs as { transA?: boolean }).transA
          ? a[a.length - 2]
          : a[a.length - 1];
      return node.outputs[0].size * inner;
    }
    default:
      return 0;
  }
}

/**
 * Forward FLOPs per megapixel of input, as 2 x MACs of Conv/ConvTranspose/MatMul/Gemm over the nodes
 * that the given outputs depend on. Norms, activations, resizes and adds are not counted (a few % of
 * the total here, and memory- rather than compute-bound).
 */
export function gflopsPerMpix(outputs: readonly Tensor[], inputPixels: number): number {
  let macs = 0;
  for (const node of nodesReaching(outputs)) macs += macsOf(node);
  return (2 * macs) / inputPixels / 1e3;
}

export interface ModelInfo {
  name: string;
  config: PeakNetConfig;
  params: number;
  backboneParams: number;
  /** Adapters + BiFPN. */
  neckParams: number;
  headParams: number;
  gflopsPerMpix: number;
}

/** Counts and FLOPs of a configuration, built at 256 x 256 without allocating weights. */
export function modelInfo(model: string | PeakNetConfig): ModelInfo {
  const built = buildPeakNet(model, { batch: 1, heightPx: 256, widthPx: 256 });
  const counts = paramCounts(built.graph);
  const [batch, , heightPx, widthPx] = built.image.shape;
  return {
    name: built.config.name,
    config: built.config,
    params: counts.total,
    backboneParams: counts.backbone,
    neckParams: counts.adapters + counts.bifpn,
    headParams: counts.head,
    gflopsPerMpix: gflopsPerMpix([built.logits], batch * heightPx * widthPx),
  };
}
