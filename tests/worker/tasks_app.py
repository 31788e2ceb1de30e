"""The app that worker-process tests run: its store and lease come from the environment."""

from __future__ import annotations

import os
import time

from conveyor import Conveyor, current_job
from tests.harness import record_run

app = Conveyor(
    os.environ.get("CONVEYOR_URL"),
    namespace=os.environ.get("CONVEYOR_NAMESPACE", "conveyor"),
    lease=float(os.environ.get("CONVEYOR_LEASE", "2")),
)
RUN_LOG = os.environ.get("CONVEYOR_RUN_LOG", os.devnull)


@app.task(name="work")
def work(n: int, seconds: float = 0.01) -> int:
    time.sleep(seconds)
    record_run(str(n))
    return n


@app.task(name="long")
def long(n: int, seconds: float) -> int:
    # Tells the tests the body runs: "active" in the store only means fetched, and a job
    # fetched but not started is handed back unrun on SIGTERM.
    running = current_job()
    if running is not None:
        running.progress(0, message="started")
    # Short steps, so that a timeout can interrupt between them.
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.02)
    record_run(f"long-{n}")
    return n


@app.task(name="stuck", timeout=0.5, retries=0)
def stuck() -> None:
    time.sleep(30)  # one C call: the timeout cannot interrupt it


@app.task(name="crash", retries=1, backoff=0)
def crash() -> None:
    os._exit(13)
