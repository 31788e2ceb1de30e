"""The conveyor side: a no-op and a 1 ms CPU-bound task, on the store in ``$CONVEYOR_URL``."""

from __future__ import annotations

import os

from conveyor import Conveyor

from .marks import mark, spin

app = Conveyor(os.environ.get("CONVEYOR_URL"))


@app.task(name="noop")
def noop() -> None:
    mark()


@app.task(name="cpu")
def cpu() -> None:
    spin(0.001)
    mark()
