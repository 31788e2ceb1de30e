"""Where a PostgreSQL drain's time goes, seen from inside the worker: every claim (``fetch``)
and acknowledgement (``complete``) timed, and how long each was in flight alone, together, or
neither (session 16: claims and acks took turns, together 13% of a 100k drain).

    python bench/pg_worker_timeline.py [--jobs 100000] [--url postgresql://...] [--timeline 40]

One burst worker of 10 threads runs in this process on no-op jobs (a private server unless
``--url``). Prints the drain's wall and CPU time, per call kind the calls, the median batch and
time, and the time with (claim in flight?, ack in flight?); ``--timeline N`` also prints the
first N calls (start and end in ms from the first call, batch size).
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import collections
import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from conveyor import Conveyor


@contextlib.contextmanager
def _database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from tests.servers import PostgresServer

    with PostgresServer() as server:
        yield server.create_database(f"timeline{os.getpid()}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--url", default=None, help="a database to use (default: a private server)")
    parser.add_argument("--namespace", default="timeline")
    parser.add_argument("--timeline", type=int, default=0, help="print the first N calls")
    options = parser.parse_args()
    with _database(options.url) as url:
        app = Conveyor(url, namespace=options.namespace)

        @app.task(name="noop")
        def noop() -> None: ...

        for start in range(0, options.jobs, 10_000):
            app.enqueue_many([noop.job() for _ in range(min(10_000, options.jobs - start))])
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        calls: list[tuple[str, float, float, int]] = []
        backend: Any = app.backend

        def timed(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(*args: Any) -> Any:
                began = time.perf_counter()
                result = call(*args)
                size = len(result) if name == "fetch" else len(args[0])
                calls.append((name, began, time.perf_counter(), size))
                return result

            return wrapper

        backend.fetch = timed("fetch", backend.fetch)
        backend.complete = timed("complete", backend.complete)
        worker = app.worker(concurrency=10, burst=True)
        wall, cpu = time.perf_counter(), time.process_time()
        worker.run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        app.close()
    rate = worker.processed / wall
    print(f"{worker.processed:,} jobs in {wall:.2f} s ({rate:,.0f}/s), worker CPU {cpu:.2f} s")
    for name in ("fetch", "complete"):
        mine = [c for c in calls if c[0] == name and c[3]]
        busy = sum(end - began for _, began, end, _ in mine)
        print(
            f"{name:8s} {len(mine)} calls, in flight {busy / wall:.0%} of the drain, median batch"
            f" {statistics.median(c[3] for c in mine):.0f}, median"
            f" {statistics.median(c[2] - c[1] for c in mine) * 1e3:.1f} ms"
        )
    # (claim in flight?, ack in flight?) -> seconds, from the first call to the last end
    events = sorted((t, name, step) for name, began, end, _ in calls for t, step in ((began, 1), (end, -1)))
    flying = {"fetch": 0, "complete": 0}
    spent: dict[tuple[bool, bool], float] = collections.defaultdict(float)
    last = events[0][0]
    for t, name, step in events:
        spent[(flying["fetch"] > 0, flying["complete"] > 0)] += t - last
        last = t
        flying[name] += step
    labels = {
        (True, True): "both",
        (True, False): "claim only",
        (False, True): "ack only",
        (False, False): "neither",
    }
    print("  ".join(f"{labels[k]} {spent[k]:.2f} s" for k in labels))
    first = calls[0][1] if calls else 0.0
    for name, began, end, size in calls[: options.timeline]:
        print(f"  {name:8s} {(began - first) * 1e3:8.1f} {(end - first) * 1e3:8.1f} ms  n={size}")


if __name__ == "__main__":
    main()
