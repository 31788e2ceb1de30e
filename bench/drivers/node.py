"""The Node side of the Node peers' drivers (bench/drivers/bullmq.py, graphile_worker.py): their
scripts sit in bench/drivers/node/ with a package.json and lock; ``make bench-deps`` runs
``npm ci`` there. Each peer has a worker script and a client script (enqueue one at a time,
bulk, fill, paced) that prints one JSON line, as the Sidekiq driver's Ruby side does."""

from __future__ import annotations

import json
import shutil
from typing import Any

from bench.drivers import common

HERE = common.DRIVERS / "node"


def missing(package: str) -> str | None:
    """Why the peer cannot run here, or None."""
    if shutil.which("node") is None:
        return "node not installed (apt-get install -y nodejs npm)"
    if not (HERE / "node_modules" / package / "package.json").exists():
        return f"npm package {package} not installed (make bench-deps)"
    return None


def version(package: str) -> str:
    """``<package version> / node <version>``."""
    meta = json.loads((HERE / "node_modules" / package / "package.json").read_text())
    node = common.run_quiet(["node", "--version"]).strip().lstrip("v")
    return f"{meta['version']} / node {node}"


def client(script: str, env: dict[str, str], url: str, *argv: str, timeout: float = 600.0) -> dict[str, Any]:
    out = common.run_quiet(["node", str(HERE / script), url, *argv], env=env, timeout=timeout)
    parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return parsed


def run_peer(args: Any, system: str, package: str, prefix: str) -> dict[str, Any]:
    """One scenario for a Node peer whose scripts are ``<prefix>_worker.js`` and
    ``<prefix>_client.js``; the store is already empty."""
    why = missing(package)
    if why is not None:
        raise common.NotMeasured(why)
    ver = version(package)
    wd = common.Workdir()
    client_js = f"{prefix}_client.js"
    worker = ["node", str(HERE / f"{prefix}_worker.js"), args.url]

    if args.scenario == "enqueue_one":
        res = client(client_js, wd.env(), args.url, "one", str(args.n))
        return common.result(
            args, system, ver, seconds=res["seconds"], p50_ms=res["p50_ms"], p99_ms=res["p99_ms"]
        )
    if args.scenario == "enqueue_bulk":
        res = client(client_js, wd.env(), args.url, "bulk", str(args.n))
        return common.result(args, system, ver, seconds=res["seconds"])
    if args.scenario == "drain":
        client(client_js, wd.env(), args.url, "fill", str(args.n))
        return common.drain_by_marker(args, system, ver, wd, worker, env=wd.env(args.n), cwd=HERE)

    warm = 3
    proc = common.spawn(worker, env=wd.env(), cwd=HERE, log=wd.path / "worker.log")
    client(
        client_js, wd.env(), args.url, "paced", str(args.n), str(args.rate), str(warm), timeout=args.timeout
    )
    common.wait_for(lambda: wd.lines() >= warm + args.n, args.timeout, "latency jobs", proc, poll=0.01)
    lat = wd.latencies()
    common.stop(proc)
    return common.result(
        args,
        system,
        ver,
        seconds=args.n / args.rate,
        n=len(lat),
        p50_ms=common.percentile(lat, 50) * 1000,
        p99_ms=common.percentile(lat, 99) * 1000,
        rate=args.rate,
    )
