/**
 * Writing thread of a threaded CXI writer (cxi-writer-thread.ts): one CxiWriter, its calls in order,
 * a message's calls one after another (the first that fails ends the message with its error).
 */
import { serveWorkerTasks } from '../util/worker-pool.js';
import { type CxiWriter, createCxiWriter } from './cxi-writer.js';
import type { WriterCall } from './cxi-writer-thread.js';

let writer: CxiWriter | undefined;

async function run(call: WriterCall): Promise<void> {
  switch (call.op) {
    case 'open':
      writer = await createCxiWriter(call.path, call.options);
      break;
    case 'appendFrame':
      writer!.appendFrame(call.frame);
      break;
    case 'appendExtra':
      writer!.appendExtra(call.name, call.row, call.rowShape);
      break;
    case 'writeStrings':
      writer!.writeStrings(call.name, call.values);
      break;
    case 'linkExternal':
      writer!.linkExternal(call.name, call.file, call.target);
      break;
    case 'flush':
      writer!.flush();
      break;
    case 'close':
      writer?.close();
      writer = undefined;
      break;
  }
}

serveWorkerTasks<WriterCall[], null>(async (calls) => {
  for (const call of calls) await run(call);
  return null;
});
