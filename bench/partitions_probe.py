"""One hot queue on a 3-master Redis Cluster, partitioned or not (issue 19 §5).

    python bench/partitions_probe.py [--jobs 20000] [--partitions 1,12] [--rounds 3] [--workers 1]

Each round drains the same number of no-op jobs of one queue once per partition count, in
turn (A, B, A, B, ... so the machine's load falls on both alike), with ``--workers`` worker
processes (``--burst``, 10 threads each) on a fresh namespace of a private cluster. Per run:
the drain rate, and per master the jobs it held and the CPU seconds its server spent (INFO
cpu, user + sys), so the share of the work each master did is seen, not guessed.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import multiprocessing
import statistics
import time
from collections import Counter

from conveyor import Conveyor
from conveyor.backends.redis import RedisBackend
from conveyor.backends.redis.partitions import shards
from conveyor.task import Task
from tests.servers import RedisCluster


def _app(url: str, namespace: str) -> tuple[Conveyor, Task[[], None]]:
    app = Conveyor(url, namespace=namespace)

    @app.task(queue="hot", name="noop")
    def noop() -> None:
        return None

    return app, noop


def _work(url: str, namespace: str) -> None:
    _app(url, namespace)[0].worker(queues=["hot"], concurrency=10, burst=True).run()


def _cpu(cluster: RedisCluster) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for server in cluster.servers:
        info = server.command("INFO", "cpu")
        assert isinstance(info, bytes)
        fields = dict(line.split(":", 1) for line in info.decode().splitlines() if ":" in line)
        seconds[f"127.0.0.1:{server.port}"] = float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])
    return seconds


def drain(
    cluster: RedisCluster, url: str, namespace: str, jobs: int, partitions: int, workers: int
) -> dict[str, object]:
    app, task = _app(url, namespace)
    backend = app.backend
    assert isinstance(backend, RedisBackend)
    app.queue("hot", partitions=partitions)
    batch = [task.job() for _ in range(jobs)]
    for i in range(0, jobs, 5000):
        app.enqueue_many(batch[i : i + 5000])
    held: Counter[str] = Counter()
    for name in shards("hot", partitions):
        node = backend.client.get_node_from_key(backend.keys.prefix(name) + "prios")
        held[node.name] += int(backend.client.zcard(backend.keys.prefix(name) + "w:0"))
    before = _cpu(cluster)
    start = time.perf_counter()
    procs = [multiprocessing.Process(target=_work, args=(url, namespace)) for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    took = time.perf_counter() - start
    after = _cpu(cluster)
    left = app.stats().total("pending")
    app.close()
    if left:
        raise RuntimeError(f"the burst workers left {left} pending jobs")
    cpu = {node: after[node] - before[node] for node in before}
    return {"rate": jobs / took, "took": took, "held": dict(held), "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--partitions", default="1,12")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    options = parser.parse_args()
    counts = [int(n) for n in options.partitions.split(",")]
    rates: dict[int, list[float]] = {n: [] for n in counts}
    with RedisCluster() as cluster:
        host, port = cluster.nodes[0]
        url = f"redis+cluster://{host}:{port}"
        for r in range(options.rounds):
            for n in counts:
                run = drain(cluster, url, f"pp{r}x{n}", options.jobs, n, options.workers)
                rates[n].append(float(run["rate"]))  # type: ignore[arg-type]
                held, cpu = run["held"], run["cpu"]
                assert isinstance(held, dict) and isinstance(cpu, dict)
                per_master = ", ".join(
                    f"{node}: {held.get(node, 0)} jobs, {cpu[node]:.2f} s CPU"
                    f" ({held.get(node, 0) / float(run['took']):.0f} jobs/s)"  # type: ignore[arg-type]
                    for node in sorted(cpu)
                )
                print(
                    f"round {r + 1}: partitions={n:3d} {run['rate']:8.0f} jobs/s | {per_master}", flush=True
                )
    for n in counts:
        print(f"partitions={n:3d}: median {statistics.median(rates[n]):8.0f} jobs/s")


if __name__ == "__main__":
    main()
