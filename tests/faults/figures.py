"""Figures of the fault scenarios: printed as each test ends, and appended as JSON lines to
``$CONVEYOR_FAULTS_REPORT`` (if set) for ``tests/faults/report.py`` to tabulate."""

from __future__ import annotations

import os
from typing import Any

import orjson

#: The columns of the table, in order.
COLUMNS = ("jobs", "kills", "lost", "duplicates", "recover_s")


def record(store: str, scenario: str, **figures: Any) -> None:
    line = {"store": store, "scenario": scenario, **figures}
    print(f"\n[faults] {store} {scenario}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    path = os.environ.get("CONVEYOR_FAULTS_REPORT")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, orjson.dumps(line) + b"\n")
        finally:
            os.close(fd)
