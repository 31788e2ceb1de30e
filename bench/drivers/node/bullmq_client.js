// The enqueue side of the BullMQ driver (bench/drivers/bullmq.py): `node bullmq_client.js
// REDIS_URL one|bulk|fill|paced N [RATE WARM]`. One at a time = `Queue.add`; bulk = `Queue.addBulk`,
// 10,000 a call (as every bulk in the benchmark).
"use strict";
const { Queue } = require("bullmq");
const { main } = require("./marker");

const url = new URL(process.argv[2]);
const connection = { host: url.hostname, port: Number(url.port || 6379), db: Number(url.pathname.slice(1) || 0) };
let queue = null;
main(process.argv.slice(3), {
  chunk: 10000,
  async open() {
    queue = new Queue("bench", { connection });
    await queue.waitUntilReady();
  },
  async one(ts) {
    await queue.add("noop", ts === null ? {} : { ts });
  },
  async bulk(n) {
    const jobs = [];
    for (let i = 0; i < n; i++) jobs.push({ name: "noop", data: {} });
    await queue.addBulk(jobs);
  },
  async close() {
    await queue.close();
  },
});
