"""What 1,000 periodic schedules cost an idle worker, and how late their ticks are enqueued.

    python bench/periodic.py --store sqlite          # or redis, cluster, postgres; --window 60

A worker runs in this process (threads, as ``conveyor worker`` runs them) with 1,000 schedules
of ``every=60``: every minute all 1,000 ticks fall on the same second, the worst case for
lateness (``--spread``: each once a minute at its own second, about 17 ticks a second).
Their jobs go to a queue the worker does not serve, so what is measured is the scheduler,
not the running of its jobs. Over ``--window`` seconds (a whole number of minutes, starting
2 s past a minute) it reports:

* the CPU of the whole process (``time.process_time``), and of the scheduler thread alone
  (``/proc/self/task/<tid>/stat``), as a percentage of one core;
* the lateness of each tick enqueued in the window: when the store call that stored it
  returned minus the tick's time (p50, p99, max), from a middleware's ``after_enqueue``;
  and when the first store call of the minute began (``before_enqueue``), which separates
  the thread's wake-up from the store's work.

The same worker without schedules is measured too, for the base cost of an idle worker.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conveyor import Conveyor, Middleware
from conveyor.job import JobRecord

SCHEDULES = 1000


class Stamps(Middleware):
    """When each batch of tick jobs came back from the store."""

    def __init__(self) -> None:
        self.offered: list[float] = []
        self.batches: list[tuple[float, list[JobRecord]]] = []

    def before_enqueue(self, records: list[JobRecord]) -> None:
        self.offered.append(time.time())

    def after_enqueue(self, records: list[JobRecord]) -> None:
        self.batches.append((time.time(), records))


def _thread_cpu(native_id: int) -> float:
    """CPU seconds (user + system) of one thread of this process."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, namespace: str, window: float, schedules: int, spread: bool = False) -> dict[str, Any]:
    stamps = Stamps()
    app = Conveyor(url, namespace=namespace, middleware=[stamps])

    @app.task(name="bench.tick", queue="ticks")
    def tick(n: int) -> None: ...

    for n in range(schedules):
        if spread:  # once a minute each, at second n % 60: about 17 ticks a second
            app.periodic(tick, cron=f"{n % 60} * * * * *", args=(n,), name=f"tick-{n:04d}")
        else:
            app.periodic(tick, every=60, args=(n,), name=f"tick-{n:04d}")
    worker = app.worker(queues=["served"], concurrency=4)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    # Start 2 s past a minute, after the scheduler's first (catch-up) pass.
    time.sleep(1.0)
    start = (time.time() // 60 + 1) * 60 + 2
    time.sleep(start - time.time())
    scheduler = worker._scheduler
    tid = scheduler._thread.native_id if scheduler and scheduler._thread else None
    cpu0, sched0, wall0 = time.process_time(), _thread_cpu(tid) if tid else 0.0, time.time()
    time.sleep(window)
    cpu1, sched1, wall1 = time.process_time(), _thread_cpu(tid) if tid else 0.0, time.time()
    worker.stop()
    thread.join(30)
    late: list[float] = []
    # The first store call of each minute: when the scheduler began offering that minute's ticks.
    began = sorted(t % 60 for t in stamps.offered if wall0 <= t < wall1 and t % 60 < 30)
    for returned, records in stamps.batches:
        for record in records:
            payload, _ = app.codec.peek(record.id, record.payload)
            at = payload.meta["tick"] if payload and payload.meta else None
            if at is not None and wall0 <= at < wall1:
                late.append(returned - at)
    app.close()
    late.sort()
    elapsed = wall1 - wall0
    return {
        "process_cpu_pct": 100 * (cpu1 - cpu0) / elapsed,
        "scheduler_cpu_pct": 100 * (sched1 - sched0) / elapsed,
        "ticks": len(late),
        "late_p50_ms": 1000 * statistics.median(late) if late else None,
        "late_p99_ms": 1000 * late[int(0.99 * (len(late) - 1))] if late else None,
        "late_max_ms": 1000 * late[-1] if late else None,
        "first_offer_ms": 1000 * began[0] if began else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "redis", "cluster", "postgres"), required=True)
    parser.add_argument(
        "--window", type=float, default=60.0, help="Seconds measured (a whole number of minutes)."
    )
    parser.add_argument("--schedules", type=int, default=SCHEDULES)
    parser.add_argument("--no-baseline", action="store_true", help="Skip the run without schedules.")
    parser.add_argument(
        "--spread", action="store_true", help="Ticks spread over the minute (cron with seconds) instead."
    )
    options = parser.parse_args()
    from tests.servers import PostgresServer, RedisCluster, RedisServer

    def run(url: str) -> None:
        stamp = f"b{os.getpid()}_{int(time.time())}"
        with_schedules = measure(url, stamp + "_s", options.window, options.schedules, options.spread)
        kind = "spread over the minute" if options.spread else "all at one second"
        print(f"{options.store}: {options.schedules} schedules, {kind}: {with_schedules}", flush=True)
        if not options.no_baseline:
            without = measure(url, stamp + "_n", options.window, 0)
            print(
                f"{options.store}: no schedules: process_cpu_pct={without['process_cpu_pct']:.2f}", flush=True
            )

    if options.store == "sqlite":
        run(f"sqlite:///{tempfile.mkdtemp(prefix='conveyor-periodic-')}/jobs.db")
    elif options.store == "redis":
        with RedisServer() as redis_server:
            run(redis_server.url)
    elif options.store == "cluster":
        with RedisCluster() as cluster:
            host, port = cluster.nodes[0]
            run(f"redis+cluster://{host}:{port}")
    else:
        with PostgresServer() as postgres_server:
            run(postgres_server.url)


if __name__ == "__main__":
    main()
