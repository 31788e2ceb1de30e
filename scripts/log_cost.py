"""What the worker's per-job log line costs: a bare line, and a whole drain with it on and off.

    .venv/bin/python scripts/log_cost.py [--jobs 20000] [--rounds 5]

1. One ``conveyor.job`` line through the handler ``conveyor worker`` installs (text and
   json, twice each), written to a file: CPU microseconds a line, median and best of rounds.
2. An in-process drain of ``--jobs`` no-op jobs on a fresh SQLite file by a burst worker,
   with the log at INFO (one line a job, to a file) and at WARNING (no line), rounds
   alternating; median jobs/s of each and the difference per job.
3. With ``--spawned``, the same drain by ``conveyor worker --burst`` processes, their
   stderr to a file: median jobs/s by the wall clock from start to exit.

Figures for the issue, not a test: timing claims live outside the test suite.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from conveyor import Conveyor
from conveyor.logs import configure, duration_text, job_line

JOB_ID = "01a21c7d-be6e-7069-ad88-4d2d0a37c939"


def line_cost(fmt: str, lines: int, rounds: int, directory: Path) -> tuple[float, float]:
    per_line = []
    with open(directory / f"lines.{fmt}", "w") as stream:
        configure("INFO", fmt, stream)
        for _ in range(rounds):
            started = time.process_time()  # CPU time: other processes on the machine count less
            for n in range(lines):
                # What Runner._succeeded does for a job, the duration's formatting included.
                job_line(
                    logging.INFO,
                    "%s %s completed in %s",
                    ("tasks.noop", JOB_ID, duration_text(n * 1e-7)),
                    {
                        "job_id": "01a21c7d",
                        "task": "tasks.noop",
                        "outcome": "completed",
                        "duration": n * 1e-7,
                    },
                )
            per_line.append((time.process_time() - started) / lines * 1e6)
    return statistics.median(per_line), min(per_line)


def drain(level: str, jobs: int, directory: Path, n: int) -> tuple[float, float]:
    """(jobs/s by the wall clock, CPU µs per job of the whole process)."""
    app = Conveyor(f"sqlite:///{directory}/drain-{level}-{n}.db")

    @app.task(name="noop")
    def noop() -> None:
        return None

    app.enqueue_many([noop.job() for _ in range(jobs)])
    with open(directory / f"drain-{level}.log", "w") as stream:
        configure(level, "text", stream)
        worker = app.worker(concurrency=10, burst=True)
        started, cpu = time.perf_counter(), time.process_time()
        worker.run()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert worker.processed == jobs, worker.processed
    app.close()
    return jobs / elapsed, cpu / jobs * 1e6


APP_MODULE = """
import os
from conveyor import Conveyor

app = Conveyor(os.environ["CONVEYOR_URL"])


@app.task(name="noop")
def noop() -> None:
    return None
"""


def spawned(level: str, jobs: int, directory: Path, n: int) -> float:
    """jobs/s of a ``conveyor worker --burst`` process draining ``jobs`` no-op jobs."""
    import os
    import subprocess
    import sys

    (directory / "log_cost_app.py").write_text(APP_MODULE)
    url = f"sqlite:///{directory}/spawned-{level}-{n}.db"
    app = Conveyor(url)

    @app.task(name="noop")
    def noop() -> None:
        return None

    app.enqueue_many([noop.job() for _ in range(jobs)])
    app.close()
    env = {**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": str(directory)}
    command = [
        sys.executable,
        "-m",
        "conveyor",
        "worker",
        "log_cost_app:app",
        "--burst",
        "--log-level",
        level,
    ]
    with open(directory / f"spawned-{level}.log", "w") as log:
        started = time.perf_counter()
        subprocess.run(command, env=env, stderr=log, check=True, cwd=directory)
        elapsed = time.perf_counter() - started
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--spawned", action="store_true", help="Only the spawned drain (3).")
    options = parser.parse_args()
    if options.spawned:
        with tempfile.TemporaryDirectory() as tmp:
            found: dict[str, list[float]] = {"INFO": [], "WARNING": []}
            for n in range(options.rounds):
                for level in ("INFO", "WARNING") if n % 2 == 0 else ("WARNING", "INFO"):
                    found[level].append(spawned(level, options.jobs, Path(tmp), n))
            for level, values in found.items():
                median = statistics.median(values)
                listed = ", ".join(f"{v:,.0f}" for v in values)
                print(f"spawned drain {options.jobs} jobs, {level}: median {median:,.0f} jobs/s ({listed})")
            info, warning = statistics.median(found["INFO"]), statistics.median(found["WARNING"])
            print(f"per job with the line: {(1 / info - 1 / warning) * 1e6:+.1f} µs wall")
        return
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for fmt in ("text", "json", "text", "json"):
            median, best = line_cost(fmt, options.lines, options.rounds, directory)
            print(f"one line, {fmt}: median {median:.2f} µs, best {best:.2f} µs (CPU time)")
        rates: dict[str, list[float]] = {"INFO": [], "WARNING": []}
        cpu: dict[str, list[float]] = {"INFO": [], "WARNING": []}
        for n in range(options.rounds):
            for level in ("INFO", "WARNING") if n % 2 == 0 else ("WARNING", "INFO"):
                rate, used = drain(level, options.jobs, directory, n)
                rates[level].append(rate)
                cpu[level].append(used)
        logging.getLogger().handlers.clear()
        for level, values in rates.items():
            print(f"drain {options.jobs} jobs, {level}: median {statistics.median(values):,.0f} jobs/s "
                  f"({', '.join(f'{v:,.0f}' for v in values)}); "
                  f"CPU {statistics.median(cpu[level]):.1f} µs/job")  # fmt: skip
        info, warning = statistics.median(rates["INFO"]), statistics.median(rates["WARNING"])
        extra_cpu = statistics.median(cpu["INFO"]) - statistics.median(cpu["WARNING"])
        extra_wall = (1 / info - 1 / warning) * 1e6
        print(f"per job with the line: {extra_wall:+.1f} µs wall, {extra_cpu:+.1f} µs CPU")


if __name__ == "__main__":
    main()
