"""Benchmark driver for Celery on a Redis broker, no result backend: variant ``solo``
(``celery worker -P solo``) or ``threads`` (``-P threads -c 10``); both with
``--without-gossip --without-mingle --without-heartbeat`` (one worker, nothing to sync with).
Bulk is a loop of ``apply_async`` on one producer (Celery's Redis transport has no batch
publish; a ``group`` publishes the same way, one message at a time)."""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root, not this folder
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[2])

import os
import sys
import time
from typing import Any

from bench.drivers import common

SYSTEM = "celery"


def version() -> str:
    from importlib.metadata import version as v

    return v("celery")


def main() -> int:
    args = common.parse_args(SYSTEM, ["solo", "threads"])
    os.environ["BENCH_URL"] = args.url
    return common.run_main(SYSTEM, args.variant, version, lambda: run(args))


def worker_cmd(variant: str) -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "celery")
    pool = ["-P", "solo"] if variant == "solo" else ["-P", "threads", "-c", "10"]
    return [
        exe, "-A", "bench.drivers.celery_tasks", "worker", *pool, "-l", "warning",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip


def run(args: Any) -> dict[str, Any]:
    common.flush_redis(args.url)
    from bench.drivers.celery_tasks import app, noop

    ver = version()
    wd = common.Workdir()
    env = wd.env(BENCH_URL=args.url)

    def bulk(n: int) -> None:
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                noop.apply_async(producer=producer)

    if args.scenario == "enqueue_one":
        return common.enqueue_one_result(args, SYSTEM, ver, lambda _i: noop.delay())

    if args.scenario == "enqueue_bulk":
        bulk(10)
        start = time.perf_counter()
        bulk(args.n)
        return common.result(args, SYSTEM, ver, seconds=time.perf_counter() - start)

    if args.scenario == "drain":
        bulk(args.n)
        return common.drain_by_marker(
            args, SYSTEM, ver, wd, worker_cmd(args.variant), env=wd.env(args.n, BENCH_URL=args.url)
        )

    proc = common.spawn(worker_cmd(args.variant), env=env, log=wd.path / "worker.log")
    out = common.latency_result(args, SYSTEM, ver, wd, proc, lambda ts: noop.delay(ts))
    common.stop(proc)
    return out


if __name__ == "__main__":
    sys.exit(main())
