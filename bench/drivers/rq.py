"""Benchmark driver for RQ: variant ``simple`` (``rq worker -w rq.worker.SimpleWorker``) or
``fork`` (the default ``rq.Worker``, one forked child per job), logging at ERROR. Drain uses
``--burst`` and is timed until the worker exits; bulk is ``Queue.enqueue_many`` (one pipeline per 10,000)."""

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

SYSTEM = "rq"
BULK_CHUNK = 10_000


def version() -> str:
    from importlib.metadata import version as v

    return v("rq")


def main() -> int:
    args = common.parse_args(SYSTEM, ["simple", "fork"])
    return common.run_main(SYSTEM, args.variant, version, lambda: run(args))


def worker_cmd(url: str, variant: str, burst: bool) -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "rq")
    # RQ logs two INFO lines a job ("default: noop()", "Job OK"); quiet, as its own perf runs
    cmd = [exe, "worker", "--url", url, "--logging_level", "ERROR"]
    if variant == "simple":
        cmd += ["-w", "rq.worker.SimpleWorker"]
    if burst:
        cmd.append("--burst")
    return [*cmd, "default"]


def run(args: Any) -> dict[str, Any]:
    from redis import Redis
    from rq import Queue

    from bench.drivers.rq_tasks import noop

    common.flush_redis(args.url)
    ver = version()
    wd = common.Workdir()
    conn = Redis.from_url(args.url)
    queue = Queue("default", connection=conn)

    def bulk(n: int) -> None:
        for chunk in common.chunks(n, BULK_CHUNK):
            queue.enqueue_many([Queue.prepare_data(noop) for _ in chunk])

    if args.scenario == "enqueue_one":
        return common.enqueue_one_result(args, SYSTEM, ver, lambda _i: queue.enqueue(noop))

    if args.scenario == "enqueue_bulk":
        bulk(10)
        start = time.perf_counter()
        bulk(args.n)
        return common.result(args, SYSTEM, ver, seconds=time.perf_counter() - start)

    if args.scenario == "drain":
        bulk(args.n)
        server = common.server_cpu_seconds()
        wall = time.time()
        start = time.perf_counter()
        proc = common.spawn(
            worker_cmd(args.url, args.variant, True), env=wd.env(args.n), log=wd.path / "worker.log"
        )
        rc, cpu = common.wait_exit(proc, args.timeout)
        seconds = time.perf_counter() - start
        server_cpu = common.server_cpu_between(server)
        done = queue.finished_job_registry.count
        if rc != 0 or done != args.n:
            raise RuntimeError(
                f"worker exited {rc} with {done} of {args.n} finished: {common.tail_log(proc)}"
            )
        return common.result(
            args,
            SYSTEM,
            ver,
            seconds=seconds,
            cpu_s=round(cpu, 3),
            startup_s=wd.startup(wall),
            steady_per_s=wd.steady(args.n),
            server_cpu_s=server_cpu,
        )

    proc = common.spawn(worker_cmd(args.url, args.variant, False), env=wd.env(), log=wd.path / "worker.log")
    out = common.latency_result(args, SYSTEM, ver, wd, proc, lambda ts: queue.enqueue(noop, ts))
    common.stop(proc)
    return out


if __name__ == "__main__":
    sys.exit(main())
