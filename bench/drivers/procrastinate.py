"""Benchmark driver for procrastinate (PyPI, PostgreSQL): the worker is ``python -m
bench.drivers.procrastinate_tasks`` (``run_worker(concurrency=10)``); enqueue is ``defer`` one
at a time and ``batch_defer`` 10,000 a call. Every run gets a fresh database; the schema is
applied first."""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root, not this folder
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[2])

import sys
import time
from typing import Any

from bench.drivers import common

SYSTEM = "procrastinate"
BULK_CHUNK = 10_000


def version() -> str:
    from importlib.metadata import version as v

    return v("procrastinate")


def main() -> int:
    args = common.parse_args(SYSTEM, [])
    return common.run_main(SYSTEM, args.variant, version, lambda: run(args))


def worker_cmd(url: str, mode: str) -> list[str]:
    return [sys.executable, "-m", "bench.drivers.procrastinate_tasks", url, mode]


def run(args: Any) -> dict[str, Any]:
    from bench.drivers.procrastinate_tasks import make_app

    ver = version()
    wd = common.Workdir()
    app = make_app(args.url)
    app.open()
    app.schema_manager.apply_schema()
    noop = app.tasks["noop"]

    def bulk(n: int) -> None:
        for chunk in common.chunks(n, BULK_CHUNK):
            noop.batch_defer(*[{} for _ in chunk])

    try:
        if args.scenario == "enqueue_one":
            return common.enqueue_one_result(args, SYSTEM, ver, lambda _i: noop.defer())
        if args.scenario == "enqueue_bulk":
            bulk(10)
            start = time.perf_counter()
            bulk(args.n)
            return common.result(args, SYSTEM, ver, seconds=time.perf_counter() - start)
        if args.scenario == "drain":
            bulk(args.n)
            return common.drain_by_marker(args, SYSTEM, ver, wd, worker_cmd(args.url, "once"))
        proc = common.spawn(worker_cmd(args.url, "wait"), env=wd.env(), log=wd.path / "worker.log")
        out = common.latency_result(args, SYSTEM, ver, wd, proc, lambda ts: noop.defer(ts=ts))
        common.stop(proc)
        return out
    finally:
        app.close()


if __name__ == "__main__":
    sys.exit(main())
