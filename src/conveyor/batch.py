"""Batches: many jobs followed as one, with callbacks the store fires exactly once.

``app.batch(jobs, on_success=, on_complete=, on_death=)`` stores the jobs, each marked with
the batch's id (``JobRecord.batch_id``), and a batch record: how many jobs it counts and how
many of them ended completed, dead or cancelled. Every change of a batch job's state into or
out of an ended state moves those counters in the store, in the same atomic step as the
change itself (a trigger in the SQL stores, a forward to the batch's own hash slot on Redis:
see ``backends/redis/batches.py``), and the step that moves them decides the callbacks:

- ``on_death`` when the first job ends dead;
- ``on_complete`` when every job counted has ended (completed, dead or cancelled);
- ``on_success`` when every job counted has completed.

A callback is a job spec (``task.job(...)``) built and signed at ``app.batch``, with its id
chosen then: the store inserts that very record when it decides, and marks it fired in the
same step, so it is stored once whatever crashes, and never twice. It carries the batch's id
in its metadata (``"conveyor.batch"``): ``current_job().batch`` is the batch that fired it,
whose jobs and results it can read page by page (``Batch.results``).

Open: a batch is open while some job it counts has not ended. ``Batch.add`` adds jobs to an
open batch only (atomically: the check and the new total are one step in the store), and
raises ``BatchClosed`` otherwise. A job of the batch that adds jobs to it while it runs always
finds it open. Retrying a dead or cancelled job of a batch re-opens it: the counters move
back, and a callback not fired yet (``on_success``) may fire once every job completed; a
callback fired already never fires again.

Nesting: ``app.batch(jobs, on_complete=..., parent=outer)`` makes this batch's callbacks jobs
of ``outer``. Its ``on_complete`` (required) is counted by ``outer`` from this moment, as a job
not ended yet, so ``outer`` cannot finish before this batch has finished and its
``on_complete`` has run; its ``on_success`` and ``on_death``, if they fire, join ``outer``
then (which re-opens ``outer`` if it had finished meanwhile).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .errors import BatchClosed
from .job import CANCELLED, COMPLETED, DEAD, Job, JobRecord

if TYPE_CHECKING:
    from .app import Conveyor
    from .task import JobSpec

__all__ = ["CALLBACKS", "META_KEY", "Batch", "BatchClosed", "BatchRecord", "StoresBatches"]

#: The callbacks a batch may have, by the name the stores keep them under.
CALLBACKS = ("success", "complete", "death")
#: The metadata key of a callback job: the id of the batch that fired it.
META_KEY = "conveyor.batch"
#: Jobs a page of ``Batch.jobs_page`` / ``Batch.results`` reads at most by default.
PAGE = 500


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A batch as a store keeps it: counters and callbacks, never its jobs."""

    id: str
    #: Jobs counted: every job of the batch, plus the ``on_complete`` of each nested batch
    #: not fired yet.
    total: int
    completed: int
    dead: int
    cancelled: int
    created_at: float
    parent: str | None = None
    #: kind ("success", "complete", "death") -> (callback job id, when fired or None).
    callbacks: dict[str, tuple[str, float | None]] | None = None

    @property
    def ended(self) -> int:
        return self.completed + self.dead + self.cancelled

    @property
    def open(self) -> bool:
        return self.ended < self.total


@runtime_checkable
class StoresBatches(Protocol):
    """A store that keeps batches (every store does)."""

    def create_batch(
        self,
        batch: BatchRecord,
        records: Sequence[JobRecord],
        callbacks: Sequence[tuple[str, JobRecord]],
        now: float,
        *,
        after: Mapping[str, tuple[str, ...]] | None = None,
        pruned_before: float = 0.0,
    ) -> None:
        """Store the batch (``batch.total`` counts ``records``), its callback records by kind
        (stored, not enqueued), and its jobs (each with ``batch_id`` set); with a
        ``parent``, count this batch's on_complete in the parent, atomically with the check
        that the parent is open (``BatchClosed`` if not). ``after``: the jobs that wait for
        others (stored ``waiting``, as ``StoresDependencies.enqueue_after`` stores them;
        one cancelled by a dependency counts as cancelled in the batch)."""

    def add_to_batch(
        self,
        batch_id: str,
        records: Sequence[JobRecord],
        now: float,
        *,
        after: Mapping[str, tuple[str, ...]] | None = None,
        pruned_before: float = 0.0,
    ) -> bool:
        """If the batch is open, count ``records`` in it and store them, atomically;
        False (nothing stored) if it is not open or does not exist. ``after`` as in
        ``create_batch``."""

    def get_batch(self, batch_id: str) -> BatchRecord | None: ...

    def batch_jobs(self, batch_id: str, after: str | None, limit: int) -> list[JobRecord]:
        """Up to ``limit`` jobs of the batch by id, after the id ``after``: a keyset page,
        read through an index (a completed job pruned after ``result_ttl`` is gone)."""


def _store(app: Conveyor) -> StoresBatches:
    store = app.backend
    if not isinstance(store, StoresBatches):
        raise TypeError(f"the store {type(store).__name__} keeps no batches")
    return store


