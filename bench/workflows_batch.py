"""What batches cost (issue 17's figures), per store, medians of interleaved runs.

    python bench/workflows_batch.py --store sqlite [--jobs 100000] [--repeat 3]
    python bench/workflows_batch.py --store redis --main-src /tmp/wf-main/src --ab-only
    python bench/workflows_batch.py --store redis --against /tmp/wf-main/src

1. Batch against plain: N no-op jobs stored by one ``app.enqueue_many`` (plain) or one
   ``app.batch(..., on_complete=...)`` (batch), then drained by one in-process burst worker
   of 8 threads; jobs per second of each, plain and batch taking turns, each run in a fresh
   process and namespace. The targets: batch enqueue >= 0.5 of plain, batch drain >= 0.7.
2. A/B, no batch anywhere (``--main-src``: a copy of main's ``src``, e.g.
   ``git archive main src | tar -x -C /tmp/wf-main``): ``--ab-jobs`` no-op jobs enqueued in
   batches of 1,000 and drained, with main's conveyor and this tree's, taking turns. Jobs
   outside batches must not pay for them (within 5%).

Servers: a fresh SQLite file, or a PostgreSQL / Redis server / 3-master Redis Cluster started
for the run (tests/servers). Prints one JSON object, with the load average before and after,
and (part 1) the CPU per job in µs, medians: the benchmark process's (client, and the
in-process worker while it drains) and, on Redis, the server's (every master, summed).
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


def _server_cpu(url: str) -> float | None:
    """Seconds of CPU the Redis server(s) behind ``url`` used so far (every master of a
    Cluster, summed); None for the other stores (SQLite runs in this process)."""
    import redis
    from redis.cluster import RedisCluster

    if url.startswith("redis+cluster://"):
        host, port = url.removeprefix("redis+cluster://").split(":")
        client = RedisCluster(host=host, port=int(port))
        infos = client.info("cpu", target_nodes=RedisCluster.ALL_NODES)
        client.close()
        nodes = infos.values() if isinstance(infos, dict) and "used_cpu_user" not in infos else [infos]
        return sum(float(i["used_cpu_user"]) + float(i["used_cpu_sys"]) for i in nodes)
    if url.startswith("redis://"):
        client = redis.Redis.from_url(url)
        info = client.info("cpu")
        client.close()
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return None


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
        cpu, server = time.process_time(), _server_cpu(url)
        start = time.perf_counter()
        if mode == "batch":
            batch = app.batch(specs, on_complete=noop.job(-1))
        else:
            app.enqueue_many(specs)
        enqueued = time.perf_counter() - start
        enqueue_cpu, enqueue_server = time.process_time() - cpu, _server_cpu(url)
    worker = app.worker(concurrency=8, burst=True, grace=5)
    cpu = time.process_time()
    start = time.perf_counter()
    worker.run()
    drained = time.perf_counter() - start
    drain_cpu, drain_server = time.process_time() - cpu, _server_cpu(url)
    done = app.stats().total("completed")
    out = {"enqueue": jobs / enqueued, "drain": done / drained, "completed": done}
    if mode != "ab":
        # CPU per job, in µs: this process's (the client's, and the in-process worker's),
        # and the Redis server's; what a loaded machine's waits do not inflate.
        out["enqueue_cpu_us"] = enqueue_cpu / jobs * 1e6
        out["drain_cpu_us"] = drain_cpu / done * 1e6
        if server is not None and enqueue_server is not None and drain_server is not None:
            out["enqueue_server_us"] = (enqueue_server - server) / jobs * 1e6
            out["drain_server_us"] = (drain_server - enqueue_server) / done * 1e6
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
    parser.add_argument(
        "--against", help="part 1 also with this src directory (e.g. main's), taking turns with this tree"
    )
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
            trees = [("", src)] + ([("main_", args.against)] if args.against else [])
            if not args.ab_only:
                found: dict[str, list[dict[str, float]]] = {}
                for rep in range(args.repeat):
                    # plain and batch, and (--against) the two trees, take turns
                    order = [(t, m) for t in trees for m in ("plain", "batch")]
                    for (name, where), mode in order if rep % 2 == 0 else order[::-1]:
                        found.setdefault(name + mode, []).append(_run(where, url_for(), args.jobs, mode))
                for name, _ in trees:
                    plain, batch = _medians(found[name + "plain"]), _medians(found[name + "batch"])
                    result[name + "plain_jobs_per_s"] = plain
                    result[name + "batch_jobs_per_s"] = batch
                    result[name + "batch_over_plain"] = {k: round(batch[k] / plain[k], 3) for k in plain}
                    cpu_keys = [
                        k
                        for k in ("enqueue_cpu_us", "drain_cpu_us", "enqueue_server_us", "drain_server_us")
                        if k in found[name + "plain"][0]
                    ]
                    cpu = {
                        mode: {
                            k: round(statistics.median(r[k] for r in found[name + mode]), 2) for k in cpu_keys
                        }
                        for mode in ("plain", "batch")
                    }
                    result[name + "cpu_us_per_job"] = cpu
                    if "drain_server_us" in cpu_keys:
                        # batch drain over plain by CPU per job (process + server): a rate ratio
                        total = {m: cpu[m]["drain_cpu_us"] + cpu[m]["drain_server_us"] for m in cpu}
                        result[name + "drain_cpu_ratio"] = round(total["plain"] / total["batch"], 3)
                result["all_completed"] = all(
                    r["completed"] >= args.jobs for rs in found.values() for r in rs
                ) and all(
                    r["batch_completed"] == args.jobs
                    for k, rs in found.items()
                    if k.endswith("batch")
                    for r in rs
                )
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
