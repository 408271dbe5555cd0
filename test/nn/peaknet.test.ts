import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTrainingGraph } from '../../src/nn/autodiff.js';
import { Graph } from '../../src/nn/graph.js';
import { Rng } from '../../src/nn/init.js';
import { Scope } from '../../src/nn/layers.js';
import { focalLoss } from '../../src/nn/losses.js';
import {
  BACKBONE_VARIANTS,
  CONVNEXTV2_VARIANTS,
  expectedParamCounts,
  type PeakNetConfig,
  parsePeakNetName,
} from '../../src/nn/models/config.js';
import { peakNetForward } from '../../src/nn/models/peaknet.js';
import {
  buildPeakNet,
  gflopsPerMpix,
  modelInfo,
  paramCounts,
  REGISTERED_MODELS,
} from '../../src/nn/models/registry.js';
import { encodeModel } from '../../src/nn/onnx/emit.js';
import { createSession, type HostTensor, hostTensor } from '../../src/nn/runtime.js';
import { UserError } from '../../src/util/errors.js';

/** The published counts (computed from the structure in the task's spec), from the built graphs. */
const PUBLISHED_COUNTS: Record<string, number> = {
  'peaknet-huge-4x512': 672_994_084,
  'peaknet-base-4x512': 101_497_956,
  'peaknet-tiny-4x512': 41_426_468,
  'peaknet-nano-4x512': 28_420_180,
  'peaknet-atto-4x512': 16_518_300,
  'peaknet-atto-2x512': 13_354_110,
  'peaknet-atto-1x32-h32': 3_478_031,
};

describe('PeakNet names', () => {
  it('parses backbone, BiFPN blocks, width and head width', () => {
    const c = parsePeakNetName('peaknet-atto-1x32-h32');
    assert.deepEqual([c.backbone, c.bifpnBlocks, c.bifpnChannels, c.headChannels], ['atto', 1, 32, 32]);
    assert.deepEqual(c.dims, [40, 80, 160, 320]);
    const d = parsePeakNetName('peaknet-base-4x512');
    assert.deepEqual([d.bifpnBlocks, d.bifpnChannels, d.headChannels], [4, 512, 256]);
    assert.deepEqual(d.depths, [3, 3, 27, 3]);
  });

  it('rejects unknown backbones and malformed names with a UserError listing the valid backbones', () => {
    for (const bad of [
      'peaknet-mega-4x512',
      'peaknet-atto',
      'peaknet-atto-4x',
      'resnet-atto-1x32',
      'peaknet-toString-1x8',
    ]) {
      assert.throws(
        () => parsePeakNetName(bad),
        (e: unknown) =>
          e instanceof UserError && Object.keys(BACKBONE_VARIANTS).every((b) => e.message.includes(b)),
        bad,
      );
    }
    assert.throws(() => parsePeakNetName('peaknet-atto-1x0'), UserError);
  });

  it('rejects input sizes that are not multiples of 32', () => {
    assert.throws(() => buildPeakNet('peaknet-atto-1x32-h32', { heightPx: 48, widthPx: 64 }), UserError);
  });
});

