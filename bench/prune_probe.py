"""Issue 15's retention figures: pruning a million dead jobs, per store, and the longest pause
it causes a worker.

    python bench/prune_probe.py [--jobs 1000000] [--stores sqlite,postgres,redis]

For each store: write ``--jobs`` dead jobs straight into a fresh namespace (server-side where
the store can), then run the worker's housekeeping sweep (``Heartbeat.sweep``'s batches of
``SWEEP_BATCH`` with ``SWEEP_PAUSE`` between them, back to back, without its per-beat budget,
and the store's ``recover`` once a ``SWEEP_BUDGET``, as each beat runs it first) with
``dead_max=10_000`` until nothing is left to prune. Meanwhile a second thread plays a
worker: enqueue one job, fetch it, complete it, again and again, timing every call. Printed:
the prune's wall time, its batches (the slowest), and the worker's slowest call during the
prune against its slowest in the same length of time before it.
"""

from __future__ import annotations

if __package__ in (None, ""):
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from conveyor import Conveyor
from conveyor.worker.heartbeat import SWEEP_BATCH, SWEEP_BUDGET, SWEEP_PAUSE

DEAD_MAX = 10_000


def fill_sqlite(app: Conveyor, count: int) -> None:
    backend: Any = app.backend
    with backend._write() as conn:
        conn.execute(
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            f" INSERT INTO {backend.t} (id, queue, payload, priority, state, run_at, max_attempts,"
            f" created_at, finished_at, last_error) SELECT printf('dead-%09d', i), 'default', X'7B7D',"
            f" 0, 'dead', 0, 1, 0, i, 'boom' FROM n",
            (count,),
        )


def fill_postgres(app: Conveyor, count: int) -> None:
    backend: Any = app.backend
    schema = backend.schema
    backend._run(
        lambda conn: conn.execute(
            f"INSERT INTO {schema}.jobs (id, queue, payload, priority, state, run_at, max_attempts,"
            f" created_at, finished_at, last_error) SELECT 'dead-' || lpad(g::text, 9, '0'), 'default',"
            f" '\\x7b7d'::bytea, 0, 'dead', 0, 1, 0, g, 'boom' FROM generate_series(1, %(n)s) g",
            {"n": count},
        )
    )
    backend._run(lambda conn: conn.execute(f"ANALYZE {schema}.jobs"))
    backend.recover(time.time(), 0)  # fold the counts


def fill_redis(app: Conveyor, count: int) -> None:
    backend: Any = app.backend
    prefix = backend.keys.prefix("default")
    client = backend.client
    client.sadd(backend.keys.queues, "default")
    for start in range(1, count + 1, 10_000):
        pipe = client.pipeline(transaction=False)
        scored: dict[str, float] = {}
        for i in range(start, min(start + 10_000, count + 1)):
            job_id = f"dead-{i:09d}"
            fields = {"p": b"{}", "m": "0|1||0", "s": "dead", "ra": "0", "a": "1", "fa": str(i), "e": "x"}
            pipe.hset(prefix + "j:" + job_id, mapping=fields)
            scored[job_id] = float(i)
        pipe.zadd(prefix + "dead", scored)
        pipe.execute()


def probe(url: str, store: str, count: int) -> dict[str, float]:
    namespace = f"prune{int(time.time())}"
    app = Conveyor(url, namespace=namespace)

    @app.task(name="probe.noop")
    def noop() -> None: ...

    noop.enqueue()
    start = time.perf_counter()
    {"sqlite": fill_sqlite, "postgres": fill_postgres, "redis": fill_redis}[store](app, count)
    filled = time.perf_counter() - start

    backend = app.backend
    stop = threading.Event()
    samples: list[tuple[float, float]] = []  # (when, seconds) of each worker call

    def worker() -> None:
        other = Conveyor(url, namespace=namespace)
        other.task(name="probe.noop")(lambda: None)
        store_ = other.backend

        def run_one() -> None:
            fetched = store_.fetch(None, 1, "probe", 30.0, time.time())
            store_.complete([(r.id, None) for r in fetched], "probe", time.time())

        while not stop.is_set():
            for call in (lambda: other.tasks["probe.noop"].enqueue(), run_one):
                began = time.perf_counter()
                call()
                samples.append((began, time.perf_counter() - began))
            time.sleep(0.002)
        other.close()

    thread = threading.Thread(target=worker)
    thread.start()
    time.sleep(3.0)  # the worker's calls with nothing pruning, for comparison
    prune_start = time.perf_counter()
    batches: list[float] = []
    pruned = 0
    beat = 0.0
    while True:
        if time.perf_counter() - beat >= SWEEP_BUDGET:
            # What the heartbeat runs before each beat's sweep (on PostgreSQL it also folds
            # the count deltas that the sweep's limit by number reads).
            beat = time.perf_counter()
            backend.recover(time.time(), 0)
        began = time.perf_counter()
        changed = backend.sweep(time.time(), None, DEAD_MAX, SWEEP_BATCH)
        batches.append(time.perf_counter() - began)
        pruned += changed
        if changed < SWEEP_BATCH:
            break
        time.sleep(SWEEP_PAUSE)
    prune_end = time.perf_counter()
    time.sleep(0.5)
    stop.set()
    thread.join()
    left = app.stats().total("dead")
    app.close()
    before = [s for t, s in samples if t < prune_start]
    during = [s for t, s in samples if prune_start <= t < prune_end]
    return {
        "filled_s": filled,
        "pruned": pruned,
        "left": left,
        "prune_s": prune_end - prune_start,
        "batches": len(batches),
        "batch_median_ms": statistics.median(batches) * 1000,
        "batch_max_ms": max(batches) * 1000,
        "worker_max_before_ms": max(before) * 1000,
        "worker_max_during_ms": max(during) * 1000,
        "worker_p99_during_ms": statistics.quantiles(during, n=100)[98] * 1000,
        "worker_calls_during": len(during),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--stores", default="sqlite,postgres,redis")
    args = parser.parse_args()
    from tests.servers import PostgresServer, RedisServer

    for store in args.stores.split(","):
        server: Any = None
        if store == "redis":
            server = RedisServer(appendonly=False).start()
            url = server.url
        elif store == "postgres":
            server = PostgresServer().start()
            url = server.url
        else:
            url = f"sqlite:///{tempfile.mkdtemp(prefix='prune-probe-')}/jobs.db"
        try:
            result = probe(url, store, args.jobs)
        finally:
            if server is not None:
                server.stop()
        print(
            store,
            " ".join(f"{k}={v:,.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()),
        )


if __name__ == "__main__":
    main()
