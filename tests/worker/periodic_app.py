"""The app of the multi-process periodic test: one schedule, every second; each run logs its tick."""

from __future__ import annotations

import os

from conveyor import Conveyor, current_job
from tests.harness import record_run

app = Conveyor(
    os.environ.get("CONVEYOR_URL"),
    namespace=os.environ.get("CONVEYOR_NAMESPACE", "conveyor"),
    lease=float(os.environ.get("CONVEYOR_LEASE", "2")),
)


@app.periodic(every=1)
@app.task(name="tick")
def tick() -> None:
    job = current_job()
    assert job is not None and job.meta is not None
    record_run(repr(job.meta["tick"]))
