"""Benchmark driver for huey: SqliteHuey (sqlite:/// URL) or RedisHuey (redis:// URL), worker
``huey_consumer bench.drivers.huey_tasks.huey -w 4 -k thread`` (huey's defaults otherwise)."""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root, not this folder
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[2])

import os
import shutil
import sys
from typing import Any

from bench.drivers import common

SYSTEM = "huey"


def version() -> str:
    from importlib.metadata import version as v

    return v("huey")


def main() -> int:
    args = common.parse_args(SYSTEM, ["sqlite", "redis"])
    args.variant = "sqlite" if args.url.startswith("sqlite") else "redis"
    os.environ["BENCH_URL"] = args.url
    return common.run_main(SYSTEM, args.variant, version, lambda: run(args))


def consumer_cmd() -> list[str]:
    exe = shutil.which("huey_consumer", path=os.path.dirname(sys.executable)) or "huey_consumer"
    return [exe, "bench.drivers.huey_tasks.huey", "-w", "4", "-k", "thread", "-q"]


def run(args: Any) -> dict[str, Any]:
    if args.variant == "redis":
        common.flush_redis(args.url)
    from bench.drivers.huey_tasks import noop

    ver = version()
    wd = common.Workdir()
    env = wd.env(BENCH_URL=args.url)

    if args.scenario == "enqueue_one":
        return common.enqueue_one_result(args, SYSTEM, ver, lambda _i: noop())

    if args.scenario == "enqueue_bulk":
        raise common.NotMeasured("huey has no bulk enqueue API")

    if args.scenario == "drain":
        for _ in range(args.n):
            noop()
        return common.drain_by_marker(
            args, SYSTEM, ver, wd, consumer_cmd(), env=wd.env(args.n, BENCH_URL=args.url)
        )

    proc = common.spawn(consumer_cmd(), env=env, log=wd.path / "worker.log")
    out = common.latency_result(args, SYSTEM, ver, wd, proc, lambda ts: noop(ts))
    common.stop(proc)
    return out


if __name__ == "__main__":
    sys.exit(main())
