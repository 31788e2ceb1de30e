"""The app of the worker-log tests: one task for each kind of line."""

from __future__ import annotations

import logging
import os

from conveyor import Conveyor, Fail

app = Conveyor(os.environ.get("CONVEYOR_URL"))
log = logging.getLogger("shop")


@app.task(name="ok")
def ok(n: int) -> int:
    log.info("working on %d", n)
    return n


@app.task(name="aok")
async def aok(n: int) -> int:
    log.warning("async work on %d", n)
    return n


@app.task(name="flaky", retries=1, backoff=0)
def flaky() -> None:
    raise ValueError("connect(token=abc123) refused")


@app.task(name="refuse")
def refuse() -> None:
    raise Fail("card declined")
