/**
 * The teacher of `braggflow distill`: a model file or a training checkpoint, run on the student's
 * batches (the same preprocessed panel tiles) to give the logits the student learns from.
 *
 * Its logits can be cached on disk, one gzip file per micro-step (batches are a function of the step,
 * batches.ts, so a cached micro-step is the same batch in any later run): a second student, or a run
 * resumed after a crash, then reads them instead of running the teacher. bench/train.bench.ts
 * measures which is faster on a machine (BENCHMARKS.md).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { checkpointForTile } from '../infer/export.js';
import { type ModelFile, modelFileInMemory, readModelFile } from '../infer/model-file.js';
import { modelBytesForBatch } from '../infer/peaknet-finder.js';
import { createSession, type Session } from '../nn/runtime.js';

export interface Teacher {
  /** The teacher as a model file (for validating it beside the student). */
  file: ModelFile;
  /** Logits [B, 2, H, W] of a batch [B, 1, H, W]; a cached micro-step is read, not recomputed. */
  logits(image: Float32Array, microStep: number): Promise<Float32Array>;
  /** Micro-steps served from the cache, and run on the teacher. */
  readonly cached: number;
  readonly computed: number;
  release(): Promise<void>;
}

export interface TeacherOptions {
  batch: number;
  tile: { heightPx: number; widthPx: number; overlapPx: number };
  /** Folder of cached logits (created when absent). */
  cacheDir?: string;
  intraOpThreads?: number;
}

/** A model file from `path`: an ONNX model file as is, or a checkpoint with default preprocessing. */
export function teacherModelFile(path: string, tile: TeacherOptions['tile']): ModelFile {
  if (!path.endsWith('.safetensors')) return readModelFile(path);
  const { model, meta } = checkpointForTile(path, tile);
  return modelFileInMemory(
    model,
    { ...meta, decision: { marginLogit: 0, minPixels: 2, chosenBy: 'given' } },
    path,
  );
}

export async function createTeacher(path: string, options: TeacherOptions): Promise<Teacher> {
  const file = teacherModelFile(path, options.tile);
  let session: Session | undefined;
  const { batch, tile, cacheDir } = options;
  if (cacheDir !== undefined) mkdirSync(cacheDir, { recursive: true });
  const logitCount = batch * 2 * tile.heightPx * tile.widthPx;
  let cached = 0;
  let computed = 0;
  return {
    file,
    get cached() {
      return cached;
    },
    get computed() {
      return computed;
    },
    async logits(image, microStep) {
      const cachePath = cacheDir === undefined ? undefined : join(cacheDir, `m${microStep}.f32.gz`);
      if (cachePath !== undefined && existsSync(cachePath)) {
        const bytes = gunzipSync(readFileSync(cachePath));
        if (bytes.byteLength === logitCount * 4) {
          cached++;
          return new Float32Array(bytes.buffer, bytes.byteOffset, logitCount).slice();
        }
      }
      session ??= await createSession(modelBytesForBatch(file, batch, tile), {
        intraOpThreads: options.intraOpThreads,
      });
      const out = await session.run({
        image: { dataType: 'float32', dims: [batch, 1, tile.heightPx, tile.widthPx], values: image },
      });
      const logits = (out[session.outputNames[0]].values as Float32Array).slice();
      computed++;
      if (cachePath !== undefined) {
        const tmp = `${cachePath}.tmp`;
        writeFileSync(tmp, gzipSync(new Uint8Array(logits.buffer), { level: 1 }));
        renameSync(tmp, cachePath);
      }
      return logits;
    },
    async release() {
      await session?.release();
    },
  };
}
