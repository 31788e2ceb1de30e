"""Issue 17's dependency figures, per store.

    python bench/workflows_chain.py --store sqlite [--steps 1000] [--repeat 3]
    python bench/workflows_chain.py --store redis --main-src /tmp/main/src [--ab-only]

1. Chain hand-off: ``app.chain`` of ``--steps`` no-op jobs, run by one in-process worker of one
   thread; the hand-off of a step is the time from the previous step's end (its finished_at) to
   its own start (started_at), both stamped by the worker. Median and 90th percentile over the
   steps, median over the repeats. Targets: < 5 ms on Redis, < 20 ms on SQLite and PostgreSQL.
2. A/B with ``--main-src`` (a copy of main's ``src``: ``git archive main src | tar -x -C
   /tmp/main``): jobs outside workflows must pay nothing. Enqueue N no-op jobs (batches of
   1,000) and drain them with one in-process worker of 8 threads, once with this tree and once
   with main, each in a fresh process and its own namespace (or SQLite file), A and B taking
   turns; medians of jobs per second.

Servers: a fresh SQLite file, or a PostgreSQL / Redis server started for the run (tests/servers).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _child_noop(src: str, url: str, jobs: int) -> None:
    sys.path.insert(0, src)
    from conveyor import Conveyor

    app = Conveyor(url, namespace=f"ab{os.getpid()}")

    @app.task(name="bench.noop")
    def noop(n: int) -> None:
        return None

    app.backend.stats(time.time())  # opened (and its schema made) before the clock starts
    start = time.perf_counter()
    for i in range(0, jobs, 1000):
        app.enqueue_many([noop.job(n) for n in range(i, min(i + 1000, jobs))])
    enqueued = time.perf_counter() - start
    worker = app.worker(concurrency=8, burst=True, grace=5)
    start = time.perf_counter()
    worker.run()
    drained = time.perf_counter() - start
    done = app.stats().queues.get("default", {}).get("completed", 0)
    print(
        json.dumps({"enqueue": jobs / enqueued, "drain": done / drained, "both": jobs / (enqueued + drained)})
    )


def _ab(url_for: object, main_src: str, jobs: int, repeat: int) -> dict[str, dict[str, float]]:
    runs: dict[str, list[dict[str, float]]] = {"main": [], "wf-deps": []}
    variants = [("main", main_src), ("wf-deps", str(ROOT / "src"))]
    for rep in range(repeat):
        for name, src in variants if rep % 2 == 0 else variants[::-1]:
            url = url_for(f"{name}{rep}")  # type: ignore[operator]
            out = subprocess.run(
                [sys.executable, __file__, "--child-noop", src, "--url", url, "--jobs", str(jobs)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": src},
            )
            runs[name].append(json.loads(out.stdout.splitlines()[-1]))
    return {
        name: {k: round(statistics.median(r[k] for r in found), 1) for k in ("enqueue", "drain", "both")}
        for name, found in runs.items()
    }


def _chain(url: str, steps: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT / "src"))
    from conveyor import Conveyor

    app = Conveyor(url, namespace=f"chain{os.getpid()}_{time.monotonic_ns() % 10**6}")

    @app.task(name="bench.step", retries=0)
    def step(n: int) -> int:
        return n

    start = time.perf_counter()
    jobs = app.chain(*(step.job(n) for n in range(steps)))
    enqueue_s = time.perf_counter() - start
    worker = app.worker(concurrency=1, grace=5)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        jobs[-1].result(timeout=600)
    finally:
        worker.stop()
        thread.join(30)
    snapshots = [app.get_job(job.id) for job in jobs]
    gaps = []
    for before, after in itertools.pairwise(snapshots):
        assert before is not None and after is not None
        assert before.finished_at is not None and after.started_at is not None
        gaps.append((after.started_at - before.finished_at).total_seconds() * 1000)
    gaps.sort()
    app.close()
    return {
        "handoff_median_ms": round(statistics.median(gaps), 2),
        "handoff_p90_ms": round(gaps[int(len(gaps) * 0.9)], 2),
        "chain_enqueue_s": round(enqueue_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgres", "redis"), default="sqlite")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--main-src", help="main's src directory for the A/B run (skipped without)")
    parser.add_argument("--jobs", type=int, default=5000, help="jobs of each A/B run")
    parser.add_argument("--ab-only", action="store_true")
    parser.add_argument("--child-noop", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_noop:
        _child_noop(args.child_noop, args.url, args.jobs)
        return
    sys.path.insert(0, str(ROOT))
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.store == "sqlite":

            def url_for(tag: str) -> str:
                return f"sqlite:///{tmp}/{tag}.db"
        else:
            from tests.servers import PostgresServer, RedisServer

            server = (RedisServer if args.store == "redis" else PostgresServer)().start()

            def url_for(tag: str) -> str:
                return str(server.url)

        try:
            result: dict[str, object] = {"store": args.store, "load": os.getloadavg()}
            started = time.strftime("%H:%M:%S", time.gmtime())
            if not args.ab_only:
                runs = [_chain(url_for(f"chain{n}"), args.steps) for n in range(args.repeat)]
                result["steps"] = args.steps
                result["chain"] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            if args.main_src:
                result["ab_noop_jobs_per_s"] = _ab(url_for, args.main_src, args.jobs, args.repeat)
            result["utc"] = f"{started}-{time.strftime('%H:%M:%S', time.gmtime())}"
            result["load_after"] = os.getloadavg()
            print(json.dumps(result, indent=2))
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
