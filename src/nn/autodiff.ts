/**
 * Reverse-mode automatic differentiation over the graph IR. The backward pass is built from the ops'
 * own VJP rules, so it is more nodes in the same graph, lowered to ONNX by the same code.
 *
 * Only nodes that both depend on a requested tensor and reach the loss are visited (everything else
 * is pruned); a tensor used several times gets the Sum of its gradient contributions.
 */
import { type Graph, GraphError, type Node, nodesReaching, shapeStr, type Tensor } from './graph.js';
import type { OnnxModelSpec } from './onnx/spec.js';
import { sum } from './ops/elementwise.js';
import { zerosLike } from './ops/shape.js';

/** Gradients of a scalar `loss` with respect to `wrt` (undefined where the loss does not depend on it). */
export function gradients(loss: Tensor, wrt: readonly Tensor[]): (Tensor | undefined)[] {
  const g = loss.graph;
  if (loss.size !== 1) throw new GraphError(`gradients: the loss must be a scalar, got ${loss}`);
  if (!['float32', 'float64'].includes(loss.dtype))
    throw new GraphError(`gradients: the loss must be float, got ${loss}`);
  for (const t of wrt) if (t.graph !== g) throw new GraphError(`gradients: ${t} is not in graph ${g.name}`);

  // Forward: tensors that depend on something in wrt.
  const dependent = new Set<Tensor>(wrt);
  const reaching = nodesReaching([loss]);
  const active: Node[] = [];
  for (const node of reaching) {
    if (node.inputs.some((t) => dependent.has(t))) {
      active.push(node);
      for (const o of node.outputs) dependent.add(o);
    }
  }

  const contributions = new Map<Tensor, Tensor[]>();
  const push = (t: Tensor, grad: Tensor, from: string) => {
    if (shapeStr(grad.shape) !== shapeStr(t.shape) || grad.dtype !== t.dtype) {
      throw new GraphError(`gradients: VJP of ${from} gave ${grad} for ${t} (a bug in that op's rule)`);
    }
    const list = contributions.get(t);
    if (list) list.push(grad);
    else contributions.set(t, [grad]);
  };
  const total = (t: Tensor): Tensor | undefined => {
    const list = contributions.get(t);
    if (!list) return undefined;
    if (list.length > 1) {
      const s = sum(list);
      contributions.set(t, [s]);
      return s;
    }
    return list[0];
  };

  if (dependent.has(loss)) push(loss, g.constant(1, loss.shape, loss.dtype), 'loss');
  for (let i = active.length - 1; i >= 0; i--) {
    const node = active[i];
    const outGrads = node.outputs.map(total);
    if (outGrads.every((x) => x === undefined)) continue;
    if (!node.op.vjp) {
      throw new GraphError(
        `gradients: ${node.op.type}#${node.id} is not differentiable but lies between the requested tensors and the loss`,
      );
    }
    const inGrads = node.op.vjp(node, outGrads);
    node.inputs.forEach((input, k) => {
      const grad = inGrads[k];
      if (grad && dependent.has(input)) push(input, grad, `${node.op.type}#${node.id}`);
    });
  }
  return wrt.map(total);
}

export interface TrainingGraphOptions {
  /** Scalar loss tensor (float). */
  loss: Tensor;
  /** Extra outputs computed alongside (accuracy, per-class losses, ...). */
  metrics?: Readonly<Record<string, Tensor>>;
  /** Tensors to differentiate: default every trainable param. Input tensors give `grad/<input name>`. */
  wrt?: readonly Tensor[];
}

export interface TrainingGraph {
  spec: OnnxModelSpec;
  /** Names of the differentiated params/inputs, in output order. */
  wrtNames: string[];
  /** `grad/<name>` output names, parallel to wrtNames. */
  gradNames: string[];
  /** Names of wrt tensors that the loss does not depend on (their gradient output is zeros). */
  unused: string[];
}

function tensorName(t: Tensor): string {
  if (t.source.kind === 'param') return t.source.param.name;
  if (t.source.kind === 'input') return t.source.name;
  throw new GraphError(`buildTrainingGraph: can only differentiate params and inputs, not ${t}`);
}

/**
 * One ONNX model for a training step: params are graph inputs (the optimiser owns the weights and
 * feeds them each step); outputs are `loss`, the metrics, and `grad/<name>` per differentiated tensor.
 */
export function buildTrainingGraph(g: Graph, options: TrainingGraphOptions): TrainingGraph {
  const wrt =
    options.wrt ?? g.paramTensorList().filter((t) => t.source.kind === 'param' && t.source.param.trainable);
  const grads = gradients(options.loss, wrt);
  const outputs: Record<string, Tensor> = { loss: options.loss };
  for (const [name, t] of Object.entries(options.metrics ?? {})) {
    if (name in outputs || name.startsWith('grad/'))
      throw new GraphError(`buildTrainingGraph: metric name ${name} is taken`);
    outputs[name] = t;
  }
  const wrtNames: string[] = [];
  const gradNames: string[] = [];
  const unused: string[] = [];
  wrt.forEach((t, i) => {
    const name = tensorName(t);
    const gradName = `grad/${name}`;
    if (gradName in outputs) throw new GraphError(`buildTrainingGraph: ${name} requested twice`);
    const grad = grads[i];
    if (!grad) unused.push(name);
    outputs[gradName] = grad ?? zerosLike(t);
    wrtNames.push(name);
    gradNames.push(gradName);
  });
  const spec = g.toOnnx({ params: 'inputs', outputs });
  return { spec, wrtNames, gradNames, unused };
}
