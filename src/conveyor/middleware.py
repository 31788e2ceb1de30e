"""Middleware: the one extension point. Logging, metrics and tracing hook in here.

Subclass ``Middleware`` and override the hooks you need; register with
``Conveyor(..., middleware=[...])`` or ``app.add_middleware(...)``. Hooks run in the process
that calls them (the enqueuing app, or the worker running the job) and must be quick: they
sit on the hot path. A hook that is not overridden costs nothing: the app and the worker call
only the hooks a middleware defines.

* ``on_enqueue(job)``: each job at enqueue, before it is encoded; read and write
  ``job.meta`` (a trace context, a tenant). An exception is logged and the job is stored
  without that middleware's changes.
* ``before_enqueue`` / ``after_enqueue``: each batch of encoded records around the store call.
* ``around_run(job, call_next)`` (sync tasks) and ``around_run_async(job, call_next)`` (async
  tasks): wrap the run; return what ``call_next()`` returns (or awaits). The first middleware
  registered is the outermost. An exception raised here fails that job, like one raised by
  the task: it is retried or ends dead by the task's rules; the worker runs on.
* ``before_run`` / ``after_run``: observe each run (an exception there is logged, never
  propagated).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .job import JobRecord
    from .running import CurrentJob


class Enqueuing:
    """A job being enqueued, as ``Middleware.on_enqueue`` sees it."""

    __slots__ = ("id", "meta", "queue", "task")

    def __init__(self, job_id: str, task: str, queue: str, meta: dict[str, Any]) -> None:
        self.id = job_id
        self.task = task
        self.queue = queue
        #: The job's metadata; add JSON values under string keys to keep them with the job.
        self.meta = meta


class Middleware:
    def on_enqueue(self, job: Enqueuing) -> None:
        """Called for each job at enqueue, before it is encoded; may change ``job.meta``."""

    def before_enqueue(self, records: list[JobRecord]) -> None:
        """Called with every batch of jobs just before it is stored."""

    def after_enqueue(self, records: list[JobRecord]) -> None:
        """Called after a batch of jobs has been stored."""

    def around_run(self, job: CurrentJob, call_next: Callable[[], Any]) -> Any:
        """Wraps the run of a sync task; must return ``call_next()``'s value (or raise)."""
        return call_next()

    async def around_run_async(self, job: CurrentJob, call_next: Callable[[], Awaitable[Any]]) -> Any:
        """Wraps the run of an async task; must return ``await call_next()`` (or raise)."""
        return await call_next()

    def before_run(self, job_id: str, task: str) -> None:
        """Called in the worker just before a task runs."""

    def after_run(
        self, job_id: str, task: str, duration: float, error: BaseException | None, result: Any
    ) -> None:
        """Called in the worker after a run; ``error`` is None when it succeeded."""


def overriding(middleware: list[Middleware], hook: str) -> list[Middleware]:
    """The middleware that define ``hook`` themselves: the only ones worth calling."""
    base = getattr(Middleware, hook)
    return [mw for mw in middleware if getattr(type(mw), hook, base) is not base]
