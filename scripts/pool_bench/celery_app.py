"""The Celery side: the same 1 ms CPU-bound task, Redis broker from ``$POOL_BENCH_BROKER``,
no result backend (as bench/ runs Celery: a worker that only acks)."""

from __future__ import annotations

import os

from celery import Celery  # type: ignore[import-untyped]

from .marks import mark, spin

app = Celery("pool_bench", broker=os.environ.get("POOL_BENCH_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.worker_hijack_root_logger = False
app.conf.broker_connection_retry_on_startup = True


@app.task(name="cpu", ignore_result=True)  # type: ignore[untyped-decorator]
def cpu() -> None:
    spin(0.001)
    mark()
