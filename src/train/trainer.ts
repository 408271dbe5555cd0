/**
 * The training loop's engine: one ONNX training graph (forward + our autodiff's backward, params fed
 * as inputs, outputs loss and one gradient per param) run by one onnxruntime session, with the
 * weights and the AdamW moments held here as Float32Arrays and updated in place.
 *
 * A step: feed the batch and the current weights -> run -> clip the gradients' global norm -> AdamW
 * with the scheduled learning rate. Checkpoints (src/nn/checkpoint.ts) hold weights, moments, the step
 * and both configs, so `Trainer.resume` continues with exactly the step the saved run would have taken.
 *
 * The inference path bakes the same weights into a graph of any batch and image size as initialisers
 * (`inferenceModel`, `loadPeakNetCheckpoint`): weights do not depend on the input size.
 */

import { buildTrainingGraph } from '../nn/autodiff.js';
import { loadCheckpointInto, readCheckpointInfo, saveCheckpoint } from '../nn/checkpoint.js';
import type { DType } from '../nn/graph.js';
import { type DistillOptions, distillationLoss, type FocalOptions, focalLoss } from '../nn/losses.js';
import type { PeakNetConfig } from '../nn/models/config.js';
import { buildPeakNet, type PeakNetModel, resolveConfig } from '../nn/models/registry.js';
import { encodeModel } from '../nn/onnx/emit.js';
import {
  AdamW,
  type AdamWConfig,
  clipFactor,
  DEFAULT_ADAMW,
  globalNorm,
  type LrSchedule,
  lrAt,
} from '../nn/optim.js';
import { createSession, type ExecutionProvider, type HostTensor, type Session } from '../nn/runtime.js';
import { UserError } from '../util/errors.js';

/** Everything that fixes a training run besides the data; stored in checkpoints as JSON. */
export interface TrainingConfig {
  batch: number;
  heightPx: number;
  widthPx: number;
  schedule: LrSchedule;
  adamw: AdamWConfig;
  /** Global-norm clipping threshold; 0 or Infinity: no clipping (the norm is still reported). */
  maxGradNorm: number;
  /**
   * Weight decay on every param; default false: only conv/linear weights (`*.weight` of rank > 1) decay,
   * not biases, norm scales, GRN gamma/beta or BiFPN fusion weights (as timm's ConvNeXt recipes).
   */
  decayAllParams: boolean;
  focal: Required<FocalOptions>;
  /** Seeds the initial weights (with each param's name). */
  seed: number;
  /**
   * Runs whose gradients are averaged into one update (gradient accumulation): an effective batch of
   * batch x accumulation tiles at the memory of one batch. `step` counts updates.
   */
  accumulation: number;
  /**
   * Knowledge distillation instead of the focal loss on masks: the batch carries a teacher's logits
   * and the loss is `distillationLoss` (0.4 MSE + 0.4 T^2 KL at T + 0.2 focal on the teacher's
   * argmax, with `focal` above). Stored with the run so a resumed run builds the same graph.
   */
  distill?: { temperature: number; weights: { mse: number; kl: number; focal: number } };
}

export const DEFAULT_TRAINING: Readonly<TrainingConfig> = {
  batch: 4,
  heightPx: 256,
  widthPx: 256,
  schedule: { peakLr: 3e-4, warmupSteps: 100, totalSteps: 10_000, minLr: 3e-6 },
  adamw: { ...DEFAULT_ADAMW },
  maxGradNorm: 1,
  decayAllParams: false,
  focal: { alpha: [0.25, 0.75], gamma: 2 },
  seed: 0,
  accumulation: 1,
};

export interface RuntimeOptions {
  executionProvider?: ExecutionProvider;
  intraOpThreads?: number;
  /** Write an onnxruntime profile with this prefix (see Session.endProfiling). */
  profilePrefix?: string;
}

export interface TrainerOptions extends RuntimeOptions {
  model: string | PeakNetConfig;
  training?: Partial<TrainingConfig>;
}

