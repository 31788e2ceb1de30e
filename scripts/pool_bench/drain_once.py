"""One in-process no-op drain on a fresh SQLite file, for an A/B of the thread pool's cost:
``app.worker(concurrency=10, burst=True).run()`` over N jobs; prints jobs/s, CPU µs a job
and which conveyor ran. Alternate two checkouts, e.g.:

    for i in 1 2 3 4 5 6 7 8 9; do for src in /old/src src; do
        PYTHONPATH=$src .venv/bin/python scripts/pool_bench/drain_once.py 10000
    done; done
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import tempfile
import time

import conveyor
from conveyor import Conveyor


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    app = Conveyor(f"sqlite:///{tempfile.mkdtemp()}/jobs.db")

    @app.task(name="noop")
    def noop() -> None:
        pass

    app.enqueue_many([noop.job() for _ in range(n)])
    logging.basicConfig(level=logging.WARNING)
    worker = app.worker(concurrency=10, burst=True)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    worker.run()
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert app.stats().total("completed") == n
    print(f"{n / seconds:.0f} jobs/s, {cpu / n * 1e6:.1f} µs CPU/job, {os.path.dirname(conveyor.__file__)}")


if __name__ == "__main__":
    main()
