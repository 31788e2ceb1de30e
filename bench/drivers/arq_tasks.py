"""The arq no-op task and worker settings (Redis from ``$BENCH_URL``; arq's defaults:
``max_jobs=10``, ``poll_delay=0.5``), and the logging the worker is run with: ERROR, where
arq's default (INFO) writes two lines a job (start and result)."""

from __future__ import annotations

import os
from typing import Any

from arq.connections import RedisSettings
from arq.worker import func

from bench.drivers import sink


async def noop(ctx: dict[str, Any], ts: float | None = None) -> None:
    sink.noop(ts)


class WorkerSettings:
    functions = [func(noop, name="noop")]
    redis_settings = RedisSettings.from_dsn(os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0"))


#: ``arq --custom-log-dict bench.drivers.arq_tasks.LOG_CONFIG``
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"level": "ERROR", "class": "logging.StreamHandler"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "ERROR"}},
}
