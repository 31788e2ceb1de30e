"""The tasks of ``bench/limits_probe.py``'s worker processes: one no-op task per variant
(unlimited, ``concurrency=50``, ``concurrency=1`` per key). Store: ``$CONVEYOR_URL``,
namespace ``$LIMITS_NS``."""

from __future__ import annotations

import os

from conveyor import Conveyor

app = Conveyor(namespace=os.environ.get("LIMITS_NS", "conveyor"))


@app.task(name="bench.plain", queue="plain")
def plain(n: int) -> None:
    return None


@app.task(name="bench.conc50", queue="conc50", concurrency=50)
def conc50(n: int) -> None:
    return None


@app.task(name="bench.perkey", queue="perkey", concurrency=1, limit_key=lambda n: f"k{n % 100}")
def perkey(n: int) -> None:
    return None
