"""Issue 15's no-op cost, measured where load matters least: the fastest of many repeats of
in-process work, A/B against another checkout (the ``src`` directory given), alternately.

    python bench/lifecycle_micro.py --baseline /tmp/main-src [--repeats 15]

Two loops per repeat, each in a fresh process for A and for B:

* ``sqlite_cycle``: SQLite, all in this process: 2,000 plain jobs enqueued in batches of 100,
  then fetched and completed in batches of 100, as a worker's fetcher and acker do. Every
  statement of the hot path, the new partial indexes' predicates included;
* ``sqlite_vm_enqueue``, ``sqlite_vm_fetch_complete``: SQLite's own work for 1,000 more jobs,
  counted in virtual machine instructions per job (a progress handler), which no load moves;
* ``prepare``: the worker's per-job decoding (``Runner.prepare``) of 20,000 fetched records.

The fastest repeat is the cost with the least of the machine's load in it; the table gives
microseconds per job and B/A.

    python bench/lifecycle_micro.py --schema [--rounds 300]

SQLite's share alone, in one process of this checkout: two databases, one with this feature's
schema and one with its three indexes and four columns dropped, take turns at the same cycle
(200 jobs enqueued, fetched and completed), round after round, milliseconds apart; the CPU time
per job of each, as medians. The Python is the same code for both, so the difference is the
store's.
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
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def child(directory: str) -> dict[str, float]:
    from conveyor import Conveyor
    from conveyor.worker.executor import Runner, Watchdog

    app = Conveyor(f"sqlite:///{directory}/jobs.db", namespace="micro")
    task = app.task(name="micro.noop")(lambda i: None)
    backend = app.backend
    task.enqueue(-1)
    backend.fetch(None, 10, "w", 30.0, time.time())
    out: dict[str, float] = {}
    start = time.perf_counter()
    for base in range(0, 2000, 100):
        app.enqueue_many([task.job(i) for i in range(base, base + 100)])
    for _ in range(20):
        now = time.time()
        got = backend.fetch(None, 100, "w", 30.0, now)
        backend.complete([(r.id, None) for r in got], "w", now)
    out["sqlite_cycle_us"] = (time.perf_counter() - start) / 2000 * 1e6
    # SQLite's own work, counted rather than timed: virtual machine instructions per job (a
    # progress handler called every 10), the same however loaded the machine is.
    steps = [0]

    def count() -> int:
        steps[0] += 10
        return 0

    backend._conn().set_progress_handler(count, 10)
    app.enqueue_many([task.job(i) for i in range(1000)])
    out["sqlite_vm_enqueue"] = steps[0] / 1000
    steps[0] = 0
    for _ in range(10):
        now = time.time()
        got = backend.fetch(None, 100, "w", 30.0, now)
        backend.complete([(r.id, None) for r in got], "w", now)
    out["sqlite_vm_fetch_complete"] = steps[0] / 1000
    backend._conn().set_progress_handler(None, 0)
    record = app.backend.get(task.enqueue(7).id)
    assert record is not None
    runner = Runner(app, Watchdog(lambda entry: None), "w")
    start = time.perf_counter()
    for _ in range(20_000):
        runner.prepare(record)
    out["prepare_us"] = (time.perf_counter() - start) / 20_000 * 1e6
    app.close()
    return out


def schema_ab(rounds: int) -> None:
    from conveyor import Conveyor

    def make(strip: bool) -> tuple[Any, Any, Any]:
        app = Conveyor(f"sqlite:///{tempfile.mkdtemp()}/jobs.db", namespace="m")
        task = app.task(name="m.noop")(lambda i: None)
        backend: Any = app.backend
        if strip:
            conn = backend._conn()
            for index in ("unique", "expires", "ended"):
                conn.execute(f"DROP INDEX m_jobs_{index}")
            for column in ("expires_at", "unique_key", "unique_until", "snoozes"):
                conn.execute(f"ALTER TABLE m_jobs DROP COLUMN {column}")
        task.enqueue(-1)
        backend.fetch(None, 10, "w", 30.0, time.time())
        return app, task, backend

    def cycle(app: Any, task: Any, backend: Any) -> float:
        start = time.process_time()
        app.enqueue_many([task.job(i) for i in range(200)])
        for _ in range(2):
            now = time.time()
            got = backend.fetch(None, 100, "w", 30.0, now)
            backend.complete([(r.id, None) for r in got], "w", now)
        return (time.process_time() - start) / 200 * 1e6

    with_it, without = make(False), make(True)
    times: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(rounds):
        times["without"].append(cycle(*without))
        times["with"].append(cycle(*with_it))
    a, b = statistics.median(times["without"]), statistics.median(times["with"])
    print(
        f"SQLite CPU µs per job (enqueue, fetch, complete): without {a:.1f}, with {b:.1f}, ratio {b / a:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline")
    parser.add_argument("--schema", action="store_true")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--child", metavar="DIRECTORY")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    if args.schema:
        schema_ab(args.rounds)
        return
    if not args.baseline:
        parser.error("--baseline SRC (or --schema) is required")
    variants = {"A": args.baseline, "B": str(REPO / "src")}
    best: dict[str, dict[str, float]] = {}
    for n in range(args.repeats):
        order = list(variants.items())
        for label, src in order if n % 2 == 0 else order[::-1]:
            with tempfile.TemporaryDirectory() as directory:
                env = {**os.environ, "PYTHONPATH": os.pathsep.join((src, str(REPO)))}
                out = subprocess.run(
                    [sys.executable, str(Path(__file__)), "--baseline", "-", "--child", directory],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
            result = json.loads(out.stdout)
            kept = best.setdefault(label, result)
            for key, value in result.items():
                kept[key] = min(kept[key], value)
    print("| loop | A µs/job | B µs/job | B/A |")
    print("|---|---|---|---|")
    for key in best["A"]:
        a, b = best["A"][key], best["B"][key]
        print(f"| {key.removesuffix('_us')} | {a:.2f} | {b:.2f} | {b / a:.3f} |")
    print("(sqlite_vm_*: SQLite virtual machine instructions per job, not microseconds)")


if __name__ == "__main__":
    main()
