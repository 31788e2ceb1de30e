"""conveyor on PostgreSQL against procrastinate, on one private server, in one run, and
conveyor's store with a deep queue. The peer comparison (graphile-worker, PgQueuer,
procrastinate) is now ``bench/run.py --store postgres`` (bench/RESULTS-postgres.md); this
script stays for the deep-queue figures (``make bench-postgres-deep``).

Run: ``.venv/bin/python bench/postgres_bench.py`` (about ten minutes; needs PostgreSQL
binaries and ``pip install procrastinate``). Starts its own PostgreSQL (tests.servers), then
measures, three times each, medians reported:

* enqueue one at a time (5,000 jobs) and in bulk (50,000 jobs in one call: conveyor's
  ``enqueue_many``, procrastinate's ``batch_defer``); for conveyor also the store alone
  (``backend.enqueue`` of records already built), to separate the store from the app;
* drain: 20,000 queued no-op jobs, one worker process started as a subprocess, timed from
  its start until it exits with the queue empty (conveyor ``concurrency=10, burst=True``;
  procrastinate ``-c 10`` and ``-c 1``, ``wait=False``);
* idle latency: 100 jobs/s for 10 s into an idle worker; each task records
  ``time.time()`` at its start minus the time the job was enqueued (passed as argument);
* deep queue (conveyor): claim+ack of batches of 20 with 1,000,000 jobs queued, against
  the same with 20,000 queued.

Writes the table to stdout and to ``bench/RESULTS-postgres-deep.md``. The script is also the
task module of its worker subprocesses (``worker-conveyor`` / ``worker-procrastinate``).
"""

from __future__ import annotations

import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

REPEAT = 3
ONE_N = 5_000
BULK_N = 50_000
DRAIN_N = 20_000
LATENCY_RATE = 100.0
LATENCY_SECONDS = 10.0
DEEP_N = 1_000_000
TIMES = "\u00d7"
if os.environ.get("BENCH_QUICK"):  # a smoke run of the script itself, not a measurement
    REPEAT, ONE_N, BULK_N, DRAIN_N, LATENCY_SECONDS, DEEP_N = 1, 200, 2_000, 1_000, 1.0, 50_000


# -- the task modules of the worker subprocesses ----------------------------------------------
def conveyor_app(url: str, namespace: str) -> Any:
    from conveyor import Conveyor

    app = Conveyor(url, namespace=namespace)

    @app.task(name="bench.noop", retries=0)
    def noop(i: int) -> None:
        pass

    @app.task(name="bench.stamp", retries=0)
    def stamp(t: float) -> None:
        _record_latency(time.time() - t)

    return app


def procrastinate_app(url: str) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="bench.noop")
    async def noop(i: int) -> None:
        pass

    @app.task(name="bench.stamp")
    async def stamp(t: float) -> None:
        _record_latency(time.time() - t)

    return app


