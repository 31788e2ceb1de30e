"""The conveyor no-op task for the benchmark; the store URL comes from ``$CONVEYOR_URL``."""

from __future__ import annotations

from bench.drivers import sink
from conveyor import Conveyor

app = Conveyor()


@app.task(name="noop")
def noop(ts: float | None = None) -> None:
    sink.noop(ts)
