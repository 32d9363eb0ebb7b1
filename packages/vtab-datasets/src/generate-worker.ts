/** Worker-thread entry: generates one mini-suite task (built as dist/generate-worker.js). */
import { parentPort, workerData } from 'node:worker_threads';
import type { GenerateJob } from './suite/generate.js';
import { writeTask } from './suite/write-task.js';

const job = workerData as GenerateJob;
writeTask(job.dir, job.task, job.seed, job.counts).then(
  () => parentPort?.postMessage({}),
  (error: unknown) => parentPort?.postMessage({ error: error instanceof Error ? error.message : String(error) }),
);