def _record_latency(seconds: float) -> None:
    # One O_APPEND write per job: lines from concurrent runs never interleave.
    fd = os.open(os.environ["BENCH_LATENCY_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{seconds:.6f}\n".encode())
    finally:
        os.close(fd)


def worker_main(argv: list[str]) -> None:
    kind = argv[0]
    if kind == "worker-conveyor":
        url, namespace, burst = argv[1], argv[2], argv[3] == "burst"
        conveyor_app(url, namespace).worker(concurrency=10, burst=burst).run()
    else:
        url, concurrency, wait = argv[1], int(argv[2]), argv[3] == "wait"
        procrastinate_app(url).run_worker(concurrency=concurrency, wait=wait, listen_notify=True)


# -- measurement helpers ---------------------------------------------------------------------
def _spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        env={**os.environ, **(env or {}), "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise RuntimeError(f"worker did not finish in {timeout} s: {err.decode()[-2000:]}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"worker exited {proc.returncode}: {err.decode()[-2000:]}")


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _paced(enqueue: Callable[[float], None], rate: float, seconds: float) -> int:
    """Call ``enqueue(time.time())`` ``rate`` times a second for ``seconds``."""
    count = int(rate * seconds)
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        enqueue(time.time())
    return count


def _collect_latencies(path: Path, count: int, timeout: float = 60.0) -> list[float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().split() if path.exists() else []
        if len(lines) >= count:
            return [float(x) * 1000 for x in lines]
        time.sleep(0.1)
    raise RuntimeError(f"only {len(lines)} of {count} latency samples arrived")


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _wait_idle(seconds: float = 1.5) -> None:
    time.sleep(seconds)  # the worker has started, connected and gone idle


def _records(app: Any, count: int) -> list[Any]:
    """Records of ``bench.noop`` jobs as the app would store them, built outside the timing."""
    from conveyor.job import JobRecord, new_id

    now = time.time()
    records = []
    for i in range(count):
        job_id = new_id()
        payload = app.codec.encode_payload(job_id, "default", 1, "bench.noop", [i], {}, None)
        records.append(JobRecord(id=job_id, queue="default", payload=payload, run_at=now, created_at=now))
    return records


# -- conveyor --------------------------------------------------------------------------------
class ConveyorBench:
    def __init__(self, url: str) -> None:
        self.url = url
        self.n = 0

    def _fresh(self) -> tuple[Any, str]:
        self.n += 1
        namespace = f"bench_{self.n}"
        return conveyor_app(self.url, namespace), namespace

    def one_at_a_time(self) -> float:
        app, _ = self._fresh()
        noop = app.tasks["bench.noop"]
        for i in range(50):  # warm the pool and the prepared statement
            noop.enqueue(i)
        seconds = _timed(lambda: [noop.enqueue(i) for i in range(ONE_N)])
        app.close()
        return ONE_N / seconds

    def bulk(self) -> tuple[float, float]:
        app, _ = self._fresh()
        noop = app.tasks["bench.noop"]
        app.enqueue_many([noop.job(i) for i in range(100)])
        end_to_end = BULK_N / _timed(lambda: app.enqueue_many([noop.job(i) for i in range(BULK_N)]))
        records = _records(app, BULK_N)
        store_only = BULK_N / _timed(lambda: app.backend.enqueue(records))
        app.close()
        return end_to_end, store_only

    def drain(self) -> float:
        app, namespace = self._fresh()
        noop = app.tasks["bench.noop"]
        app.enqueue_many([noop.job(i) for i in range(DRAIN_N)])
        start = time.perf_counter()
        proc = _spawn(["worker-conveyor", self.url, namespace, "burst"])
        _finish(proc, 600)
        seconds = time.perf_counter() - start
        done = app.stats().total("completed")
        app.close()
        if done != DRAIN_N:
            raise RuntimeError(f"conveyor drained {done} of {DRAIN_N}")
        return DRAIN_N / seconds

    def latency(self) -> tuple[float, float]:
        app, namespace = self._fresh()
        stamp = app.tasks["bench.stamp"]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "latency"
            proc = _spawn(["worker-conveyor", self.url, namespace, "run"], {"BENCH_LATENCY_FILE": str(path)})
            try:
                _wait_idle()
                count = _paced(lambda t: stamp.enqueue(t), LATENCY_RATE, LATENCY_SECONDS)
                samples = _collect_latencies(path, count)
            finally:
                proc.send_signal(signal.SIGTERM)
                _finish(proc, 60)
        app.close()
        return _pct(samples, 50), _pct(samples, 99)

    def deep_queue(self) -> dict[str, list[float]]:
        """Claim+ack rate (batches of 20, one thread, straight on the store) with 20,000 and
        with 1,000,000 jobs queued; also the p50 time of one claim."""
        app, _ = self._fresh()
        backend = app.backend
        results: dict[str, list[float]] = {}
        for depth in (20_000, DEEP_N):
            now = time.time()
            with backend._pool().connection() as conn:
                conn.execute(f"TRUNCATE {backend.schema}.jobs")
                # Filled server-side: building a million payloads in Python would time the
                # app, not the store; the claim never looks inside a payload.
                conn.execute(
                    f"INSERT INTO {backend.schema}.jobs (id, queue, payload, priority, state, run_at,"
                    " max_attempts, created_at) SELECT lpad(to_hex(i), 12, '0'), 'default',"
                    " '\\x7b7d', 0, 'pending', %s + i * 1e-6, 1, %s FROM generate_series(1, %s) i",
                    (now - 1000, now, depth),
                )
                conn.execute(
                    f"INSERT INTO {backend.schema}.queues (name) VALUES ('default') ON CONFLICT DO NOTHING"
                )
                conn.execute(f"VACUUM ANALYZE {backend.schema}.jobs")
            rates, claims = [], []
            for _ in range(REPEAT):
                batches = 250
                start = time.perf_counter()
                for _ in range(batches):
                    t = time.perf_counter()
                    got = backend.fetch(None, 20, "bench", 30, time.time())
                    claims.append((time.perf_counter() - t) * 1000)
                    backend.complete([(r.id, None) for r in got], "bench", time.time())
                rates.append(batches * 20 / (time.perf_counter() - start))
            results[f"claim+ack/s at {depth:,} queued"] = rates
            results[f"claim ms p50 at {depth:,} queued"] = [statistics.median(claims)]
        app.close()
        return results


# -- procrastinate ---------------------------------------------------------------------------
class ProcrastinateBench:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.n = 0

    def _fresh(self) -> tuple[Any, str]:
        """A new database with procrastinate's schema, and an open app on it."""
        self.n += 1
        url = self.server.create_database(f"procrastinate_{self.n}")
        app = procrastinate_app(url)
        app.open()
        app.schema_manager.apply_schema()
        return app, url

    def one_at_a_time(self) -> float:
        app, _ = self._fresh()
        noop = app.tasks["bench.noop"]
        for i in range(50):
            noop.defer(i=i)
        seconds = _timed(lambda: [noop.defer(i=i) for i in range(ONE_N)])
        app.close()
        return ONE_N / seconds

    def bulk(self) -> float:
        app, _ = self._fresh()
        noop = app.tasks["bench.noop"]
        noop.batch_defer(*[{"i": i} for i in range(100)])
        rate = BULK_N / _timed(lambda: noop.batch_defer(*[{"i": i} for i in range(BULK_N)]))
        app.close()
        return rate

    def drain(self, concurrency: int) -> float:
        app, url = self._fresh()
        app.tasks["bench.noop"].batch_defer(*[{"i": i} for i in range(DRAIN_N)])
        app.close()
        start = time.perf_counter()
        proc = _spawn(["worker-procrastinate", url, str(concurrency), "once"])
        _finish(proc, 900)
        seconds = time.perf_counter() - start
        done = int(self.server.psql("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'",
                                    dbname=f"procrastinate_{self.n}").strip())  # fmt: skip
        if done != DRAIN_N:
            raise RuntimeError(f"procrastinate drained {done} of {DRAIN_N}")
        return DRAIN_N / seconds

    def latency(self) -> tuple[float, float]:
        app, url = self._fresh()
        stamp = app.tasks["bench.stamp"]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "latency"
            proc = _spawn(["worker-procrastinate", url, "10", "wait"], {"BENCH_LATENCY_FILE": str(path)})
            try:
                _wait_idle(2.5)
                count = _paced(lambda t: stamp.defer(t=t), LATENCY_RATE, LATENCY_SECONDS)
                samples = _collect_latencies(path, count)
            finally:
                proc.send_signal(signal.SIGTERM)
                _finish(proc, 60)
        app.close()
        return _pct(samples, 50), _pct(samples, 99)


# -- the run ---------------------------------------------------------------------------------
def _median(values: list[float]) -> float:
    return statistics.median(values)


def _fmt(value: float, unit: str) -> str:
    return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"


def main() -> None:
    from tests.servers import PostgresServer

    results: dict[str, dict[str, list[float]]] = {"conveyor": {}, "procrastinate": {}}

    def add(system: str, name: str, value: float) -> None:
        results[system].setdefault(name, []).append(value)
        print(f"  {system:13} {name}: {value:,.1f}", flush=True)

    load_before = os.getloadavg()[0]
    with PostgresServer() as server:
        pg_version = server.psql("SHOW server_version").strip()
        conveyor_db = server.create_database("conveyor_bench")
        conv = ConveyorBench(conveyor_db)
        proc = ProcrastinateBench(server)
        for round_ in range(1, REPEAT + 1):
            print(f"round {round_} of {REPEAT}", flush=True)
            add("conveyor", "enqueue one at a time (jobs/s)", conv.one_at_a_time())
            add("procrastinate", "enqueue one at a time (jobs/s)", proc.one_at_a_time())
            end_to_end, store_only = conv.bulk()
            add("conveyor", "bulk enqueue (jobs/s)", end_to_end)
            add("conveyor", "bulk enqueue, store only (jobs/s)", store_only)
            add("procrastinate", "bulk enqueue (jobs/s)", proc.bulk())
            add("conveyor", "drain, one process, c=10 (jobs/s)", conv.drain())
            add("procrastinate", "drain, one process, c=10 (jobs/s)", proc.drain(10))
            add("procrastinate", "drain, one process, c=1 (jobs/s)", proc.drain(1))
            p50, p99 = conv.latency()
            add("conveyor", "idle latency p50 (ms)", p50)
            add("conveyor", "idle latency p99 (ms)", p99)
            p50, p99 = proc.latency()
            add("procrastinate", "idle latency p50 (ms)", p50)
            add("procrastinate", "idle latency p99 (ms)", p99)
        print("deep queue", flush=True)
        for name, values in conv.deep_queue().items():
            for value in values:
                add("conveyor", name, value)

    write_report(results, pg_version, (load_before, os.getloadavg()[0]))


def write_report(
    results: dict[str, dict[str, list[float]]], pg_version: str, load: tuple[float, float]
) -> None:
    conv, proc = results["conveyor"], results["procrastinate"]

    def med(system: dict[str, list[float]], name: str) -> float:
        return _median(system[name])

    rows = [
        (f"enqueue one at a time ({ONE_N:,})", "enqueue one at a time (jobs/s)", "jobs/s"),
        (f"bulk enqueue ({BULK_N:,}, one call)", "bulk enqueue (jobs/s)", "jobs/s"),
        (f"drain {DRAIN_N:,} no-op jobs, one process, c=10", "drain, one process, c=10 (jobs/s)", "jobs/s"),
        ("idle latency p50 (100 jobs/s for 10 s)", "idle latency p50 (ms)", "ms"),
        ("idle latency p99", "idle latency p99 (ms)", "ms"),
    ]  # fmt: skip
    lines = [
        "# conveyor on PostgreSQL vs procrastinate",
        "",
        f"Generated by `bench/postgres_bench.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"one private PostgreSQL server (fsync off) for both, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}. Medians of {REPEAT} runs. Load average (1 min) "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end: anything above the CPU count "
        "means other work shared the machine and every figure below is lower than it would be.",
        "",
        f"Versions: conveyor {metadata.version('conveyor')}, "
        f"procrastinate {metadata.version('procrastinate')}, "
        f"PostgreSQL {pg_version}, psycopg {metadata.version('psycopg')}, "
        f"psycopg-pool {metadata.version('psycopg-pool')}.",
        "",
        "| measurement | conveyor | procrastinate | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, key, unit in rows:
        c, p = med(conv, key), med(proc, key)
        ratio = f"{c / p:.1f}{TIMES}" if unit == "jobs/s" else f"{p / c:.1f}{TIMES} lower" if c else "-"
        lines.append(f"| {label} | {_fmt(c, unit)} | {_fmt(p, unit)} | {ratio} |")
    p1 = med(proc, "drain, one process, c=1 (jobs/s)")
    c10 = med(conv, "drain, one process, c=10 (jobs/s)")
    lines.append(f"| drain, procrastinate `-c 1` | | {_fmt(p1, 'jobs/s')} | {c10 / p1:.1f}{TIMES} |")
    store_only = _fmt(med(conv, "bulk enqueue, store only (jobs/s)"), "jobs/s")
    lines.append(f"| bulk enqueue, store alone (records prebuilt) | {store_only} | | |")
    lines += ["", "Deep queue (conveyor, claim of 20 + batched ack, one thread, straight on the store):", ""]
    lines += ["| measurement | value |", "|---|---:|"]
    for key, values in conv.items():
        if "queued" in key:
            unit = "ms" if "ms" in key else "jobs/s"
            lines.append(f"| {key} | {_fmt(_median(values), unit)} |")
    lines += ["", "Every run (in order):", ""]
    for system, measures in results.items():
        for key, values in measures.items():
            lines.append(f"- {system}, {key}: " + ", ".join(f"{v:,.1f}" for v in values))
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    (ROOT / "bench" / "RESULTS-postgres-deep.md").write_text(text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("worker-"):
        worker_main(sys.argv[1:])
    else:
        main()
