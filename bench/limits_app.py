"""The tasks of ``bench/limits_probe.py``'s worker processes: one task per variant
(unlimited, ``concurrency=50``, ``concurrency=1`` per key), each sleeping ``$BENCH_RUN_MS``
milliseconds (0: a no-op). Store: ``$CONVEYOR_URL``, namespace ``$LIMITS_NS``."""

from __future__ import annotations

import os
import time

from conveyor import Conveyor

RUN = float(os.environ.get("BENCH_RUN_MS", "0")) / 1000

app = Conveyor(namespace=os.environ.get("LIMITS_NS", "conveyor"))


@app.task(name="bench.plain", queue="plain")
def plain(n: int) -> None:
    if RUN:
        time.sleep(RUN)


@app.task(name="bench.conc50", queue="conc50", concurrency=50)
def conc50(n: int) -> None:
    if RUN:
        time.sleep(RUN)


@app.task(name="bench.perkey", queue="perkey", concurrency=1, limit_key=lambda n: f"k{n % 100}")
def perkey(n: int) -> None:
    if RUN:
        time.sleep(RUN)
