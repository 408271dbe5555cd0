/**
 * `braggflow train --config C.json --out DIR`: a training run that can stop and go on.
 *
 * DIR holds
 *   checkpoint.safetensors  weights, AdamW moments, step, configs, wall time so far (resumable)
 *   metrics.jsonl           one JSON line per log interval (loss, lr, grad norm, steps/s) and per
 *                           validation (P/R/F1 under the best rule and argmax, pixel IoU)
 *   curves.svg              training loss and validation F1 against the step
 *   model.onnx              at the last step: the model file (validation's best rule inside), and
 *   model.safetensors       its checkpoint beside it
 *
 * Resuming (`--resume`, or a run that finds DIR/checkpoint.safetensors) continues with exactly the
 * batches and updates the uninterrupted run would have made (batches.ts, Trainer.resume); a run with
 * `maxSeconds` saves and returns when the time is up, so long training goes in chunks.
 */
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  DEFAULT_PREPROCESSING,
  type ModelFileMetaInput,
  modelFileInMemory,
  readModelFile,
  writeModelFile,
} from '../infer/model-file.js';
import { readCheckpointInfo } from '../nn/checkpoint.js';
import { DEFAULT_ADAMW } from '../nn/optim.js';
import { linePlotSvg } from '../plot/svg.js';
import { UserError } from '../util/errors.js';
import { createProgress } from '../util/progress.js';
import { BRAGGFLOW_VERSION } from '../util/version.js';
import { createBatchLoader } from './batches.js';
import type { TrainConfig } from './config.js';
import { createTeacher } from './teacher.js';
import { Trainer, type TrainingConfig } from './trainer.js';
import { buildValidationSet, type ValidationResult, validate } from './validate.js';

export interface TrainRunOptions {
  config: TrainConfig;
  outDir: string;
  /** Go on from DIR/checkpoint.safetensors when it exists (default true). */
  resume?: boolean;
  /** Save and return after this long (a chunk of a longer run). */
  maxSeconds?: number;
  /** Loader threads (0: batches made in this thread). Default 1. */
  workers?: number;
  intraOpThreads?: number;
  /**
   * Distil from a teacher (`braggflow distill`): its logits replace the masks as targets, with the
   * reference system's loss (losses.ts `distillationLoss`); `cacheDir` keeps them per micro-step.
   */
  distill?: { teacher: string; cacheDir?: string; temperature?: number };
  log: (line: string) => void;
}

export interface TrainRunReport {
  outDir: string;
  model: string;
  params: number;
  startStep: number;
  step: number;
  steps: number;
  finished: boolean;
  /** Wall time of this call and of the whole run so far, seconds. */
  seconds: number;
  totalSeconds: number;
  stepsPerSecond: number;
  lastLoss: number;
  validation?: ValidationResult;
  /** With a teacher: its validation on the same frames, and how its logits were had. */
  teacher?: {
    path: string;
    validation: ValidationResult;
    cachedMicroSteps: number;
    computedMicroSteps: number;
  };
  modelPath?: string;
}

export const CHECKPOINT_NAME = 'checkpoint.safetensors';
export const METRICS_NAME = 'metrics.jsonl';
export const CURVES_NAME = 'curves.svg';
export const MODEL_NAME = 'model.onnx';

function trainingConfigOf(config: TrainConfig, distill: TrainRunOptions['distill']): Partial<TrainingConfig> {
  return {
    ...(distill === undefined
      ? {}
      : { distill: { temperature: distill.temperature ?? 2, weights: { mse: 0.4, kl: 0.4, focal: 0.2 } } }),
    batch: config.batch,
    accumulation: config.accumulation,
    heightPx: config.tile.heightPx,
    widthPx: config.tile.widthPx,
    seed: config.seed,
    schedule: { ...config.schedule, totalSteps: config.steps },
    adamw: { ...DEFAULT_ADAMW, weightDecay: config.weightDecay },
    focal: { alpha: [config.focal.alpha[0], config.focal.alpha[1]], gamma: config.focal.gamma },
  };
}

/** In words, for the model file's provenance. */
export function describeData(config: TrainConfig): string {
  const parts = config.data.sources.map((s) =>
    s.kind === 'simulate'
      ? `simulated on the fly (${s.presets.join('/')}; ${s.geometries.map((g) => (typeof g === 'string' ? (g.split('/').pop() ?? g) : `synthetic ${g.panelRowsPx.join('-')} x ${g.panelColsPx.join('-')} px panels, ${g.pixelUm.join('-')} um`)).join(', ')}; ${Math.round(s.photonCountingFraction * 100)}% photon counting, else ${s.gainAduPerPhoton.join('-')} ADU/photon)`
      : `dataset ${s.path}`,
  );
  const init =
    config.init === undefined ? '' : `; fine-tuned from ${config.init.split('/').slice(-2).join('/')}`;
  return `${parts.join(' + ')}; ${config.tile.heightPx}x${config.tile.widthPx} panel tiles, batch ${config.batch}x${config.accumulation}${init}`;
}

