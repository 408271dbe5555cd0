/** Worker thread of `braggflow label --workers N`: runs shard jobs (label-job.ts), one at a time. */
import { serveWorkerTasks } from '../util/worker-pool.js';
import { type LabelJob, runLabelJob, type ShardRecord } from './label-job.js';

serveWorkerTasks<LabelJob, ShardRecord>((job) => runLabelJob(job));
