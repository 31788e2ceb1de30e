// The BullMQ no-op worker of the conveyor benchmark: `node bullmq_worker.js REDIS_URL`, one
// process, concurrency 50 (the value BullMQ's documentation gives for a worker whose jobs wait on
// I/O; the repository has no load test of its own to copy), finished jobs removed at once
// (removeOnComplete/removeOnFail {count: 0}), no logging (BullMQ logs nothing per job).
"use strict";
const { Worker } = require("bullmq");
const { noop } = require("./marker");

const url = new URL(process.argv[2]);
const connection = { host: url.hostname, port: Number(url.port || 6379), db: Number(url.pathname.slice(1) || 0) };
const worker = new Worker(
  "bench",
  async (job) => {
    noop(job.data.ts);
  },
  { connection, concurrency: 50, removeOnComplete: { count: 0 }, removeOnFail: { count: 0 } },
);
worker.on("error", (err) => process.stderr.write(`${err}\n`));
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => worker.close().then(() => process.exit(0)));
}
