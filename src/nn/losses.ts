/**
 * Segmentation losses as graph functions: each takes logits [B, C, H, W] (and targets) and returns
 * scalar tensors on the same graph, ready for `buildTrainingGraph`. All work from LogSoftmax, so large
 * logits neither overflow nor lose the log-probability of a confident pixel.
 */
import { GraphError, type Tensor } from './graph.js';
import * as op from './ops/index.js';

export interface FocalOptions {
  /** Per-class weights; default [0.25, 0.75] (background, peak): peaks are rare. */
  alpha?: readonly number[];
  /** Focusing exponent; default 2. */
  gamma?: number;
}

/** Class weights of the focal loss by default: background 0.25, peak 0.75. */
export const DEFAULT_FOCAL_ALPHA = [0.25, 0.75] as const;
export const DEFAULT_FOCAL_GAMMA = 2;

/**
 * One-hot float targets [B, C, H, W] from class labels (int64 / int32 / uint8 / bool, [B, H, W] or
 * [B, 1, H, W]) or, for two classes, from a float peak mask (1 = peak) of either shape.
 */
export function oneHotTargets(target: Tensor, logits: Tensor): Tensor {
  const [b, c, h, w] = logits.shape;
  const labels = target.rank === 3 ? op.unsqueeze(target, [1]) : target;
  if (
    labels.rank !== 4 ||
    labels.shape[0] !== b ||
    labels.shape[1] !== 1 ||
    labels.shape[2] !== h ||
    labels.shape[3] !== w
  ) {
    throw new GraphError(
      `targets ${target} do not match logits ${logits}: expected [${b},${h},${w}] or [${b},1,${h},${w}]`,
    );
  }
  if (labels.dtype === logits.dtype) {
    if (c !== 2) throw new GraphError(`a float mask target needs 2 classes, logits are ${logits}`);
    return op.concat([op.sub(1, labels), labels], 1);
  }
  const asInt = op.cast(labels, 'int64');
  const classes = labels.graph.constant(
    BigInt64Array.from({ length: c }, (_, i) => BigInt(i)),
    [1, c, 1, 1],
    'int64',
  );
  return op.cast(op.equal(asInt, classes), logits.dtype);
}

/**
 * Focal loss (Lin et al. 2017) from logits [B, C, H, W], mean over the B*H*W pixels:
 * -sum_c y_c alpha_c (1 - p_c)^gamma log p_c, with y the one-hot target (see oneHotTargets).
 */
export function focalLoss(logits: Tensor, target: Tensor, options: FocalOptions = {}): Tensor {
  const c = logits.shape[1];
  const alpha = options.alpha ?? DEFAULT_FOCAL_ALPHA;
  const gamma = options.gamma ?? DEFAULT_FOCAL_GAMMA;
  if (alpha.length !== c) throw new GraphError(`focalLoss: ${alpha.length} alphas for ${c} classes`);
  const oneHot = oneHotTargets(target, logits);
  const logp = op.logSoftmax(logits, 1);
  const complement = op.sub(1, op.exp(logp));
  // gamma = 2 as a product: cheaper than Pow, and its gradient has no 0^(gamma-1) corner.
  const modulation = gamma === 2 ? op.mul(complement, complement) : op.pow(complement, gamma);
  const alphas = logits.graph.constant(Float32Array.from(alpha), [1, c, 1, 1], logits.dtype);
  const perClass = op.mul(op.mul(oneHot, alphas), op.mul(modulation, logp));
  return op.neg(op.reduceMean(op.reduceSum(perClass, [1])));
}

/** Mean squared error over all elements (torch's F.mse_loss, reduction 'mean'). */
export function mseLoss(a: Tensor, b: Tensor): Tensor {
  const d = op.sub(a, b);
  return op.reduceMean(op.mul(d, d));
}

/**
 * KL(softmax(teacher/T) || softmax(student/T)) per pixel, summed over classes, mean over pixels
 * (not multiplied by T^2).
 */
export function softKl(student: Tensor, teacher: Tensor, temperature: number): Tensor {
  const logPt = op.logSoftmax(op.div(teacher, temperature), 1);
  const logPs = op.logSoftmax(op.div(student, temperature), 1);
  return op.reduceMean(op.reduceSum(op.mul(op.exp(logPt), op.sub(logPt, logPs)), [1]));
}

export interface DistillOptions {
  /** Default 2. */
  temperature?: number;
  /** Weights of the MSE, T^2 KL and focal terms; default 0.4, 0.4, 0.2. */
  weights?: { mse: number; kl: number; focal: number };
  focal?: FocalOptions;
}

export interface DistillLoss {
  loss: Tensor;
  mse: Tensor;
  /** T^2 KL, as added to the loss (before its weight). */
  kl: Tensor;
  focal: Tensor;
}

/**
 * Knowledge distillation: 0.4 MSE(student, teacher) + 0.4 T^2 KL(softmax(t/T) || softmax(s/T)) + 0.2 focal
 * against the teacher's argmax (ties -> background, as ArgMax picks the first). The teacher's logits are
 * a graph input: nothing is differentiated through them.
 */
export function distillationLoss(
  student: Tensor,
  teacher: Tensor,
  options: DistillOptions = {},
): DistillLoss {
  if (student.shape.join() !== teacher.shape.join()) {
    throw new GraphError(`distillationLoss: student ${student} and teacher ${teacher} differ in shape`);
  }
  const temperature = options.temperature ?? 2;
  const weights = options.weights ?? { mse: 0.4, kl: 0.4, focal: 0.2 };
  const mse = mseLoss(student, teacher);
  const kl = op.mul(softKl(student, teacher, temperature), temperature * temperature);
  const focal = focalLoss(student, op.argMax(teacher, 1, true), options.focal);
  const loss = op.add(op.add(op.mul(mse, weights.mse), op.mul(kl, weights.kl)), op.mul(focal, weights.focal));
  return { loss, mse, kl, focal };
}
