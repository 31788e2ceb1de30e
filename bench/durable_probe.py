"""What durable acknowledgement costs: enqueue one by one, then drain, on a master with one
replica, with ``replicas=0`` and ``replicas=1`` interleaved (the median of each).

    python bench/durable_probe.py [--jobs 2000] [--rounds 5]
"""

from __future__ import annotations

if __package__ in (None, ""):
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import statistics
import time

from conveyor import Conveyor
from tests.servers import RedisServer


def one_round(url: str, replicas: int | None, jobs: int, namespace: str) -> tuple[float, float]:
    """(enqueues per second one by one, jobs drained per second) for one setting."""
    app = Conveyor(url, namespace=namespace, replicas=replicas)

    @app.task(name="probe.noop")
    def noop() -> None: ...

    try:
        started = time.perf_counter()
        for _ in range(jobs):
            noop.enqueue()
        enqueue = jobs / (time.perf_counter() - started)
        started = time.perf_counter()
        app.worker(concurrency=8, burst=True).run()
        drain = jobs / (time.perf_counter() - started)
    finally:
        app.close()
    return enqueue, drain


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    with (
        RedisServer(appendonly=False) as master,
        RedisServer(appendonly=False, replica_of=master.port) as replica,
    ):
        while b"master_link_status:up" not in bytes(replica.command("INFO", "replication") or b""):  # type: ignore[arg-type]
            time.sleep(0.05)
        figures: dict[int, list[tuple[float, float]]] = {0: [], 1: []}
        for n in range(options.rounds):
            for replicas in (0, 1):
                figures[replicas].append(
                    one_round(master.url, replicas or None, options.jobs, f"p{n}_{replicas}")
                )
        for replicas, rows in figures.items():
            enqueue = statistics.median(r[0] for r in rows)
            drain = statistics.median(r[1] for r in rows)
            print(
                f"replicas={replicas}: enqueue {enqueue:,.0f}/s one by one, drain {drain:,.0f} jobs/s "
                f"(median of {options.rounds}, {options.jobs} jobs)"
            )


if __name__ == "__main__":
    main()
