"""Many queues against one: the drain rate of N jobs spread over Q queues (issue 19 §4).

    python bench/queues_probe.py --store redis [--jobs 20000] [--queues 1,200] [--rounds 3]
        [--code /work/main/src --code src]

Each round drains the same number of no-op jobs once per queue count, in turn (A, B, A, B, ...
so the machine's load falls on both alike), with one burst worker (10 threads) on a fresh
namespace of a private server (Redis, Redis Cluster with 3 masters, PostgreSQL) or a fresh
SQLite file. Each drain runs in a process of its own; with ``--code`` (given twice or more)
each round runs every version of conveyor found at those paths (put first on PYTHONPATH), so
a change is measured against the code before it on the same server, interleaved.

Besides the rate it prints what a loaded machine disturbs less: the CPU per job of the
worker's process and of the store's server (redis-server on every node; PostgreSQL's
backends), and the time from ``worker.run()`` to the first job's start. Medians per version
and queue count at the end, with the ratio of each to the first queue count.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def store(kind: str) -> Iterator[tuple[str, str]]:
    """A store URL for ``kind`` and what the drain needs to read the server's CPU."""
    from tests.servers import PostgresServer, RedisCluster, RedisServer

    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="conveyor-queues-") as folder:
            yield f"sqlite:///{folder}/jobs.db", ""
    elif kind == "redis":
        with RedisServer(appendonly=False) as server:
            yield server.url, server.url
    elif kind == "cluster":
        with RedisCluster() as cluster:
            host, port = cluster.nodes[0]
            nodes = ",".join(f"redis://{h}:{p}" for h, p in cluster.nodes)
            yield f"redis+cluster://{host}:{port}", nodes
    else:
        with PostgresServer() as server:
            assert server.proc is not None
            yield server.create_database("queues"), f"pid:{server.proc.pid}"


def _server_cpu(spec: str) -> dict[Any, float]:
    """CPU seconds of the server: per Redis node (INFO), or per PostgreSQL process."""
    if not spec:
        return {}
    if spec.startswith("pid:"):
        from tests.servers import _descendants

        found: dict[Any, float] = {}
        for pid in _descendants(int(spec[4:])):
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                found[pid] = (int(fields[11]) + int(fields[12])) / TICKS
        return found
    import redis

    found = {}
    for url in spec.split(","):
        client = redis.Redis.from_url(url)
        info = client.info("cpu")
        found[url] = float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        client.close()
    return found


def drain(url: str, namespace: str, jobs: int, queues: int, server: str) -> dict[str, float]:
    """One burst worker over ``jobs`` no-op jobs in ``queues`` queues: its figures."""
    from conveyor import Conveyor

    app = Conveyor(url, namespace=namespace)
    first = [0.0]

    @app.task(name="noop")
    def noop() -> None:
        if not first[0]:
            first[0] = time.perf_counter()

    per_queue = jobs // queues
    batch = [noop.using(queue=f"q{n:03d}").job() for n in range(queues) for _ in range(per_queue)]
    for i in range(0, len(batch), 5000):
        app.enqueue_many(batch[i : i + 5000])
    worker = app.worker(concurrency=10, burst=True)
    before = _server_cpu(server)
    cpu = time.process_time()
    start = time.perf_counter()
    worker.run()
    took = time.perf_counter() - start
    cpu = time.process_time() - cpu
    after = _server_cpu(server)
    left = app.stats().total("pending")
    app.backend.close()
    if left:
        raise RuntimeError(f"the burst worker left {left} pending jobs")
    done = per_queue * queues
    spent = sum(v - before.get(k, 0.0) for k, v in after.items())
    return {
        "rate": done / took,
        "start_s": first[0] - start,
        "client_us": cpu / done * 1e6,
        "server_us": spent / done * 1e6 if server else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "redis", "cluster", "postgres"))
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--queues", default="1,200")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--code", action="append", help="a src/ folder to take conveyor from")
    parser.add_argument("--drain", nargs=5, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.drain:
        url, namespace, jobs, queues, server = options.drain
        print(json.dumps(drain(url, namespace, int(jobs), int(queues), server)))
        return
    if options.store is None:
        parser.error("--store is required")
    counts = [int(q) for q in options.queues.split(",")]
    codes = options.code or [""]
    found: dict[tuple[str, int], list[dict[str, float]]] = {(c, q): [] for c in codes for q in counts}
    with store(options.store) as (url, server):
        n = 0
        for r in range(options.rounds):
            for q in counts:
                for code in codes:
                    n += 1
                    env = dict(os.environ)
                    if code:
                        env["PYTHONPATH"] = os.pathsep.join([str(Path(code).resolve()), str(REPO)])
                    command = [
                        sys.executable,
                        __file__,
                        "--drain",
                        url,
                        f"qp{n}",
                        str(options.jobs),
                        str(q),
                        server,
                    ]
                    out = subprocess.run(
                        command, env=env, cwd=REPO, check=True, capture_output=True, text=True
                    )
                    figures = json.loads(out.stdout.strip().splitlines()[-1])
                    found[(code, q)].append(figures)
                    print(
                        f"round {r + 1}: {code or 'this code':>20} {q:4d} queues"
                        f" {figures['rate']:8.0f} jobs/s"
                        f"  start {figures['start_s']:.3f} s  client {figures['client_us']:5.1f} µs/job"
                        f"  server {figures['server_us']:5.1f} µs/job",
                        flush=True,
                    )
    for code in codes:
        base = statistics.median(f["rate"] for f in found[(code, counts[0])])
        for q in counts:
            runs = found[(code, q)]
            rate = statistics.median(f["rate"] for f in runs)
            print(
                f"{code or 'this code':>20} {q:4d} queues: median {rate:8.0f} jobs/s ({rate / base:.2f}x of"
                f" {counts[0]}), start {statistics.median(f['start_s'] for f in runs):.3f} s,"
                f" client {statistics.median(f['client_us'] for f in runs):.1f} µs/job,"
                f" server {statistics.median(f['server_us'] for f in runs):.1f} µs/job"
            )


if __name__ == "__main__":
    main()
