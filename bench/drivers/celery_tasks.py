"""The Celery no-op task: Redis broker from ``$BENCH_URL``, no result backend."""

from __future__ import annotations

import os

from celery import Celery  # type: ignore[import-untyped]

from bench.drivers import sink

app = Celery("bench", broker=os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0"))
app.conf.worker_hijack_root_logger = False
app.conf.broker_connection_retry_on_startup = True


@app.task(name="noop", ignore_result=True)  # type: ignore[untyped-decorator]
def noop(ts: float | None = None) -> None:
    sink.noop(ts)
