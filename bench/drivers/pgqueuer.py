"""Benchmark driver for PgQueuer (PyPI ``pgqueuer``, PostgreSQL): the worker is
``python -m bench.drivers.pgqueuer_tasks`` (five consumers of batches of 10 on asyncpg and
uvloop, as PgQueuer's own benchmark); enqueue through ``Queries.enqueue`` on asyncpg, one at a
time or 10,000 a call (lists). Every run gets a fresh database; the schema is installed first."""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root, not this folder
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[2])

import asyncio
import sys
import time
from typing import Any

from bench.drivers import common

SYSTEM = "pgqueuer"
BULK_CHUNK = 10_000


def version() -> str:
    from importlib.metadata import version as v

    return v("pgqueuer")


def main() -> int:
    args = common.parse_args(SYSTEM, [])
    return common.run_main(SYSTEM, args.variant, version, lambda: run(args))


def worker_cmd(url: str, mode: str) -> list[str]:
    return [sys.executable, "-m", "bench.drivers.pgqueuer_tasks", url, mode]


def run(args: Any) -> dict[str, Any]:
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
    import uvloop
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    ver = version()
    wd = common.Workdir()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    conn = loop.run_until_complete(asyncpg.connect(dsn=args.url))
    queries = Queries(AsyncpgDriver(conn))
    loop.run_until_complete(queries.install())

    async def one(ts: float | None = None) -> None:
        await queries.enqueue("noop", None if ts is None else b"%.6f" % ts, 0)

    async def bulk(n: int) -> None:
        for chunk in common.chunks(n, BULK_CHUNK):
            size = len(chunk)
            await queries.enqueue(["noop"] * size, [None] * size, [0] * size)

    try:
        if args.scenario == "enqueue_one":
            return loop.run_until_complete(
                common.enqueue_one_result_async(args, SYSTEM, ver, lambda _i: one())
            )
        if args.scenario == "enqueue_bulk":
            loop.run_until_complete(bulk(10))
            start = time.perf_counter()
            loop.run_until_complete(bulk(args.n))
            return common.result(args, SYSTEM, ver, seconds=time.perf_counter() - start)
        if args.scenario == "drain":
            loop.run_until_complete(bulk(args.n))
            return common.drain_by_marker(args, SYSTEM, ver, wd, worker_cmd(args.url, "drain"))
        proc = common.spawn(worker_cmd(args.url, "continuous"), env=wd.env(), log=wd.path / "worker.log")
        out = common.latency_result(args, SYSTEM, ver, wd, proc, lambda ts: loop.run_until_complete(one(ts)))
        common.stop(proc)
        return out
    finally:
        loop.run_until_complete(conn.close())
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
