"""The app that fault-suite worker processes run: store, namespace and limits come from the
environment, so the test process builds the same app with ``make_app`` and enqueues into it.

Every task appends ``<tag> <pid>`` to the run log (``tests.harness.record_run``), so
duplicates can be counted and traced to the process that ran them.
"""

from __future__ import annotations

import ctypes
import os
import time

from conveyor import Conveyor
from tests.harness import record_run


def make_app(
    url: str | None,
    namespace: str,
    lease: float,
    max_queue_length: int | None = None,
) -> Conveyor:
    """The fault-suite app: the same task names in every process."""
    app = Conveyor(url, namespace=namespace, lease=lease, max_queue_length=max_queue_length)

    @app.task(name="work")
    def work(n: int, seconds: float = 0.0) -> int:
        if seconds:
            time.sleep(seconds)
        record_run(str(n))
        return n

    @app.task(name="note", retries=20)
    def note(tag: str) -> None:
        record_run(tag)

    @app.task(name="long")
    def long(n: int, seconds: float) -> int:
        # Short steps, so that a timeout can interrupt between them.
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.02)
        record_run(f"long-{n}")
        return n

    @app.task(name="exit", retries=1, backoff=0)
    def exit_() -> None:
        record_run("exit")
        os._exit(13)

    @app.task(name="segfault", retries=1, backoff=0)
    def segfault() -> None:
        record_run("segfault")
        ctypes.string_at(0)  # reads address 0: SIGSEGV

    @app.task(name="overtime", timeout=0.5, retries=0)
    def overtime(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.02)
        record_run("overtime-finished")

    @app.task(name="overtime_async", timeout=0.5, retries=0)
    async def overtime_async(seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)
        record_run("overtime-async-finished")

    return app


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


app = make_app(
    os.environ.get("CONVEYOR_URL"),
    os.environ.get("CONVEYOR_NAMESPACE", "conveyor"),
    float(os.environ.get("CONVEYOR_LEASE", "2")),
    _env_int("CONVEYOR_MAX_QUEUE"),
)