/**
 * One batch: images [B, 1, H, W] float32 and per-pixel labels [B, H, W] (0 background, 1 peak), or,
 * when distilling, the teacher's logits [B, 2, H, W].
 */
export interface Batch {
  image: Float32Array;
  target?: Uint8Array;
  teacher?: Float32Array;
  /** The batch's tiles and their shape, when it is not the training config's (see `addShape`). */
  shape?: TileShape;
}

/** Tiles per run and their size. */
export interface TileShape {
  batch: number;
  heightPx: number;
  widthPx: number;
}

const shapeKey = (s: TileShape) => `${s.batch}x${s.heightPx}x${s.widthPx}`;

export interface StepResult {
  /** Updates done after this step. */
  step: number;
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  lr: number;
  /** True when the gradient norm was not finite and the update was skipped. */
  skipped: boolean;
  /** False for a run whose gradients were only accumulated (no update yet). */
  updated: boolean;
  /** Wall time of the onnxruntime run (forward + backward) and of clipping + AdamW, ms. */
  runMs: number;
  updateMs: number;
}

interface TrainableParam {
  name: string;
  shape: readonly number[];
  values: Float32Array;
  feed: HostTensor;
}

const TARGET_DTYPE: DType = 'uint8';

export class Trainer {
  private constructor(
    readonly config: PeakNetConfig,
    readonly training: TrainingConfig,
    readonly model: PeakNetModel,
    private readonly session: Session,
    private readonly params: readonly TrainableParam[],
    /** `grad/<name>` outputs, parallel to `params`. */
    private readonly gradNames: readonly string[],
    readonly optimizer: AdamW,
    private readonly runtime: RuntimeOptions,
  ) {}

  /** Gradient sums of the runs since the last update (accumulation > 1 only). */
  private accumulated: Float32Array[] | undefined;
  /** Training sessions of further tile shapes (`addShape`), with gradient names in `params` order. */
  private readonly shapes = new Map<string, { session: Session; gradNames: readonly string[] }>();
  private runsSinceUpdate = 0;

  /** Builds the training graph and its session once; weights start from the seeded initialisers. */
  static async create(options: TrainerOptions): Promise<Trainer> {
    const config = resolveConfig(options.model);
    const training = mergeTraining(options.training);
    const { model, train } = trainingGraph(config, training, training);
    const { graph } = model;
    const params = train.wrtNames.map((name): TrainableParam => {
      const param = graph.getParam(name);
      const values = param.data;
      return { name, shape: param.shape, values, feed: { dataType: 'float32', dims: param.shape, values } };
    });
    const fed = new Set(['image', training.distill ? 'teacher' : 'target', ...train.wrtNames]);
    const unfed = train.spec.inputs.map((i) => i.name).filter((name) => !fed.has(name));
    if (unfed.length > 0)
      throw new Error(`training graph wants inputs the trainer does not feed: ${unfed.join(', ')}`);
    const session = await createSession(encodeModel(train.spec), {
      executionProvider: options.executionProvider,
      intraOpThreads: options.intraOpThreads,
      profilePrefix: options.profilePrefix,
    });
    const optimizer = new AdamW(
      params.map((p) => ({ values: p.values, decay: training.decayAllParams || decaysByDefault(p) })),
      training.adamw,
    );
    return new Trainer(config, training, model, session, params, train.gradNames, optimizer, options);
  }

  /**
   * Rebuilds a trainer from a checkpoint: model and training config from its metadata (training fields
   * may be overridden, e.g. a longer schedule), weights and AdamW moments from its tensors.
   */
  static async resume(
    path: string,
    options: RuntimeOptions & { training?: Partial<TrainingConfig> } = {},
  ): Promise<Trainer> {
    const info = readCheckpointInfo(path);
    if (!info.hasOptimizer)
      throw new UserError('has no optimizer state to resume from', path, '__metadata__.has_optimizer');
    const saved = (info.trainingConfig ?? {}) as Partial<TrainingConfig>;
    const config = checkpointModelConfig(path, info.modelConfig);
    const trainer = await Trainer.create({
      ...options,
      model: config,
      training: { ...saved, ...options.training },
    });
    try {
      trainer.loadWeights(path, true);
    } catch (error) {
      await trainer.release();
      throw error;
    }
    return trainer;
  }

