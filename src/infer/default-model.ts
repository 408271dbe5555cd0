/**
 * The shipped default model: `models/peaknet-default.onnx` in the package (beside `src/` and
 * `dist/`, both two levels below the package root), trained by `npm run train:default` and
 * described in models/README.md. `peaks --method peaknet` and the demo use it when no `--model` is
 * given.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/errors.js';

export const DEFAULT_MODEL_FILE = 'peaknet-default.onnx';

/** Absolute path of the shipped model file (whether or not it is there). */
export function defaultModelPath(): string {
  return fileURLToPath(new URL(`../../models/${DEFAULT_MODEL_FILE}`, import.meta.url));
}

/** The shipped model's path, or a one-line error when this installation lacks it. */
export function requireDefaultModel(): string {
  const path = defaultModelPath();
  if (!existsSync(path))
    throw new UserError(
      'the shipped default model is missing from this installation; pass --model M.onnx',
      path,
    );
  return path;
}
