"""Benchmark driver for Sidekiq (Ruby, Debian's ``ruby-sidekiq``): worker ``sidekiq -c 10 -r
./worker.rb`` in bench/drivers/sidekiq/; the enqueue side runs in Ruby (bench/drivers/sidekiq/
enqueue.rb: ``perform_async`` one at a time, ``Sidekiq::Client.push_bulk`` 10,000 a call), and
this script reads its timings."""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root, not this folder
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[2])

import json
import shutil
import sys
from typing import Any

from bench.drivers import common

SYSTEM = "sidekiq"
HERE = common.DRIVERS / "sidekiq"
_version: list[str] = []


def version() -> str:
    if not _version:
        ruby = shutil.which("ruby")
        if ruby is None:
            return "not installed"
        out = common.run_quiet(
            [ruby, "-e", 'require "sidekiq"; print Sidekiq::VERSION, " / ruby ", RUBY_VERSION']
        )
        _version.append(out.strip())
    return _version[0]


def main() -> int:
    args = common.parse_args(SYSTEM, [])
    return common.run_main(SYSTEM, args.variant, version, lambda: run(args))


def ruby(env: dict[str, str], *argv: str, timeout: float = 600.0) -> dict[str, Any]:
    out = common.run_quiet(["ruby", str(HERE / "enqueue.rb"), *argv], env=env, timeout=timeout)
    parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return parsed


def run(args: Any) -> dict[str, Any]:
    if shutil.which("ruby") is None or shutil.which("sidekiq") is None:
        raise common.NotMeasured("ruby/sidekiq not installed (apt-get install -y ruby-sidekiq)")
    try:
        version()
    except RuntimeError as exc:
        raise common.NotMeasured(f"the sidekiq gem does not load: {exc}") from None
    common.flush_redis(args.url)
    ver = version()
    wd = common.Workdir()
    worker = ["sidekiq", "-c", "10", "-r", "./worker.rb"]

    if args.scenario == "enqueue_one":
        res = ruby(wd.env(REDIS_URL=args.url), "one", str(args.n))
        return common.result(
            args, SYSTEM, ver, seconds=res["seconds"], p50_ms=res["p50_ms"], p99_ms=res["p99_ms"]
        )

    if args.scenario == "enqueue_bulk":
        res = ruby(wd.env(REDIS_URL=args.url), "bulk", str(args.n))
        return common.result(args, SYSTEM, ver, seconds=res["seconds"])

    if args.scenario == "drain":
        ruby(wd.env(REDIS_URL=args.url), "fill", str(args.n))
        return common.drain_by_marker(
            args, SYSTEM, ver, wd, worker, env=wd.env(args.n, REDIS_URL=args.url), cwd=HERE
        )

    warm = 3
    proc = common.spawn(worker, env=wd.env(REDIS_URL=args.url), cwd=HERE, log=wd.path / "worker.log")
    ruby(wd.env(REDIS_URL=args.url), "paced", str(args.n), str(args.rate), str(warm), timeout=args.timeout)
    common.wait_for(lambda: wd.lines() >= warm + args.n, args.timeout, "latency jobs", proc, poll=0.01)
    lat = wd.latencies()
    common.stop(proc)
    return common.result(
        args,
        SYSTEM,
        ver,
        seconds=args.n / args.rate,
        n=len(lat),
        p50_ms=common.percentile(lat, 50) * 1000,
        p99_ms=common.percentile(lat, 99) * 1000,
        rate=args.rate,
    )


if __name__ == "__main__":
    sys.exit(main())
