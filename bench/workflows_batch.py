"""What batches cost (issue 17's figures), per store, medians of interleaved runs.

    python bench/workflows_batch.py --store sqlite [--jobs 100000] [--repeat 3]
    python bench/workflows_batch.py --store redis --main-src /tmp/wf-main/src --ab-only

1. Batch against plain: N no-op jobs stored by one ``app.enqueue_many`` (plain) or one
   ``app.batch(..., on_complete=...)`` (batch), then drained by one in-process burst worker
   of 8 threads; jobs per second of each, plain and batch taking turns, each run in a fresh
   process and namespace. The targets: batch enqueue >= 0.5 of plain, batch drain >= 0.7.
2. A/B, no batch anywhere (``--main-src``: a copy of main's ``src``, e.g.
   ``git archive main src | tar -x -C /tmp/wf-main``): ``--ab-jobs`` no-op jobs enqueued in
   batches of 1,000 and drained, with main's conveyor and this tree's, taking turns. Jobs
   outside batches must not pay for them (within 5%).

Servers: a fresh SQLite file, or a PostgreSQL / Redis server / 3-master Redis Cluster started
for the run (tests/servers). Prints one JSON object, with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _child(src: str, url: str, jobs: int, mode: str) -> None:
    sys.path.insert(0, src)
    from conveyor import Conveyor

    app = Conveyor(url, namespace=f"wb{os.getpid()}")

    @app.task(name="bench.noop")
    def noop(n: int) -> None:
        return None

    if mode == "ab":  # as a product enqueues: batches of 1,000
        start = time.perf_counter()
        for i in range(0, jobs, 1000):
            app.enqueue_many([noop.job(n) for n in range(i, min(i + 1000, jobs))])
        enqueued = time.perf_counter() - start
    else:
        specs = [noop.job(n) for n in range(jobs)]
        start = time.perf_counter()
        if mode == "batch":
            batch = app.batch(specs, on_complete=noop.job(-1))
        else:
            app.enqueue_many(specs)
        enqueued = time.perf_counter() - start
    worker = app.worker(concurrency=8, burst=True, grace=5)
    start = time.perf_counter()
    worker.run()
    drained = time.perf_counter() - start
    done = app.stats().total("completed")
    out = {"enqueue": jobs / enqueued, "drain": done / drained, "completed": done}
    if mode == "batch":
        out["batch_completed"] = batch.status()["completed"]
    print(json.dumps(out))
    app.close()


def _run(src: str, url: str, jobs: int, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", src, "--url", url, "--jobs", str(jobs), "--mode", mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": src},
    )
    result: dict[str, float] = json.loads(out.stdout.splitlines()[-1])
    return result


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 1) for k in ("enqueue", "drain")}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgres", "redis", "redis-cluster"), default="sqlite")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--main-src", help="main's src directory for the A/B run (skipped without)")
    parser.add_argument("--ab-jobs", type=int, default=20_000)
    parser.add_argument("--ab-only", action="store_true", help="the A/B run only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.url, args.jobs, args.mode)
        return
    sys.path.insert(0, str(ROOT))
    server: Any = None
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        runs = 0

        def url_for() -> str:
            nonlocal runs
            runs += 1
            if args.store == "sqlite":
                return f"sqlite:///{tmp}/run{runs}.db"
            if args.store == "redis-cluster":
                host, port = server.nodes[0]
                return f"redis+cluster://{host}:{port}"
            return str(server.url)

        if args.store != "sqlite":
            from tests.servers import PostgresServer, RedisCluster, RedisServer

            kind = {"redis": RedisServer, "postgres": PostgresServer, "redis-cluster": RedisCluster}[
                args.store
            ]
            server = kind().start()
        try:
            result: dict[str, object] = {
                "store": args.store,
                "jobs": args.jobs,
                "repeat": args.repeat,
                "load_before": os.getloadavg(),
                "utc_start": time.strftime("%H:%M:%S", time.gmtime()),
            }
            src = str(ROOT / "src")
            if not args.ab_only:
                found: dict[str, list[dict[str, float]]] = {"plain": [], "batch": []}
                for rep in range(args.repeat):
                    order = ("plain", "batch") if rep % 2 == 0 else ("batch", "plain")
                    for mode in order:
                        found[mode].append(_run(src, url_for(), args.jobs, mode))
                plain, batch = _medians(found["plain"]), _medians(found["batch"])
                result["plain_jobs_per_s"] = plain
                result["batch_jobs_per_s"] = batch
                result["batch_over_plain"] = {k: round(batch[k] / plain[k], 3) for k in plain}
                result["all_completed"] = all(
                    r["completed"] >= args.jobs for rs in found.values() for r in rs
                ) and all(r["batch_completed"] == args.jobs for r in found["batch"])
            if args.main_src:
                ab: dict[str, list[dict[str, float]]] = {"main": [], "branch": []}
                for rep in range(args.repeat):
                    pairs = (("main", args.main_src), ("branch", src))
                    for name, where in pairs if rep % 2 == 0 else pairs[::-1]:
                        ab[name].append(_run(where, url_for(), args.ab_jobs, "ab"))
                main_m, branch_m = _medians(ab["main"]), _medians(ab["branch"])
                result["ab_noop_jobs_per_s"] = {"main": main_m, "branch": branch_m}
                result["ab_branch_over_main"] = {k: round(branch_m[k] / main_m[k], 3) for k in main_m}
            result["load_after"] = os.getloadavg()
            result["utc_end"] = time.strftime("%H:%M:%S", time.gmtime())
            print(json.dumps(result, indent=2))
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