class Batch:
    """A handle to one batch: its id, the jobs this handle enqueued, its counts.

    ``jobs`` holds the handles of the jobs enqueued through this object (``app.batch`` and
    ``add``); ``app.get_batch(id).jobs`` is empty: read a batch's jobs with ``jobs_page`` or
    ``results``, a page at a time, however many there are.
    """

    def __init__(self, app: Conveyor, record: BatchRecord, jobs: list[Job] | None = None) -> None:
        self.app = app
        self.id = record.id
        self.record = record
        self.jobs: list[Job] = jobs or []

    def __repr__(self) -> str:
        return f"<Batch {self.id} {self.record.ended}/{self.record.total} ended>"

    @property
    def parent(self) -> str | None:
        return self.record.parent

    @property
    def callbacks(self) -> dict[str, str]:
        """The id of each callback job by kind ("success", "complete", "death")."""
        return {kind: job_id for kind, (job_id, _) in (self.record.callbacks or {}).items()}

    def refresh(self) -> Batch:
        """Read the counters again (this handle changes; returns it)."""
        record = _store(self.app).get_batch(self.id)
        if record is not None:
            self.record = record
        return self

    def status(self) -> dict[str, int]:
        """Counts of the batch's jobs, fresh from the store: ``total``, ``completed``,
        ``dead``, ``cancelled``, and ``unfinished`` (not ended yet: scheduled, pending,
        active or retrying)."""
        r = self.refresh().record
        return {
            "total": r.total,
            COMPLETED: r.completed,
            DEAD: r.dead,
            CANCELLED: r.cancelled,
            "unfinished": r.total - r.ended,
        }

    @property
    def fired(self) -> dict[str, bool]:
        """Whether each callback was enqueued (as of the last read)."""
        return {kind: at is not None for kind, (_, at) in (self.record.callbacks or {}).items()}

    def wait(self, timeout: float | None = None) -> dict[str, int]:
        """Wait until every job of the batch ended; returns ``status()``. ``TimeoutError``
        if some job has not ended within ``timeout`` seconds (None: no limit). The store is
        read again with backoff, from every 10 ms to every 0.5 s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.01
        while True:
            status = self.status()
            if status["unfinished"] <= 0:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"batch {self.id}: {status['unfinished']} of {status['total']} jobs "
                    f"have not ended after {timeout} s"
                )
            left = 0.5 if deadline is None else max(0.0, deadline - time.monotonic())
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.5)

    def add(self, jobs: JobSpec | Iterable[JobSpec], *more: JobSpec) -> list[Job]:
        """Add jobs to the batch while it is open (see the module's docstring); returns their
        handles. ``BatchClosed`` if every job it counted had already ended: then nothing
        was stored."""
        specs = _specs(jobs, more)
        added = self.app._add_to_batch(self.id, specs)
        self.jobs += added
        return added

    # -- for async code: the store's work on a thread, the event loop runs on -------------
    async def astatus(self) -> dict[str, int]:
        """``status()`` for async code."""
        import asyncio

        return await asyncio.to_thread(self.status)

    async def aadd(self, jobs: JobSpec | Iterable[JobSpec], *more: JobSpec) -> list[Job]:
        """``add()`` for async code."""
        import asyncio

        specs = _specs(jobs, more)
        return await asyncio.to_thread(self.add, specs)

    async def await_done(self, timeout: float | None = None) -> dict[str, int]:
        """``wait()`` for async code: the status once every job ended, read again with the
        same backoff (10 ms to 0.5 s), the loop free between reads; ``TimeoutError`` if some
        job has not ended within ``timeout`` seconds."""
        import asyncio

        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.01
        while True:
            status = await self.astatus()
            if status["unfinished"] <= 0:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"batch {self.id}: {status['unfinished']} of {status['total']} jobs "
                    f"have not ended after {timeout} s"
                )
            left = 0.5 if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 0.5)

    def jobs_page(self, after: str | None = None, limit: int = PAGE) -> list[Job]:
        """Snapshots (with return values) of up to ``limit`` jobs of the batch, by id, after
        the id ``after``: one page read through the store's index."""
        records = _store(self.app).batch_jobs(self.id, after, limit)
        now = self.app.clock()
        return [self.app._job(r, now) for r in records]

    def iter_jobs(self, page: int = PAGE) -> Iterator[Job]:
        """Every job of the batch still stored, a page of ``page`` at a time (keyset:
        each page costs what the first does; never the whole batch in memory)."""
        after: str | None = None
        while True:
            found = self.jobs_page(after, page)
            yield from found
            if len(found) < page:
                return
            after = found[-1].id

    def results(self, page: int = PAGE) -> Iterator[tuple[str, Any]]:
        """(job id, return value) of each completed job of the batch still stored, paged as
        ``iter_jobs``."""
        for job in self.iter_jobs(page):
            if job.state == COMPLETED:
                yield job.id, job.return_value


def _specs(jobs: JobSpec | Iterable[JobSpec], more: Sequence[JobSpec]) -> list[JobSpec]:
    from .task import JobSpec

    if isinstance(jobs, JobSpec):
        return [jobs, *more]
    return [*jobs, *more]
