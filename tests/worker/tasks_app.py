"""The app that worker-process tests run: its store and lease come from the environment."""

from __future__ import annotations

import os
import time

from conveyor import Conveyor

app = Conveyor(
    os.environ.get("CONVEYOR_URL"),
    namespace=os.environ.get("CONVEYOR_NAMESPACE", "conveyor"),
    lease=float(os.environ.get("CONVEYOR_LEASE", "2")),
)
RUN_LOG = os.environ.get("CONVEYOR_RUN_LOG", "/dev/null")


def _record_run(tag: str) -> None:
    # O_APPEND writes of one short line are atomic, so several processes can share the log.
    fd = os.open(RUN_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{tag}\n".encode())
    finally:
        os.close(fd)


@app.task(name="work")
def work(n: int, seconds: float = 0.01) -> int:
    time.sleep(seconds)
    _record_run(str(n))
    return n


@app.task(name="long")
def long(n: int, seconds: float) -> int:
    # Short steps, so that a timeout can interrupt between them.
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.02)
    _record_run(f"long-{n}")
    return n


@app.task(name="stuck", timeout=0.5, retries=0)
def stuck() -> None:
    time.sleep(30)  # one C call: the timeout cannot interrupt it


@app.task(name="crash", retries=1, backoff=0)
def crash() -> None:
    os._exit(13)
