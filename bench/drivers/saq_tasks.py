"""The SAQ no-op task and worker settings (Redis from ``$BENCH_URL``; concurrency 10, SAQ's
default)."""

from __future__ import annotations

import os
from typing import Any

from saq import Queue

from bench.drivers import sink

queue = Queue.from_url(os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0"))


async def noop(ctx: dict[str, Any], *, ts: float | None = None) -> None:
    sink.noop(ts)


settings = {"queue": queue, "functions": [("noop", noop)], "concurrency": 10}
