"""The app of the worker processes of ``test_limits_workers.py``: limited tasks that write
when each run started and ended to ``$LIMITS_LOG`` (one short O_APPEND write per run, atomic
across processes). Its store is ``$CONVEYOR_URL``, its namespace ``$LIMITS_NS``."""

from __future__ import annotations

import os
import time

from conveyor import Conveyor

#: Seconds each run of the concurrency-limited tasks lasts.
RUN = 0.05
#: Seconds each run of the quick ones lasts: short enough for workers to take jobs ahead.
QUICK = 0.005
#: Slots of the task that keeps most of the workers' threads busy, and how long its runs last
#: (short enough for jobs ahead: each worker holds two ahead per run besides its runs).
BUSY_SLOTS = 21
BUSY_RUN = 0.1


def _log(line: str) -> None:
    fd = os.open(os.environ.get("LIMITS_LOG", os.devnull), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def register(app: Conveyor) -> None:
    """The tasks, on ``app`` (the workers' and the test's own, which enqueues)."""

    @app.task(name="lim.pair", concurrency=2)
    def pair(n: int) -> None:
        start = time.time()
        time.sleep(RUN)
        _log(f"pair - {start!r} {time.time()!r}")

    @app.task(name="lim.keyed", concurrency=1, limit_key=lambda key, n: key)
    def keyed(key: str, n: int) -> None:
        start = time.time()
        time.sleep(RUN)
        _log(f"keyed {key} {start!r} {time.time()!r}")

    @app.task(name="lim.quick", concurrency=3)
    def quick(n: int) -> None:
        start = time.time()
        time.sleep(QUICK)
        _log(f"quick - {start!r} {time.time()!r}")

    @app.task(name="lim.quickkey", concurrency=1, limit_key=lambda key, n: key)
    def quickkey(key: str, n: int) -> None:
        start = time.time()
        time.sleep(QUICK)
        _log(f"quickkey {key} {start!r} {time.time()!r}")

    @app.task(name="lim.busy", concurrency=BUSY_SLOTS)
    def busy(n: int) -> None:
        start = time.time()
        time.sleep(BUSY_RUN)
        _log(f"busy - {start!r} {time.time()!r}")

    @app.task(name="lim.rated", rate="20/s")
    def rated(n: int) -> None:
        now = time.time()
        _log(f"rated - {now!r} {now!r}")


app = Conveyor(namespace=os.environ.get("LIMITS_NS", "conveyor"))
register(app)
