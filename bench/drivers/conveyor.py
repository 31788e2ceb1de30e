"""Benchmark driver for conveyor on SQLite, Redis or PostgreSQL (variant from the URL)."""

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

SYSTEM = "conveyor"
BULK_CHUNK = 10_000


def version() -> str:
    import conveyor

    return conveyor.__version__


def worker_cmd(burst: bool) -> tuple[list[str], str]:
    """The worker command line: the CLI if it exists, else the Python API."""
    tail = ["--concurrency", "10"] + (["--burst"] if burst else [])
    if common.has_module("conveyor.__main__") and common.has_module("conveyor.cli"):
        # quiet as every peer is run (its log has no per-job line at INFO either; this is for parity)
        cli = [sys.executable, "-m", "conveyor", "worker", "bench.drivers.conveyor_tasks:app", *tail]
        return [*cli, "--log-level", "ERROR"], "cli"
    return [sys.executable, "-m", "bench.drivers.conveyor_worker", *tail], "api"


def main() -> int:
    args = common.parse_args(SYSTEM, ["sqlite", "redis", "postgres"])
    args.variant = (
        "sqlite" if args.url.startswith("sqlite") else "redis" if "redis" in args.url else "postgres"
    )
    os.environ["CONVEYOR_URL"] = args.url
    return common.run_main(SYSTEM, args.variant, version, lambda: run(args))


def run(args: Any) -> dict[str, Any]:
    if args.variant == "redis":
        common.flush_redis(args.url)
    from bench.drivers.conveyor_tasks import app, noop

    ver = version()
    wd = common.Workdir()
    env = wd.env(CONVEYOR_URL=args.url)

    if args.scenario == "enqueue_one":
        return common.enqueue_one_result(args, SYSTEM, ver, lambda _i: noop.enqueue())

    if args.scenario == "enqueue_bulk":
        app.enqueue_many([noop.job()])  # connect, create the schema / load scripts
        start = time.perf_counter()
        for chunk in common.chunks(args.n, BULK_CHUNK):
            app.enqueue_many([noop.job() for _ in chunk])
        return common.result(args, SYSTEM, ver, seconds=time.perf_counter() - start)

    if args.scenario == "drain":
        for chunk in common.chunks(args.n, BULK_CHUNK):
            app.enqueue_many([noop.job() for _ in chunk])
        before = app.stats().total("completed")
        app.close()
        cmd, how = worker_cmd(burst=True)
        env = wd.env(args.n, CONVEYOR_URL=args.url)
        server = common.server_cpu_seconds()
        wall = time.time()
        start = time.perf_counter()
        proc = common.spawn(cmd, env=env, log=wd.path / "worker.log")
        rc, cpu = common.wait_exit(proc, args.timeout)
        seconds = time.perf_counter() - start
        server_cpu = common.server_cpu_between(server)
        if rc != 0:
            raise RuntimeError(f"worker exited {rc}: {common.tail_log(proc)}")
        done = app.stats().total("completed") - before
        if done != args.n:
            raise RuntimeError(f"burst worker exited with {done} of {args.n} jobs completed")
        last = os.stat(wd.done).st_mtime if wd.done.exists() else None
        return common.result(
            args,
            SYSTEM,
            ver,
            seconds=seconds,
            cpu_s=round(cpu, 3),
            startup_s=wd.startup(wall),
            steady_per_s=wd.steady(args.n),
            server_cpu_s=server_cpu,
            exit_s=None if last is None else round(wall + seconds - last, 3),
            worker=how,
        )

    # latency
    cmd, how = worker_cmd(burst=False)
    proc = common.spawn(cmd, env=env, log=wd.path / "worker.log")
    out = common.latency_result(args, SYSTEM, ver, wd, proc, lambda ts: noop.enqueue(ts))
    common.stop(proc)
    out["worker"] = how
    return out


if __name__ == "__main__":
    sys.exit(main())