describe('PeakNet parameter counts (from the built graph, no weights allocated)', () => {
  for (const [name, expected] of Object.entries(PUBLISHED_COUNTS)) {
    it(`${name} has ${expected.toLocaleString('en-US')} parameters`, () => {
      const model = buildPeakNet(name);
      const counts = paramCounts(model.graph);
      assert.equal(counts.total, expected);
      // Building counted shapes only: not one weight array was created.
      assert.ok(model.graph.params().every((p) => !model.graph.getParam(p.name).initialized));
      // The closed form agrees component by component.
      const closed = expectedParamCounts(model.config);
      assert.deepEqual(
        [counts.backbone, counts.adapters, counts.bifpn, counts.head],
        [closed.backbone, closed.adapters, closed.bifpn, closed.head],
      );
    });
  }

  it("huge's backbone alone has 657,466,304", () => {
    assert.equal(paramCounts(buildPeakNet('peaknet-huge-4x512').graph).backbone, 657_466_304);
  });

  it('every registered model builds and matches the closed form; edge ones stay small', () => {
    for (const name of REGISTERED_MODELS) {
      const info = modelInfo(name);
      assert.equal(info.params, expectedParamCounts(parsePeakNetName(name)).total, name);
      assert.equal(info.params, info.backboneParams + info.neckParams + info.headParams, name);
      assert.ok(info.gflopsPerMpix > 0, name);
    }
    assert.ok(
      REGISTERED_MODELS.filter((n) => modelInfo(n).params >= 1e6 && modelInfo(n).params <= 5e6).length >= 3,
    );
  });

  it('a ConvNeXtV2 block has 8d^2 + 65d parameters', () => {
    const base: PeakNetConfig = { ...parsePeakNetName('peaknet-atto-1x8-h8') };
    const d = CONVNEXTV2_VARIANTS.atto.dims[2];
    const more = buildPeakNet({ ...base, name: 'deeper', depths: [2, 2, 7, 2] }).graph.paramCount();
    assert.equal(more - buildPeakNet(base).graph.paramCount(), 8 * d * d + 65 * d);
  });

  it('FLOPs per megapixel do not depend on the input size and grow with the model', () => {
    const perMpix = (heightPx: number, widthPx: number, batch: number) => {
      const model = buildPeakNet('peaknet-atto-1x32-h32', { heightPx, widthPx, batch });
      return gflopsPerMpix([model.logits], batch * heightPx * widthPx);
    };
    const a = modelInfo('peaknet-atto-1x32-h32').gflopsPerMpix;
    assert.ok(Math.abs(perMpix(64, 64, 1) - a) < 1e-9 * a);
    assert.ok(Math.abs(perMpix(128, 96, 2) - a) < 1e-9 * a);
    // The stem alone: a 4x4 stride-4 conv to 40 channels is 40 MACs per input pixel = 80 FLOP.
    const stemOnly = buildPeakNet('peaknet-atto-1x32-h32', { heightPx: 64, widthPx: 64 });
    const stem = stemOnly.graph.nodes.find((n) => n.op.type === 'Conv');
    assert.ok(stem);
    assert.ok(Math.abs(gflopsPerMpix([stem.outputs[0]], 64 * 64) - 0.08) < 1e-12);
    assert.ok(modelInfo('peaknet-atto-2x512').gflopsPerMpix > a);
    assert.ok(modelInfo('peaknet-yocto-1x16-h16').gflopsPerMpix < a);
  });
});

describe('PeakNet forward in onnxruntime', () => {
  it('peaknet-atto-1x32-h32 maps [1,1,64,64] to finite logits [1,2,64,64]', async () => {
    const model = buildPeakNet('peaknet-atto-1x32-h32', { heightPx: 64, widthPx: 64 });
    const session = await createSession(encodeModel(model.toOnnx()), { intraOpThreads: 1 });
    const rng = new Rng(1, 'image');
    const pixels = Float32Array.from({ length: 64 * 64 }, () => rng.normal());
    const { logits } = await session.run({ image: hostTensor('float32', [1, 1, 64, 64], pixels) });
    await session.release();
    assert.deepEqual(logits.dims, [1, 2, 64, 64]);
    const values = logits.values as Float32Array;
    assert.ok(values.every(Number.isFinite));
    // Not a constant map: the network actually depends on the image.
    assert.ok(Math.max(...values) - Math.min(...values) > 1e-4);
  });

  it('served graphs run the class convs grouped (kept out of NCHWc): the same logits as dense ones', async () => {
    const config = parsePeakNetName('peaknet-yocto-1x16-h16');
    const served = buildPeakNet(config, { batch: 2, heightPx: 64, widthPx: 96, seed: 5 });
    const groupedConvs = served.graph.nodes.filter(
      (n) => n.op.type === 'Conv' && (n.attrs as { groups: number }).groups === config.numClasses,
    );
    assert.equal(groupedConvs.length, 2, 'segmask and final_conv');
    // The same parameters (seeded by name), lowered dense.
    const graph = new Graph(config.name, 5);
    const image = graph.input('image', [2, 1, 64, 96]);
    const logits = peakNetForward(new Scope(graph), image, config, 'dense');
    const dense = graph.toOnnx({ params: 'initializers', outputs: { logits } });
    const rng = new Rng(2, 'image');
    const pixels = Float32Array.from({ length: 2 * 64 * 96 }, () => rng.normal());
    const feeds = { image: hostTensor('float32', [2, 1, 64, 96], pixels) };
    const outputs: Float32Array[] = [];
    for (const spec of [served.toOnnx(), dense]) {
      const session = await createSession(encodeModel(spec), { intraOpThreads: 1 });
      outputs.push((await session.run(feeds)).logits.values as Float32Array);
      await session.release();
    }
    let maxDiff = 0;
    let scale = 0;
    for (let i = 0; i < outputs[0].length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(outputs[0][i] - outputs[1][i]));
      scale = Math.max(scale, Math.abs(outputs[1][i]));
    }
    assert.ok(scale > 1e-3, 'logits are not all zero');
    assert.ok(maxDiff <= 1e-5 * Math.max(1, scale), `grouped vs dense: ${maxDiff} (scale ${scale})`);
  });
});

