"""Benchmark driver for arq: worker ``arq bench.drivers.arq_tasks.WorkerSettings`` (defaults:
``max_jobs=10``, ``poll_delay=0.5`` s), logging at ERROR. Bulk is ``asyncio.gather`` of ``enqueue_job``, 50 at
a time, on one pool (each ``enqueue_job`` is its own WATCH/MULTI transaction)."""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root, not this folder
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[2])

import asyncio
import os
import sys
import time
from typing import Any

from bench.drivers import common

SYSTEM = "arq"


def version() -> str:
    from importlib.metadata import version as v

    return v("arq")


def main() -> int:
    args = common.parse_args(SYSTEM, [])
    os.environ["BENCH_URL"] = args.url
    return common.run_main(SYSTEM, args.variant, version, lambda: run(args))


def worker_cmd() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "arq")
    log = ["--custom-log-dict", "bench.drivers.arq_tasks.LOG_CONFIG"]
    return [exe, "bench.drivers.arq_tasks.WorkerSettings", *log]


def run(args: Any) -> dict[str, Any]:
    common.flush_redis(args.url)
    from arq import create_pool
    from arq.connections import RedisSettings

    ver = version()
    wd = common.Workdir()
    loop = asyncio.new_event_loop()
    pool = loop.run_until_complete(create_pool(RedisSettings.from_dsn(args.url)))

    async def enqueue(ts: float | None = None) -> object:
        return await (pool.enqueue_job("noop") if ts is None else pool.enqueue_job("noop", ts))

    try:
        if args.scenario == "enqueue_one":
            return loop.run_until_complete(
                common.enqueue_one_result_async(args, SYSTEM, ver, lambda _i: enqueue())
            )
        if args.scenario == "enqueue_bulk":
            loop.run_until_complete(common.gather_chunks(10, 50, lambda _i: enqueue()))
            start = time.perf_counter()
            loop.run_until_complete(common.gather_chunks(args.n, 50, lambda _i: enqueue()))
            return common.result(args, SYSTEM, ver, seconds=time.perf_counter() - start)
        if args.scenario == "drain":
            loop.run_until_complete(common.gather_chunks(args.n, 50, lambda _i: enqueue()))
            return common.drain_by_marker(
                args, SYSTEM, ver, wd, worker_cmd(), env=wd.env(args.n, BENCH_URL=args.url)
            )
        proc = common.spawn(worker_cmd(), env=wd.env(BENCH_URL=args.url), log=wd.path / "worker.log")
        out = common.latency_result(
            args, SYSTEM, ver, wd, proc, lambda ts: loop.run_until_complete(enqueue(ts))
        )
        common.stop(proc)
        return out
    finally:
        loop.run_until_complete(pool.aclose())
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
