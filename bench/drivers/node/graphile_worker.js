// The graphile-worker no-op worker of the conveyor benchmark: `node graphile_worker.js PG_URL
// [once]`, one process, configured as graphile-worker's own perf test (perfTest/graphile.config.js):
// concurrentJobs 10, maxPoolSize 11, a local queue of 500 refetched after 10 ms, completions and
// failures batched with no delay; its logger at errors only (the perf test sets NO_LOG_SUCCESS).
"use strict";
const { run, runOnce, Logger } = require("graphile-worker");
const { noop } = require("./marker");

process.env.NO_LOG_SUCCESS = "1";
const CONCURRENT_JOBS = 10;
const logger = new Logger(() => (level, message) => {
  if (level === "error") process.stderr.write(`${message}\n`);
});
const options = {
  connectionString: process.argv[2],
  logger,
  taskList: { noop: async (payload) => noop(payload.ts) },
  preset: {
    worker: {
      concurrentJobs: CONCURRENT_JOBS,
      maxPoolSize: CONCURRENT_JOBS + 1,
      localQueue: { size: 500, refetchDelay: { durationMs: 10 } },
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
    },
  },
};

async function main() {
  if (process.argv[3] === "once") {
    await runOnce(options);
    return;
  }
  const runner = await run(options);
  await runner.promise;
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
