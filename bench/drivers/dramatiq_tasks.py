"""The Dramatiq no-op actor on a RedisBroker from ``$BENCH_URL``."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.drivers import sink

broker = RedisBroker(url=os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0"))  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop")
def noop(ts: float | None = None) -> None:
    sink.noop(ts)
