"""Middleware: the one extension point. Logging, metrics and tracing hook in here.

Subclass ``Middleware`` and override the hooks you need; register with
``Conveyor(..., middleware=[...])`` or ``app.add_middleware(...)``. Hooks run in the process
that calls them (the enqueuing app, or the worker running the job) and must be quick: they
sit on the hot path. An exception in a hook is logged, never propagated into the job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .job import JobRecord


class Middleware:
    def before_enqueue(self, records: list[JobRecord]) -> None:
        """Called with every batch of jobs just before it is stored."""

    def after_enqueue(self, records: list[JobRecord]) -> None:
        """Called after a batch of jobs has been stored."""

    def before_run(self, job_id: str, task: str) -> None:
        """Called in the worker just before a task runs."""

    def after_run(
        self, job_id: str, task: str, duration: float, error: BaseException | None, result: Any
    ) -> None:
        """Called in the worker after a run; ``error`` is None when it succeeded."""