  /** Updates done so far. */
  get step(): number {
    return this.optimizer.step;
  }

  /** The learning rate the next step will use. */
  get nextLr(): number {
    return lrAt(this.optimizer.step, this.training.schedule);
  }

  /** Parameter names, shapes and the live weight arrays (updated in place by each step). */
  get weights(): readonly { name: string; shape: readonly number[]; values: Float32Array }[] {
    return this.params;
  }

  /**
   * Builds the training graph for another tile shape: the same parameters (fed from the same
   * arrays), so a step of any shape updates the one set of weights. Batches of that shape say so
   * (`Batch.shape`). Not for distillation (the teacher's logits are cut for the config's tile).
   */
  async addShape(shape: TileShape): Promise<void> {
    const key = shapeKey(shape);
    if (key === shapeKey(this.training) || this.shapes.has(key)) return;
    if (this.training.distill !== undefined)
      throw new UserError('distillation trains on the config tile only; drop `shapes`', undefined, 'shapes');
    const { train } = trainingGraph(this.config, this.training, shape);
    const gradOf = new Map(train.wrtNames.map((name, i) => [name, train.gradNames[i]]));
    const gradNames = this.params.map((p) => {
      const grad = gradOf.get(p.name);
      if (grad === undefined) throw new Error(`addShape: the ${key} graph has no gradient for ${p.name}`);
      return grad;
    });
    const session = await createSession(encodeModel(train.spec), {
      executionProvider: this.runtime.executionProvider,
      intraOpThreads: this.runtime.intraOpThreads,
    });
    this.shapes.set(key, { session, gradNames });
  }

  /** Runs forward + backward on a batch and applies one AdamW update. */
  async trainStep(batch: Batch): Promise<StepResult> {
    const { batch: b, heightPx: h, widthPx: w } = batch.shape ?? this.training;
    const extra = batch.shape === undefined ? undefined : this.shapes.get(shapeKey(batch.shape));
    if (batch.shape !== undefined && extra === undefined && shapeKey(batch.shape) !== shapeKey(this.training))
      throw new Error(`trainStep: no training graph for tiles ${shapeKey(batch.shape)} (addShape first)`);
    const session = extra?.session ?? this.session;
    if (batch.image.length !== b * h * w) {
      throw new Error(`trainStep: image has ${batch.image.length} values, expected ${b}x1x${h}x${w}`);
    }
    const feeds: Record<string, HostTensor> = {
      image: { dataType: 'float32', dims: [b, 1, h, w], values: batch.image },
    };
    if (this.training.distill !== undefined) {
      const classes = this.model.logits.shape[1];
      if (batch.teacher?.length !== b * classes * h * w)
        throw new Error(
          `trainStep: teacher has ${batch.teacher?.length ?? 'no'} logits, expected ${b}x${classes}x${h}x${w}`,
        );
      feeds.teacher = { dataType: 'float32', dims: [b, classes, h, w], values: batch.teacher };
    } else {
      if (batch.target?.length !== b * h * w)
        throw new Error(
          `trainStep: target has ${batch.target?.length ?? 'no'} values, expected ${b}x${h}x${w}`,
        );
      feeds.target = { dataType: TARGET_DTYPE, dims: [b, h, w], values: batch.target };
    }
    for (const p of this.params) feeds[p.name] = p.feed;
    const started = performance.now();
    const out = await session.run(feeds);
    const ran = performance.now();
    const loss = (out.loss.values as Float32Array)[0];
    let grads = (extra?.gradNames ?? this.gradNames).map((name) => out[name].values as Float32Array);
    const runMs = ran - started;
    const accumulation = this.training.accumulation;
    if (accumulation > 1) {
      this.accumulated ??= grads.map((g) => new Float32Array(g.length));
      this.accumulated.forEach((sum, i) => {
        const g = grads[i];
        for (let j = 0; j < g.length; j++) sum[j] += g[j];
      });
      if (++this.runsSinceUpdate < accumulation) {
        const lr = lrAt(this.optimizer.step, this.training.schedule);
        return {
          step: this.optimizer.step,
          loss,
          gradNorm: Number.NaN,
          lr,
          skipped: false,
          updated: false,
          runMs,
          updateMs: 0,
        };
      }
      for (const sum of this.accumulated) for (let j = 0; j < sum.length; j++) sum[j] /= accumulation;
      grads = this.accumulated;
      this.runsSinceUpdate = 0;
    }
    const done = (): void => {
      if (this.accumulated !== undefined) for (const sum of this.accumulated) sum.fill(0);
    };
    // Clipping is folded into the AdamW pass (gradScale): one read of the gradients for the norm, one
    // for the update.
    const gradNorm = globalNorm(grads);
    const lr = lrAt(this.optimizer.step, this.training.schedule);
    if (!Number.isFinite(gradNorm)) {
      done();
      return {
        step: this.optimizer.step,
        loss,
        gradNorm,
        lr,
        skipped: true,
        updated: false,
        runMs,
        updateMs: performance.now() - ran,
      };
    }
    this.optimizer.update(grads, lr, clipFactor(gradNorm, this.training.maxGradNorm));
    done();
    const updateMs = performance.now() - ran;
    return { step: this.optimizer.step, loss, gradNorm, lr, skipped: false, updated: true, runMs, updateMs };
  }

