// What every Node no-op task does, as bench/drivers/sink.py does for the Python ones: count the
// runs in this process and create $BENCH_DONE_FILE at $BENCH_DONE_N (".first" at the first run,
// ".steady" at run 1,000), or append (now - ts) in seconds to $BENCH_LAT_FILE. No round-trip.
"use strict";
const fs = require("fs");

const DONE_N = Number(process.env.BENCH_DONE_N || 0);
const DONE_FILE = process.env.BENCH_DONE_FILE || "";
const LAT_FILE = process.env.BENCH_LAT_FILE || "";
const STEADY_FROM = 1000;
let count = 0;
let latFd = null;

function touch(path) {
  fs.closeSync(fs.openSync(path, "w"));
}

/** Seconds since the epoch with sub-millisecond resolution (Date.now() has whole ms). */
function now() {
  return (performance.timeOrigin + performance.now()) / 1000;
}

function noop(ts) {
  if (ts === undefined || ts === null) {
    if (!DONE_N || !DONE_FILE) return;
    count += 1;
    if (count === 1) touch(`${DONE_FILE}.first`);
    if (count === STEADY_FROM) touch(`${DONE_FILE}.steady`);
    if (count === DONE_N) touch(DONE_FILE);
  } else {
    const elapsed = now() - ts;
    if (latFd === null) latFd = fs.openSync(LAT_FILE, "a");
    fs.writeSync(latFd, `${elapsed.toFixed(9)}\n`);
  }
}

/** Median and 99th percentile (linear interpolation, as common.percentile) of ms samples. */
function percentile(samples, q) {
  const data = [...samples].sort((a, b) => a - b);
  const pos = ((data.length - 1) * q) / 100;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, data.length - 1);
  return data[lo] + (data[hi] - data[lo]) * (pos - lo);
}

/** Call `call(i)` n times at `rate` a second on an absolute schedule, as common.paced. */
async function paced(n, rate, call) {
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const delay = start + (i * 1000) / rate - performance.now();
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    await call(i);
  }
}

/** The client side of a driver: `one N`, `bulk N`, `fill N`, `paced N RATE WARM`; prints one
 * JSON line with seconds (and p50_ms / p99_ms per call for `one`). */
async function client(argv, api) {
  const [mode, nText, rateText, warmText] = argv;
  const n = Number(nText);
  await api.open();
  try {
    if (mode === "one") {
      for (let i = 0; i < Math.min(50, n); i++) await api.one(null);
      const per = [];
      const start = performance.now();
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await api.one(null);
        per.push(performance.now() - t);
      }
      const seconds = (performance.now() - start) / 1000;
      return { seconds, p50_ms: percentile(per, 50), p99_ms: percentile(per, 99) };
    }
    if (mode === "bulk" || mode === "fill") {
      if (mode === "bulk") await api.bulk(10);
      const start = performance.now();
      for (let lo = 0; lo < n; lo += api.chunk) await api.bulk(Math.min(api.chunk, n - lo));
      return { seconds: (performance.now() - start) / 1000 };
    }
    if (mode === "paced") {
      const warm = Number(warmText);
      for (let i = 0; i < warm; i++) await api.one(0);
      await new Promise((r) => setTimeout(r, 1500)); // the worker has run them and gone idle
      await paced(n, Number(rateText), () => api.one(now()));
      return { seconds: n / Number(rateText) };
    }
    throw new Error(`unknown mode ${mode}`);
  } finally {
    await api.close();
  }
}

function main(argv, api) {
  client(argv, api).then(
    (out) => {
      process.stdout.write(`${JSON.stringify(out)}\n`);
      process.exit(0);
    },
    (err) => {
      process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
      process.exit(1);
    },
  );
}

module.exports = { noop, now, main };
