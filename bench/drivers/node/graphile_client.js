// The enqueue side of the graphile-worker driver (bench/drivers/graphile_worker.py): `node
// graphile_client.js PG_URL one|bulk|fill|paced N [RATE WARM]`. One at a time = `addJob`; bulk =
// `addJobs`, 10,000 a call. The schema is migrated first (untimed).
"use strict";
const { makeWorkerUtils } = require("graphile-worker");
const { main } = require("./marker");

let utils = null;
main(process.argv.slice(3), {
  chunk: 10000,
  async open() {
    utils = await makeWorkerUtils({ connectionString: process.argv[2] });
    await utils.migrate();
  },
  async one(ts) {
    await utils.addJob("noop", ts === null ? {} : { ts });
  },
  async bulk(n) {
    const specs = [];
    for (let i = 0; i < n; i++) specs.push({ identifier: "noop", payload: {} });
    await utils.addJobs(specs);
  },
  async close() {
    await utils.release();
  },
});
