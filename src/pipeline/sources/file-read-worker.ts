/**
 * Reading thread of a file source (files.ts): opens the files and reads frames and their beam values
 * ahead of the pipeline, each frame's pixels shared (not copied) back: a SharedArrayBuffer's, or moved
 * (a CBF frame's).
 */
import { serveWorkerTasks, transferList } from '../../util/worker-pool.js';
import { createFileReader, type FileReaderData, type ReadResult, type ReadTask } from './files.js';

let reader: ReturnType<typeof createFileReader> | undefined;

serveWorkerTasks<ReadTask, ReadResult>(
  (task, data) => {
    reader ??= createFileReader(data as FileReaderData);
    return reader.run(task);
  },
  (result) => (result.kind === 'frame' ? transferList(result.pixels) : []),
);
