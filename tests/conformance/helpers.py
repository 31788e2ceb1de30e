"""Small helpers shared by the conformance tests."""

from __future__ import annotations

import time
from typing import Any

from conveyor import Conveyor
from conveyor.job import JobRecord, new_id


def record(app: Conveyor, task: str = "t.noop", queue: str = "default", **fields: Any) -> JobRecord:
    """A record as the app would build it, with a valid payload for ``task``."""
    job_id = fields.pop("id", None) or new_id()
    args = fields.pop("args", [])
    max_attempts = fields.pop("max_attempts", 1)
    now = time.time()
    fields.setdefault("run_at", now)
    fields.setdefault("created_at", now)
    fields.setdefault("state", "scheduled" if fields["run_at"] > now else "pending")
    payload = app.codec.encode_payload(job_id, queue, max_attempts, task, args, {})
    return JobRecord(id=job_id, queue=queue, payload=payload, max_attempts=max_attempts, task=task, **fields)


def ids(records: list[JobRecord]) -> list[str]:
    return [r.id for r in records]
