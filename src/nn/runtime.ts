/**
 * The one tensor engine: a thin wrapper over onnxruntime-node sessions that speaks our plain host
 * tensors (typed array + dims), so nothing above this file imports onnxruntime types.
 *
 * Execution providers: 'cpu' (default, always there); 'webgpu' is bundled in onnxruntime-node's Linux
 * build but needs a GPU with Vulkan; 'cuda' needs the CUDA add-on, which this project does not install
 * (`.npmrc` skips its download). Asking for one that cannot start is a UserError, not a silent fallback.
 */
import * as ort from 'onnxruntime-node';
import { UserError } from '../util/errors.js';
import type { OnnxDataType, TensorValues } from './onnx/spec.js';

export type ExecutionProvider = 'cpu' | 'webgpu' | 'cuda';

export interface HostTensor {
  dataType: OnnxDataType;
  dims: readonly number[];
  values: TensorValues;
}

export interface SessionOptions {
  executionProvider?: ExecutionProvider;
  /** Threads for one op; default: onnxruntime's choice (all cores). */
  intraOpThreads?: number;
  graphOptimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Write an onnxruntime profile (JSON) with this file prefix. */
  profilePrefix?: string;
  /**
   * Whether idle op threads spin waiting for the next run (onnxruntime's default, true). Turn it off
   * where several sessions take turns on the same cores: a spinning pool slows the others.
   */
  spinning?: boolean;
}

export interface Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly executionProvider: ExecutionProvider;
  run(
    feeds: Record<string, HostTensor>,
    outputNames?: readonly string[],
  ): Promise<Record<string, HostTensor>>;
  /** Ends profiling (if on) and returns the profile file name. */
  endProfiling(): string | undefined;
  release(): Promise<void>;
}

export function hostTensor(
  dataType: OnnxDataType,
  dims: readonly number[],
  values: TensorValues,
): HostTensor {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (values.length !== expected) {
    throw new Error(`tensor of dims [${dims.join(', ')}] needs ${expected} values, got ${values.length}`);
  }
  return { dataType, dims, values };
}

function toOrt(tensor: HostTensor): ort.Tensor {
  // onnxruntime calls float64 'float64' and bool 'bool' (bytes); our names match its own.
  return new ort.Tensor(tensor.dataType as ort.Tensor.Type, tensor.values as ort.Tensor.DataType, [
    ...tensor.dims,
  ]);
}

function fromOrt(tensor: ort.Tensor): HostTensor {
  const dataType = tensor.type as OnnxDataType;
  return { dataType, dims: [...tensor.dims], values: tensor.data as TensorValues };
}

export async function createSession(
  model: Uint8Array | string,
  options: SessionOptions = {},
): Promise<Session> {
  const executionProvider = options.executionProvider ?? 'cpu';
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: [executionProvider],
    graphOptimizationLevel: options.graphOptimization ?? 'all',
    enableProfiling: options.profilePrefix !== undefined,
    profileFilePrefix: options.profilePrefix,
  };
  if (options.intraOpThreads !== undefined) sessionOptions.intraOpNumThreads = options.intraOpThreads;
  if (options.spinning === false) sessionOptions.extra = { session: { intra_op: { allow_spinning: '0' } } };
  let session: ort.InferenceSession;
  try {
    session =
      typeof model === 'string'
        ? await ort.InferenceSession.create(model, sessionOptions)
        : await ort.InferenceSession.create(model, sessionOptions);
  } catch (error) {
    const message = (error as Error).message.split('\n')[0];
    if (executionProvider !== 'cpu') {
      throw new UserError(`execution provider '${executionProvider}' could not start here: ${message}`);
    }
    throw new UserError(
      `onnxruntime could not load the model: ${message}`,
      typeof model === 'string' ? model : undefined,
    );
  }
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    executionProvider,
    async run(feeds, outputNames) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, tensor] of Object.entries(feeds)) ortFeeds[name] = toOrt(tensor);
      const results = outputNames
        ? await session.run(ortFeeds, [...outputNames])
        : await session.run(ortFeeds);
      const out: Record<string, HostTensor> = {};
      for (const [name, tensor] of Object.entries(results)) out[name] = fromOrt(tensor);
      return out;
    },
    endProfiling() {
      if (options.profilePrefix === undefined) return undefined;
      session.endProfiling();
      return options.profilePrefix;
    },
    release: () => session.release(),
  };
}
