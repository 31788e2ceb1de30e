"""Issue 15's cost figures: what jobs without the lifecycle options pay, and what a unique enqueue
costs, per store, A/B against another checkout in the same run.

    python bench/lifecycle_probe.py --baseline /tmp/main-src [--rounds 5] [--stores sqlite,postgres,redis]

``--baseline`` is the ``src`` directory of the code to compare with (say, main exported with
``git archive``). Each round runs the baseline and this checkout one after the other (A then
B, then B then A in the next round), each in a fresh process on a fresh namespace, on one
SQLite file, PostgreSQL server and redis-server started here (tests.servers); the table gives
the median of the rounds. Per run (and the client process's CPU time per job, steadier than
wall time on a loaded machine):

* ``enqueue_one``: jobs/s of N single ``task.enqueue()`` calls of a no-op task;
* ``enqueue_many``: jobs/s of ``enqueue_many`` in batches of 1,000;
* ``drain``: jobs/s of a burst worker (concurrency 10) running N no-op jobs;
* this checkout only: ``unique`` and ``plain`` microseconds per single enqueue (each key new),
  ``duplicate`` per enqueue that finds its key held, and ``rtt`` the store's round trip (a
  ``SELECT 1`` or ``PING``), so the difference reads in round trips.
"""

from __future__ import annotations

if __package__ in (None, ""):
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def child(url: str, namespace: str, n: int, lifecycle: bool) -> dict[str, float]:
    from conveyor import Conveyor

    app = Conveyor(url, namespace=namespace)

    @app.task(name="probe.noop", retries=0)
    def noop(i: int) -> None:
        return None

    noop.enqueue(-1)  # connect and register the queue outside the timings
    out: dict[str, float] = {}
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        noop.enqueue(i)
    out["enqueue_one"] = n / (time.perf_counter() - start)
    out["enqueue_one_cpu"] = (time.process_time() - cpu) / n * 1e6
    start, cpu = time.perf_counter(), time.process_time()
    for base in range(0, 5 * n, 1000):
        app.enqueue_many([noop.job(i) for i in range(base, base + 1000)])
    out["enqueue_many"] = 5 * n / (time.perf_counter() - start)
    out["enqueue_many_cpu"] = (time.process_time() - cpu) / (5 * n) * 1e6
    total = 6 * n + 1
    worker = app.worker(concurrency=10, burst=True, grace=5)
    start, cpu = time.perf_counter(), time.process_time()
    thread = threading.Thread(target=worker.run)
    thread.start()
    thread.join(600)
    out["drain"] = total / (time.perf_counter() - start)
    out["drain_cpu"] = (time.process_time() - cpu) / total * 1e6
    if lifecycle:
        out.update(_unique_costs(app, noop, n // 2))
    app.close()
    return out


def _unique_costs(app: Any, task: Any, n: int) -> dict[str, float]:
    """Median microseconds per single enqueue: plain, unique (a new key), duplicate (a held
    key), and the store's bare round trip; the four taken in turn, call by call, so that the
    machine's load falls on them alike."""
    backend = app.backend
    if hasattr(backend, "client"):
        ping: Any = backend.client.ping
    elif hasattr(backend, "_run"):
        ping = lambda: backend._run(lambda conn: conn.execute("SELECT 1").fetchone())  # noqa: E731
    else:
        ping = lambda: backend._conn().execute("SELECT 1").fetchone()  # noqa: E731
    unique = task.using(unique_for=600)
    calls = {
        "plain_us": lambda i: task.enqueue(10_000_000 + i),
        "unique_us": lambda i: unique.enqueue(20_000_000 + i),
        "duplicate_us": lambda i: unique.enqueue(20_000_000 + (i % 10)),
        "rtt_us": lambda i: ping(),
    }
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(n):
        for name, call in calls.items():
            start = time.perf_counter()
            call(i)
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1e6 for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", required=True, help="the src directory of the code to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--stores", default="sqlite,postgres,redis")
    parser.add_argument("--child", nargs=3, metavar=("URL", "NAMESPACE", "LIFECYCLE"))
    args = parser.parse_args()
    if args.child:
        url, namespace, lifecycle = args.child
        print(json.dumps(child(url, namespace, args.n, lifecycle == "1")))
        return

    from tests.servers import PostgresServer, RedisServer

    stores = args.stores.split(",")
    servers: list[Any] = []
    urls: dict[str, str] = {}
    tmp = Path(tempfile.mkdtemp(prefix="lifecycle-probe-"))
    if "redis" in stores:
        servers.append(RedisServer(appendonly=False).start())
        urls["redis"] = servers[-1].url
    if "postgres" in stores:
        servers.append(PostgresServer().start())
        urls["postgres"] = servers[-1].url
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    variants = {"A (baseline)": args.baseline, "B (this)": str(REPO / "src")}
    try:
        for round_ in range(args.rounds):
            for store in stores:
                # A, B in even rounds, B, A in odd ones: neither always runs first.
                order = list(variants.items())
                for label, src in order if round_ % 2 == 0 else order[::-1]:
                    namespace = f"probe_{round_}_{label[0].lower()}"
                    url = urls.get(store) or f"sqlite:///{tmp}/{namespace}.db"
                    env = {**os.environ, "PYTHONPATH": os.pathsep.join((src, str(REPO)))}
                    lifecycle = "1" if label.startswith("B") else "0"
                    cmd = [sys.executable, str(Path(__file__)), "--baseline", "-", "--n", str(args.n)]
                    out = subprocess.run(
                        [*cmd, "--child", url, namespace, lifecycle],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                        timeout=900,
                    )
                    results.setdefault((store, label), []).append(json.loads(out.stdout.splitlines()[-1]))
                    print(store, label, results[store, label][-1], file=sys.stderr, flush=True)
    finally:
        for server in servers:
            server.stop()
    print(f"| store | variant | {' | '.join(('enqueue_one', 'enqueue_many', 'drain'))} |")
    print("|---|---|---|---|---|")
    for store in stores:
        medians: dict[str, dict[str, float]] = {}
        for label in variants:
            runs = results[store, label]
            medians[label] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            scenarios = ("enqueue_one", "enqueue_many", "drain")
            cells = " | ".join(f"{medians[label][k]:,.0f}/s" for k in scenarios)
            print(f"| {store} | {label} | {cells} |")
        a, b = medians["A (baseline)"], medians["B (this)"]
        ratios = " | ".join(f"{b[k] / a[k]:.3f}" for k in ("enqueue_one", "enqueue_many", "drain"))
        print(f"| {store} | B/A | {ratios} |")
        cpu = " | ".join(
            f"{b[k + '_cpu'] / a[k + '_cpu']:.3f}" for k in ("enqueue_one", "enqueue_many", "drain")
        )
        print(f"| {store} | B/A, this process's CPU per job | {cpu} |")
    print()
    print("| store | plain µs | unique µs | duplicate µs | round trip µs | (unique - plain) / round trip |")
    print("|---|---|---|---|---|---|")
    for store in stores:
        runs = results[store, "B (this)"]
        m = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        extra = (m["unique_us"] - m["plain_us"]) / m["rtt_us"]
        print(
            f"| {store} | {m['plain_us']:.0f} | {m['unique_us']:.0f} | {m['duplicate_us']:.0f} | "
            f"{m['rtt_us']:.0f} | {extra:.2f} |"
        )


if __name__ == "__main__":
    main()
