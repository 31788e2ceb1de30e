"""The RQ no-op task."""

from __future__ import annotations

from bench.drivers import sink


def noop(ts: float | None = None) -> None:
    sink.noop(ts)
