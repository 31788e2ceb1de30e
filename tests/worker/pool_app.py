"""The app that ``--pool process`` tests run: its store and lease come from the environment."""

from __future__ import annotations

import ctypes
import os
import time

from conveyor import Conveyor, Fail, Retry, Snooze
from tests.harness import record_run

app = Conveyor(
    os.environ.get("CONVEYOR_URL"),
    namespace=os.environ.get("CONVEYOR_NAMESPACE", "conveyor"),
    lease=float(os.environ.get("CONVEYOR_LEASE", "2")),
)

#: What ``hog`` keeps alive, as a leaky task would.
_kept: list[bytes] = []


@app.task(name="pid", retries=0)
def pid() -> int:
    return os.getpid()


@app.task(name="sleeper", timeout=1, retries=0)
def sleeper(seconds: float) -> None:
    time.sleep(seconds)  # one C call: only a killed process stops it early


@app.task(name="nap", retries=0)
def nap(seconds: float) -> None:
    record_run("nap")
    time.sleep(seconds)


@app.task(name="segfault", retries=0)
def segfault() -> None:
    ctypes.string_at(0)


@app.task(name="hog", retries=0)
def hog(megabytes: int) -> int:
    # Repeating a byte writes every page: the memory is resident, not just reserved.
    _kept.append(b"x" * (megabytes << 20))
    return os.getpid()


@app.task(name="parent_pid", retries=0)
async def parent_pid() -> int:
    return os.getpid()


@app.task(name="give_up", retries=3)
def give_up() -> None:
    raise Fail("no point trying again")


@app.task(name="again", retries=1)
def again() -> None:
    raise Retry(delay=0.2, reason="not yet")


@app.task(name="later", retries=0)
def later() -> None:
    raise Snooze(600)


@app.task(name="boom", retries=0)
def boom(word: str) -> None:
    raise ValueError(word)


@app.task(name="not_json", retries=3)
def not_json() -> object:
    return {1, 2}


@app.task(name="steps", retries=0)
def steps(n: int) -> dict[str, object]:
    """Reports progress from the child, and says what current_job() shows there."""
    from conveyor import current_job

    job = current_job()
    assert job is not None
    for i in range(1, n + 1):
        job.progress(i, total=n, message="child")
    return {"id": job.id, "meta": job.meta, "attempts": job.attempts, "pid": os.getpid()}