/** A PeakNet small enough to differentiate numerically in seconds. */
const TINY: PeakNetConfig = {
  name: 'peaknet-gradcheck',
  backbone: 'custom',
  dims: [8, 16, 16, 16],
  depths: [1, 1, 1, 1],
  bifpnBlocks: 1,
  bifpnChannels: 8,
  headChannels: 8,
  inChannels: 1,
  numClasses: 2,
};

describe('PeakNet gradients', () => {
  it('autodiff matches central differences of the focal loss for params of every component', async () => {
    const size = 64;
    const model = buildPeakNet(TINY, { heightPx: size, widthPx: size, paramsAs: 'inputs', seed: 5 });
    const g = model.graph;
    const target = g.input('target', [1, size, size], 'int64');
    const loss = focalLoss(model.logits, target);
    const train = buildTrainingGraph(g, { loss });
    const lossOnly = g.toOnnx({ params: 'inputs', outputs: { loss } });

    const rng = new Rng(7, 'gradcheck');
    // GRN starts as the identity (gamma = beta = 0), which would leave its normalisation untested.
    for (const p of g.params()) {
      if (p.name.endsWith('.grn.gamma') || p.name.endsWith('.grn.beta')) {
        g.getParam(p.name).set(Float32Array.from({ length: p.size }, () => 0.5 * rng.normal()));
      }
    }
    const feeds: Record<string, HostTensor> = {
      image: hostTensor(
        'float32',
        [1, 1, size, size],
        Float32Array.from({ length: size * size }, () => rng.normal()),
      ),
      target: hostTensor(
        'int64',
        [1, size, size],
        BigInt64Array.from({ length: size * size }, () => (rng.uniform() < 0.3 ? 1n : 0n)),
      ),
    };
    for (const p of g.params()) feeds[p.name] = hostTensor('float32', p.shape, g.getParam(p.name).data);

    const trainSession = await createSession(encodeModel(train.spec), { intraOpThreads: 1 });
    const lossSession = await createSession(encodeModel(lossOnly), { intraOpThreads: 1 });
    const analytic = await trainSession.run(feeds);
    const lossAt = async (): Promise<number> =>
      ((await lossSession.run(feeds)).loss.values as Float32Array)[0];

    const checked = [
      'backbone.stem.conv.weight',
      'backbone.stages.0.blocks.0.dwconv.weight',
      'backbone.stages.1.downsample.conv.bias',
      'backbone.stages.2.blocks.0.grn.gamma',
      'backbone.stages.3.blocks.0.pwconv1.weight',
      'backbone.stages.1.out_norm.weight',
      'adapters.2.weight',
      'bifpn.blocks.0.w_td',
      'bifpn.blocks.0.w_bu',
      'bifpn.blocks.0.bu.3.pointwise.weight',
      'head.lateral.3.layers.2.conv.weight',
      'head.lateral.0.layers.0.norm.bias',
      'head.segmask.weight',
      'head.final_conv.bias',
    ];
    const lossValue = (analytic.loss.values as Float32Array)[0];
    const failures: string[] = [];
    for (const name of checked) {
      const values = feeds[name].values as Float32Array;
      const grad = analytic[`grad/${name}`].values as Float32Array;
      // A step of 2% of the tensor's scale: small for the curvature (the 2x2 stride-32 maps under
      // GroupNorm are strongly curved), large enough for float32.
      const rms = Math.sqrt(values.reduce((s, v) => s + v * v, 0) / values.length);
      const eps = 0.02 * Math.max(rms, 0.02);
      // float32 forward passes: the loss carries ~tens of ulps of noise, divided by the 2 eps step.
      const noise = (30 * 1.2e-7 * Math.abs(lossValue)) / (2 * eps);
      // The element with the strongest gradient (a clear signal over float32 noise) and a random one.
      let strongest = 0;
      for (let i = 1; i < grad.length; i++) if (Math.abs(grad[i]) > Math.abs(grad[strongest])) strongest = i;
      const indices = new Set([strongest, Math.floor(rng.uniform() * values.length)]);
      for (const i of indices) {
        const original = values[i];
        values[i] = original + eps;
        const up = await lossAt();
        values[i] = original - eps;
        const down = await lossAt();
        values[i] = original;
        const numeric = (up - down) / (2 * eps);
        if (!(Math.abs(numeric - grad[i]) <= 0.02 * Math.abs(grad[i]) + noise)) {
          failures.push(`${name}[${i}]: autodiff ${grad[i]} vs numeric ${numeric}`);
        }
      }
    }
    await trainSession.release();
    await lossSession.release();
    assert.deepEqual(failures, []);
  });
});
