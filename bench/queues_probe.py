"""Many queues against one: the drain rate of N jobs spread over Q queues (issue 19 §4).

    python bench/queues_probe.py --store redis [--jobs 20000] [--queues 1,200] [--rounds 3]

Each round drains the same number of no-op jobs once per queue count, in turn (A, B, A, B, ...
so the machine's load falls on both alike), with one in-process worker (``--burst``, 10
threads) on a fresh namespace of a private server (Redis, Redis Cluster with 3 masters,
PostgreSQL) or a fresh SQLite file. Prints each run and the median rate per queue count, and
the ratio of each to the first.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from conveyor import Conveyor
from tests.servers import PostgresServer, RedisCluster, RedisServer


@contextlib.contextmanager
def store(kind: str) -> Iterator[str]:
    """A store URL for ``kind`` (each drain then uses a namespace of its own)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="conveyor-queues-") as folder:
            yield f"sqlite:///{folder}/jobs.db"
    elif kind == "redis":
        with RedisServer(appendonly=False) as server:
            yield server.url
    elif kind == "cluster":
        with RedisCluster() as cluster:
            host, port = cluster.nodes[0]
            yield f"redis+cluster://{host}:{port}"
    else:
        with PostgresServer() as server:
            yield server.create_database("queues")


def drain(url: str, namespace: str, jobs: int, queues: int) -> float:
    """Jobs per second of one burst worker over ``jobs`` no-op jobs in ``queues`` queues."""
    app = Conveyor(url, namespace=namespace)

    @app.task(name="noop")
    def noop() -> None:
        return None

    per_queue = jobs // queues
    batch = [noop.using(queue=f"q{n:03d}").job() for n in range(queues) for _ in range(per_queue)]
    for i in range(0, len(batch), 5000):
        app.enqueue_many(batch[i : i + 5000])
    worker = app.worker(concurrency=10, burst=True)
    start = time.perf_counter()
    worker.run()
    took = time.perf_counter() - start
    left = app.stats().total("pending")
    app.backend.close()
    if left:
        raise RuntimeError(f"the burst worker left {left} pending jobs")
    return per_queue * queues / took


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "redis", "cluster", "postgres"), required=True)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--queues", default="1,200")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    counts = [int(q) for q in options.queues.split(",")]
    rates: dict[int, list[float]] = {q: [] for q in counts}
    with store(options.store) as url:
        for n in range(options.rounds):
            for q in counts:
                rate = drain(url, f"qp{n}x{q}", options.jobs, q)
                rates[q].append(rate)
                print(f"round {n + 1}: {q:4d} queues  {rate:9.0f} jobs/s", flush=True)
    base = statistics.median(rates[counts[0]])
    for q in counts:
        median = statistics.median(rates[q])
        print(f"{q:4d} queues: median {median:9.0f} jobs/s  ({median / base:.2f}x of {counts[0]})")


if __name__ == "__main__":
    main()
