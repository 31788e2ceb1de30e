"""The Backend protocol: everything a store does, in one table of contents.

A store keeps ``JobRecord`` rows and never looks inside their payloads. The semantics of each
method are stated by ``tests/conformance/``, which every store passes unchanged.

Times are seconds since the epoch, taken from the caller's clock (``now`` arguments) where a
decision depends on it, so that tests can move time and stores agree on one clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..job import Failure, JobRecord, Stats, WorkerInfo

#: Admin actions accepted by ``Backend.act``.
#: retry: dead, cancelled, retry or scheduled jobs become pending now, attempts reset to 0;
#: cancel: waiting (scheduled, pending, retry) jobs become cancelled;
#: delete: the job is removed, whatever its state.
ACTIONS = ("retry", "cancel", "delete")


@runtime_checkable
class Backend(Protocol):
    # -- the hot path ---------------------------------------------------------------------
    def enqueue(self, records: Sequence[JobRecord], max_queue_length: int | None = None) -> None:
        """Store new jobs atomically: all of them or none (raises ``QueueFull`` when a
        queue would exceed ``max_queue_length`` waiting jobs). A record whose ``run_at`` is
        in the future is ``scheduled``, else ``pending``."""

    def fetch(
        self, queues: Sequence[str] | None, limit: int, worker: str, lease: float, now: float
    ) -> list[JobRecord]:
        """Claim up to ``limit`` due jobs for ``worker``: each becomes ``active`` with
        ``attempts + 1`` and a lease until ``now + lease``. ``queues`` are served in the
        given order (the first is drained before the second is looked at); ``None`` serves
        every queue, ``default`` first. Paused queues are skipped. Within a queue: higher
        priority first, then earlier ``run_at``, then id. No job is claimed twice."""

    def complete(self, results: Sequence[tuple[str, bytes | None]], worker: str, now: float) -> None:
        """Mark jobs held by ``worker`` completed with their encoded results. A job whose
        lease ``worker`` no longer holds (recovered meanwhile) is left alone."""

    def fail(self, failures: Sequence[Failure], worker: str, now: float) -> None:
        """Record failed runs of jobs held by ``worker``: ``retry`` at ``retry_at``, or
        ``dead`` when it is None."""

    def release(self, ids: Sequence[str], worker: str) -> None:
        """Hand jobs back unrun (shutdown): ``pending`` again, the attempt not counted."""

    def heartbeat(self, info: WorkerInfo, lease: float, now: float) -> None:
        """Extend every lease ``info.id`` holds to ``now + lease`` and record the worker
        as alive."""

    def recover(self, now: float, completed_before: float) -> int:
        """Housekeeping any worker may run: jobs whose lease expired go to ``retry`` (or
        ``dead`` with no attempts left) with the error "worker lost"; completed jobs
        finished before ``completed_before`` are deleted; workers silent for long are
        forgotten; waiting jobs whose ``run_at`` is no usable time (not a number, or more
        than ``FAR_FUTURE`` ahead) go to ``dead`` with ``BAD_RUN_AT``. Returns the number
        of jobs recovered."""

    def wait(self, queues: Sequence[str] | None, timeout: float) -> None:
        """Block up to ``timeout`` seconds, returning early when a job may have arrived."""

    # -- admin ----------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None: ...

    def jobs(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
        now: float | None = None,
        search: str | None = None,
    ) -> list[JobRecord]:
        """Jobs newest first. ``state="pending"`` includes scheduled and retry jobs that
        are due; ``"scheduled"`` and ``"retry"`` only those still waiting. ``search`` keeps
        jobs whose encoded payload contains that text (a task name, an argument)."""

    def stats(self, now: float) -> Stats: ...

    def workers(self) -> list[WorkerInfo]: ...

    def act(
        self,
        action: str,
        ids: Sequence[str] | None,
        now: float,
        state: str | None = None,
        queue: str | None = None,
    ) -> int:
        """Apply an admin action (see ``ACTIONS``) to the jobs ``ids``, or, when ``ids`` is
        None, to every job in ``state`` (and ``queue``, if given); returns how many changed.
        A job whose state the action does not apply to is left alone."""

    def set_paused(self, queue: str, paused: bool) -> None: ...

    def close(self) -> None: ...
