"""Benchmark driver for Dramatiq: RedisBroker, worker ``dramatiq bench.drivers.dramatiq_tasks
-p 1 -t 8``. Bulk is a loop of ``send`` (RedisBroker has no batch enqueue)."""

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

SYSTEM = "dramatiq"


def version() -> str:
    from importlib.metadata import version as v

    return v("dramatiq")


def main() -> int:
    args = common.parse_args(SYSTEM, [])
    os.environ["BENCH_URL"] = args.url
    return common.run_main(SYSTEM, args.variant, version, lambda: run(args))


def worker_cmd() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "dramatiq")
    return [exe, "bench.drivers.dramatiq_tasks", "-p", "1", "-t", "8"]


def run(args: Any) -> dict[str, Any]:
    common.flush_redis(args.url)
    from bench.drivers.dramatiq_tasks import noop

    ver = version()
    wd = common.Workdir()

    def bulk(n: int) -> None:
        for _ in range(n):
            noop.send()

    if args.scenario == "enqueue_one":
        return common.enqueue_one_result(args, SYSTEM, ver, lambda _i: noop.send())

    if args.scenario == "enqueue_bulk":
        bulk(10)
        start = time.perf_counter()
        bulk(args.n)
        return common.result(args, SYSTEM, ver, seconds=time.perf_counter() - start)

    if args.scenario == "drain":
        bulk(args.n)
        return common.drain_by_marker(
            args, SYSTEM, ver, wd, worker_cmd(), env=wd.env(args.n, BENCH_URL=args.url)
        )

    proc = common.spawn(worker_cmd(), env=wd.env(BENCH_URL=args.url), log=wd.path / "worker.log")
    out = common.latency_result(args, SYSTEM, ver, wd, proc, lambda ts: noop.send(ts))
    common.stop(proc)
    return out


if __name__ == "__main__":
    sys.exit(main())