interface MetricsRow {
  step: number;
  loss?: number;
  f1?: number;
  argmaxF1?: number;
}

function readMetrics(path: string): MetricsRow[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const row = JSON.parse(line) as {
        step: number;
        loss?: number;
        validation?: { f1: number; argmaxF1: number };
      };
      return { step: row.step, loss: row.loss, f1: row.validation?.f1, argmaxF1: row.validation?.argmaxF1 };
    });
}

/** Loss and validation F1 against the step (two panels side by side in one SVG). */
export function curvesSvg(rows: readonly MetricsRow[], title: string): string {
  const loss = rows.filter((r) => r.loss !== undefined);
  const evals = rows.filter((r) => r.f1 !== undefined);
  const left = linePlotSvg({
    title: `${title}: training loss`,
    xLabel: 'step',
    yLabel: 'focal loss',
    logY: loss.length > 0 && loss.every((r) => (r.loss ?? 0) > 0),
    series: [{ label: 'loss', x: loss.map((r) => r.step), y: loss.map((r) => r.loss ?? 0) }],
    width: 520,
    height: 340,
  });
  const right = linePlotSvg({
    title: `${title}: held-out peak F1`,
    xLabel: 'step',
    yLabel: 'F1 (within radius)',
    series: [
      { label: 'best rule', x: evals.map((r) => r.step), y: evals.map((r) => r.f1 ?? 0), kind: 'line' },
      { label: 'argmax', x: evals.map((r) => r.step), y: evals.map((r) => r.argmaxF1 ?? 0), kind: 'line' },
    ],
    width: 520,
    height: 340,
  });
  const inner = (svg: string) => svg.replace(/^<svg[^>]*>/, '').replace(/<\/svg>\s*$/, '');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="1040" height="340" viewBox="0 0 1040 340">\n<g>${inner(left)}</g>\n<g transform="translate(520,0)">${inner(right)}</g>\n</svg>\n`;
}

/** A checkpoint's metadata, or a one-line error when it holds another model than the config's. */
function checkpointOf(path: string, model: string): ReturnType<typeof readCheckpointInfo> {
  const info = readCheckpointInfo(path);
  if (info.modelName !== model)
    throw new UserError(
      `holds ${info.modelName}, the config asks for ${model}`,
      path,
      '__metadata__.model_name',
    );
  return info;
}

export async function runTraining(options: TrainRunOptions): Promise<TrainRunReport> {
  const { config, outDir, log } = options;
  mkdirSync(outDir, { recursive: true });
  const checkpointPath = join(outDir, CHECKPOINT_NAME);
  const metricsPath = join(outDir, METRICS_NAME);
  const started = performance.now();
  const resuming = (options.resume ?? true) && existsSync(checkpointPath);
  let previousSeconds = 0;
  // A fine-tuning phase counts the steps and time of the run it started from in the model's provenance.
  let initSteps = 0;
  let initSeconds = 0;
  if (config.init !== undefined) {
    const info = checkpointOf(config.init, config.model);
    // A checkpoint of a fine-tuning phase carries its whole lineage's totals (earlier ones only their own).
    initSteps = Number(info.metadata.lineage_steps ?? info.step);
    initSeconds = Number(info.metadata.lineage_seconds ?? info.metadata.wall_seconds ?? 0);
  }
  let trainer: Trainer;
  if (resuming) {
    const info = checkpointOf(checkpointPath, config.model);
    previousSeconds = Number(info.metadata.wall_seconds ?? 0);
    trainer = await Trainer.resume(checkpointPath, {
      intraOpThreads: options.intraOpThreads,
      training: { schedule: { ...config.schedule, totalSteps: config.steps } },
    });
    if ((trainer.training.distill !== undefined) !== (options.distill !== undefined)) {
      await trainer.release();
      throw new UserError(
        trainer.training.distill !== undefined
          ? 'was distilled from a teacher: go on with `braggflow distill --teacher ...`'
          : 'was trained on masks, not distilled: go on with `braggflow train`',
        checkpointPath,
      );
    }
    log(
      `resume    ${checkpointPath} at step ${trainer.step} (${(previousSeconds / 60).toFixed(1)} min so far)`,
    );
  } else {
    trainer = await Trainer.create({
      model: config.model,
      intraOpThreads: options.intraOpThreads,
      training: trainingConfigOf(config, options.distill),
    });
    if (config.init !== undefined) {
      trainer.loadWeights(config.init);
      log(`init      weights of ${config.init} (step ${initSteps})`);
    }
    writeFileSync(metricsPath, '');
  }
  for (const shape of config.shapes) await trainer.addShape(shape);
  const params = trainer.model.graph.paramCount();
  const startStep = trainer.step;
  const tile = config.tile;
  const totalSeconds = () => previousSeconds + (performance.now() - started) / 1000;
  // The truth rule of the simulated labels, where every simulate source has the same one.
  const truthRules = new Set(
    config.data.sources.flatMap((source) => (source.kind === 'simulate' ? [source.truthMinSnr] : [])),
  );
  const truthMinSnr = truthRules.size === 1 ? [...truthRules][0] : undefined;
  const save = () => {
    // Written aside, then renamed: an interrupted save never leaves a torn checkpoint.
    const tmp = `${checkpointPath}.tmp`;
    trainer.save(tmp, {
      wall_seconds: totalSeconds().toFixed(1),
      data: describeData(config),
      // This run and the phases it was fine-tuned from: the next phase's and export's provenance.
      lineage_steps: String(initSteps + trainer.step),
      lineage_seconds: (initSeconds + totalSeconds()).toFixed(1),
      ...(truthMinSnr === undefined ? {} : { truth_min_snr: String(truthMinSnr) }),
    });
    renameSync(tmp, checkpointPath);
  };
  const modelFileOf = (decision: ModelFileMetaInput['decision'], steps: number): ModelFileMetaInput => ({
    ...(truthMinSnr === undefined ? {} : { truthMinSnr }),
    preprocessing: { ...DEFAULT_PREPROCESSING },
    tile: { ...tile },
    decision,
    provenance: {
      data: describeData(config),
      steps: initSteps + steps,
      wallSeconds: Math.round(initSeconds + totalSeconds()),
      date: new Date().toISOString(),
      braggflowVersion: BRAGGFLOW_VERSION,
    },
  });
  log(
    `model     ${config.model} (${params.toLocaleString('en-US')} params), tiles ${tile.heightPx}x${tile.widthPx}${config.shapes.map((s) => `, ${s.heightPx}x${s.widthPx} (batch ${s.batch})`).join('')}, batch ${config.batch}x${config.accumulation}, ${config.steps} steps${tile.maxPx === undefined ? '' : `; served on panel-fitted tiles up to ${tile.maxPx} px`}`,
  );
  const validationSet = await buildValidationSet(config);
  log(
    `validate  ${validationSet.frames.length} held-out simulated frames, ${validationSet.truthPeaks} true spots`,
  );
  const runValidation = async (): Promise<ValidationResult> => {
    const model = trainer.inferenceModel({ batch: 1, heightPx: tile.heightPx, widthPx: tile.widthPx });
    const file = modelFileInMemory(
      model,
      modelFileOf({ marginLogit: 0, minPixels: 2, chosenBy: 'given' }, trainer.step),
    );
    return validate(file, validationSet, config.validation.radiusPx, {
      intraOpThreads: options.intraOpThreads,
    });
  };
  const teacher =
    options.distill === undefined
      ? undefined
      : await createTeacher(options.distill.teacher, {
          batch: config.batch,
          tile,
          cacheDir: options.distill.cacheDir,
          intraOpThreads: options.intraOpThreads,
        });
  let teacherValidation: ValidationResult | undefined;
  if (teacher !== undefined) {
    teacherValidation = await validate(teacher.file, validationSet, config.validation.radiusPx, {
      intraOpThreads: options.intraOpThreads,
    });
    appendFileSync(metricsPath, `${JSON.stringify({ step: trainer.step, teacherValidation })}\n`);
    log(
      `teacher   ${options.distill?.teacher}: ${teacher.file.meta.config.name} (${teacher.file.meta.params.toLocaleString('en-US')} params), held-out F1 ${teacherValidation.f1.toFixed(3)} (P ${teacherValidation.precision.toFixed(3)}, R ${teacherValidation.recall.toFixed(3)})`,
    );
  }
  let microStep = trainer.step * config.accumulation;
  const loader = await createBatchLoader(config, microStep, { workers: options.workers ?? 1 });
  const progress = createProgress('train', config.steps, log, config.logEvery);
  let validation: ValidationResult | undefined;
  let windowLoss = 0;
  let windowRuns = 0;
  let windowTiles = 0;
  let windowStart = performance.now();
  let windowStep = trainer.step;
  let lastLoss = Number.NaN;
  let stopped = false;
  try {
    while (trainer.step < config.steps) {
      for (let a = 0; a < config.accumulation; a++) {
        const batch = await loader.next();
        const result = await trainer.trainStep(
          teacher === undefined
            ? batch
            : { image: batch.image, teacher: await teacher.logits(batch.image, microStep) },
        );
        microStep++;
        windowLoss += result.loss;
        windowRuns++;
        windowTiles += batch.shape?.batch ?? config.batch;
      }
      const step = trainer.step;
      const last = step === config.steps;
      if (step % config.logEvery === 0 || last) {
        const seconds = (performance.now() - windowStart) / 1000;
        lastLoss = windowLoss / windowRuns;
        const row = {
          step,
          loss: lastLoss,
          lr: trainer.nextLr,
          stepsPerSecond: (step - windowStep) / seconds,
          tilesPerSecond: windowTiles / seconds,
          wallSeconds: Math.round(totalSeconds()),
        };
        appendFileSync(metricsPath, `${JSON.stringify(row)}\n`);
        progress.update(step, `loss ${lastLoss.toFixed(5)}  ${row.stepsPerSecond.toFixed(2)} steps/s`);
        windowLoss = 0;
        windowRuns = 0;
        windowTiles = 0;
        windowStart = performance.now();
        windowStep = step;
      }
      if (step % config.evalEvery === 0 || last) {
        validation = await runValidation();
        appendFileSync(metricsPath, `${JSON.stringify({ step, validation })}\n`);
        const beside = teacherValidation ? `; teacher F1 ${teacherValidation.f1.toFixed(3)}` : '';
        log(
          `  validate step ${step}: P ${validation.precision.toFixed(3)} R ${validation.recall.toFixed(3)} F1 ${validation.f1.toFixed(3)} (margin ${validation.rule.marginLogit}, >= ${validation.rule.minPixels} px; argmax F1 ${validation.argmaxF1.toFixed(3)}), pixel IoU ${validation.pixelIou.toFixed(3)}, ${validation.seconds.toFixed(1)} s${beside}`,
        );
        writeFileSync(join(outDir, CURVES_NAME), curvesSvg(readMetrics(metricsPath), config.model));
        windowStart = performance.now();
      }
      if (step % config.checkpointEvery === 0 || last) save();
      if (
        !last &&
        options.maxSeconds !== undefined &&
        (performance.now() - started) / 1000 >= options.maxSeconds
      ) {
        save();
        stopped = true;
        break;
      }
    }
  } finally {
    progress.stop();
    await loader.close();
    await teacher?.release();
  }
  const finished = !stopped && trainer.step >= config.steps;
  let modelPath: string | undefined;
  if (finished) {
    validation ??= await runValidation();
    modelPath = join(outDir, MODEL_NAME);
    const model = trainer.inferenceModel({ batch: 1, heightPx: tile.heightPx, widthPx: tile.widthPx });
    const meta = modelFileOf(
      {
        ...validation.rule,
        chosenBy: `best peak F1 (${validation.f1.toFixed(3)}, within ${config.validation.radiusPx} px) on ${validation.frames} held-out simulated frames`,
      },
      trainer.step,
    );
    meta.provenance.notes = {
      validation: {
        frames: validation.frames,
        truthPeaks: validation.truthPeaks,
        precision: validation.precision,
        recall: validation.recall,
        f1: validation.f1,
        argmaxF1: validation.argmaxF1,
        pixelIou: validation.pixelIou,
      },
      ...(teacherValidation === undefined
        ? {}
        : {
            teacher: {
              path: options.distill?.teacher,
              f1: teacherValidation.f1,
              params: teacher?.file.meta.params,
            },
          }),
    };
    writeModelFile(modelPath, model, meta);
    readModelFile(modelPath);
    copyFileSync(checkpointPath, join(outDir, 'model.safetensors'));
    log(`model     ${modelPath} (+ model.safetensors)`);
  }
  await trainer.release();
  const seconds = (performance.now() - started) / 1000;
  return {
    outDir,
    model: config.model,
    params,
    startStep,
    step: trainer.step,
    steps: config.steps,
    finished,
    seconds,
    totalSeconds: totalSeconds(),
    stepsPerSecond: (trainer.step - startStep) / seconds,
    lastLoss,
    validation,
    teacher:
      teacher === undefined || teacherValidation === undefined
        ? undefined
        : {
            path: options.distill?.teacher ?? '',
            validation: teacherValidation,
            cachedMicroSteps: teacher.cached,
            computedMicroSteps: teacher.computed,
          },
    modelPath,
  };
}