  /** Writes weights, AdamW moments, step and configs (and any extra string metadata). */
  save(path: string, extraMetadata?: Readonly<Record<string, string>>): void {
    if (this.runsSinceUpdate !== 0)
      throw new Error('save: gradients of an unfinished accumulation would be lost; save after an update');
    saveCheckpoint(path, {
      extraMetadata,
      params: this.params,
      optimizer: { m: this.optimizer.m, v: this.optimizer.v },
      step: this.optimizer.step,
      modelName: this.config.name,
      modelConfig: this.config,
      trainingConfig: this.training,
    });
  }

  /** Loads weights (and, when `withOptimizer`, moments and step) from a checkpoint in place. */
  loadWeights(path: string, withOptimizer = false): void {
    const info = loadCheckpointInto(
      path,
      this.params,
      withOptimizer ? { m: this.optimizer.m, v: this.optimizer.v } : undefined,
    );
    if (withOptimizer) this.optimizer.step = info.step;
  }

  /**
   * The same network for inference at any batch/size, with the current weights baked in as
   * initialisers (shared arrays: build it, lower it, then keep training if you like).
   */
  inferenceModel(size: { batch?: number; heightPx?: number; widthPx?: number } = {}): PeakNetModel {
    const model = buildPeakNet(this.config, { ...size, paramsAs: 'initializers' });
    for (const p of this.params) model.graph.getParam(p.name).set(p.values);
    return model;
  }

  /** An inference session (image -> logits) with the current weights. */
  async inferenceSession(
    size: { batch?: number; heightPx?: number; widthPx?: number } = {},
    runtime: RuntimeOptions = this.runtime,
  ): Promise<Session> {
    const model = this.inferenceModel(size);
    return createSession(encodeModel(model.toOnnx({ step: String(this.step) })), runtime);
  }

  /** Ends onnxruntime profiling (if it was on) and returns the profile file's name. */
  endProfiling(): string | undefined {
    return this.session.endProfiling();
  }

  async release(): Promise<void> {
    await this.session.release();
    for (const { session } of this.shapes.values()) await session.release();
    this.shapes.clear();
  }
}

