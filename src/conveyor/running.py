"""The running job, as its task sees it: ``current_job()``.

The worker sets a context variable around each run: a sync task's thread and an async task's
own asyncio task each see their job, and nothing else does. Outside a run, ``current_job()``
is None. The same variable puts the job id on every log record a task writes
(``conveyor.logs.JobIdFilter``).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

__all__ = ["CurrentJob", "current_job"]


class CurrentJob:
    """What a running task may know about its job. One is made per run (slots, no
    dataclass: it sits on the hot path)."""

    __slots__ = ("attempts", "id", "max_attempts", "meta", "queue", "task")

    def __init__(
        self, job_id: str, task: str, queue: str, attempts: int, max_attempts: int, meta: dict[str, Any]
    ) -> None:
        self.id = job_id
        self.task = task
        self.queue = queue
        #: Runs started so far, this one included (1 on the first run).
        self.attempts = attempts
        self.max_attempts = max_attempts
        #: The job's metadata (``using(meta=...)`` and what middleware added at enqueue);
        #: changes here are seen by middleware of this run, not stored.
        self.meta = meta

    def __repr__(self) -> str:
        return f"<CurrentJob {self.task} {self.id} attempt {self.attempts}/{self.max_attempts}>"


_current: ContextVar[CurrentJob | None] = ContextVar("conveyor_current_job", default=None)


def current_job() -> CurrentJob | None:
    """The job this code runs for, inside a task (sync or async); None anywhere else."""
    return _current.get()