/**
 * The training graph for tiles of `shape`: PeakNet with its params as inputs, and the loss (focal on
 * a `target` mask, or distillation from a `teacher`'s logits), differentiated.
 */
function trainingGraph(config: PeakNetConfig, training: TrainingConfig, shape: TileShape) {
  const model = buildPeakNet(config, { ...shape, paramsAs: 'inputs', seed: training.seed });
  const { graph, logits } = model;
  const [b, h, w] = [shape.batch, shape.heightPx, shape.widthPx];
  let loss: ReturnType<typeof focalLoss>;
  if (training.distill !== undefined) {
    const teacher = graph.input('teacher', [b, logits.shape[1], h, w], 'float32');
    const options: DistillOptions = { ...training.distill, focal: training.focal };
    loss = distillationLoss(logits, teacher, options).loss;
  } else {
    loss = focalLoss(logits, graph.input('target', [b, h, w], TARGET_DTYPE), training.focal);
  }
  return { model, train: buildTrainingGraph(graph, { loss }) };
}

function decaysByDefault(param: { name: string; shape: readonly number[] }): boolean {
  return param.name.endsWith('.weight') && param.shape.length > 1;
}

function mergeTraining(partial: Partial<TrainingConfig> = {}): TrainingConfig {
  const training: TrainingConfig = {
    ...DEFAULT_TRAINING,
    ...partial,
    schedule: { ...DEFAULT_TRAINING.schedule, ...partial.schedule },
    adamw: { ...DEFAULT_TRAINING.adamw, ...partial.adamw },
    focal: { ...DEFAULT_TRAINING.focal, ...partial.focal },
  };
  for (const [label, value] of [
    ['batch', training.batch],
    ['accumulation', training.accumulation],
    ['warmupSteps', training.schedule.warmupSteps],
    ['totalSteps', training.schedule.totalSteps],
  ] as const) {
    if (
      !Number.isInteger(value) ||
      value < 0 ||
      ((label === 'batch' || label === 'accumulation') && value < 1)
    ) {
      throw new UserError(
        `must be a ${label === 'batch' || label === 'accumulation' ? 'positive' : 'non-negative'} integer, got ${value}`,
        undefined,
        label,
      );
    }
  }
  for (const [label, value] of [
    ['peakLr', training.schedule.peakLr],
    ['minLr', training.schedule.minLr],
    ['maxGradNorm', training.maxGradNorm],
    ['weightDecay', training.adamw.weightDecay],
  ] as const) {
    if (!(value >= 0)) throw new UserError(`must be a non-negative number, got ${value}`, undefined, label);
  }
  return training;
}

/** The PeakNet config stored in a checkpoint's metadata, or a UserError naming the field. */
function checkpointModelConfig(path: string, modelConfig: unknown): PeakNetConfig {
  try {
    return resolveConfig(modelConfig as PeakNetConfig);
  } catch (error) {
    throw new UserError(
      `model_config is not a PeakNet config: ${(error as Error).message}`,
      path,
      '__metadata__.model_config',
    );
  }
}

/**
 * Loads a checkpoint's weights into a PeakNet built for the given batch and image size (any size: the
 * weights do not depend on it), ready for `toOnnx()` with the weights as initialisers.
 */
export function loadPeakNetCheckpoint(
  path: string,
  size: { batch?: number; heightPx?: number; widthPx?: number } = {},
): PeakNetModel {
  const info = readCheckpointInfo(path);
  const config = checkpointModelConfig(path, info.modelConfig);
  const model = buildPeakNet(config, { ...size, paramsAs: 'initializers' });
  const params = model.graph
    .params()
    .map((p) => ({ name: p.name, shape: p.shape, values: new Float32Array(p.size) }));
  loadCheckpointInto(path, params);
  for (const p of params) model.graph.getParam(p.name).set(p.values);
  return model;
}
