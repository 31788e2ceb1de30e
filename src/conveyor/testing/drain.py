"""Running jobs in the test's own thread: ``drain(app)`` and ``with app.inline():``.

Both fetch jobs from the app's real store, run them with the worker's own ``Runner`` (the same
decoding, middleware, ``current_job()``, retry rules and result encoding as a worker) and
record the outcome in the store, so ``job.result()``, ``app.get_job(id)`` and the dashboard
see what a worker would have left. Time is the app's virtual clock (``clock.py``): a retry's
backoff or a job's delay is not slept but skipped, by moving the clock to when the job is due.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..backends.base import StoresLimits
from ..job import FINAL_STATES, Failure, JobRecord
from ..limits import QUEUE_LIMIT, split
from ..middleware import Middleware
from ..periodic.scheduler import Scheduler
from ..worker.executor import Prepared, Runner, Watchdog
from ..worker.outcome import Outcome
from .clock import VirtualClock, virtual_clock

if TYPE_CHECKING:
    from ..app import Conveyor

#: Jobs one ``drain`` or one inline enqueue runs at most: a task that enqueues itself again
#: and again must end the test with an error, not hang it.
MAX_JOBS = 10_000
#: Waiting jobs ``drain(advance=...)`` reads per state to find the next one due.
_LOOKAHEAD = 1000
#: Seconds a drain keeps claiming after an empty claim while a job of its queues is pending
#: (``_Runs._passed_over``): longer than any instant a row is held, shorter than a test waits.
_PASSED_OVER_FOR = 1.0


class TooManyJobs(RuntimeError):
    """A drain ran ``max_jobs`` jobs and more were still due (a job that keeps enqueuing)."""


@dataclass
class Drained:
    """What one ``drain`` did: the runs, by outcome, and how far the virtual clock moved."""

    completed: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    #: Seconds the virtual clock moved forward (delays and backoffs skipped).
    advanced: float = 0.0

    @property
    def runs(self) -> int:
        return len(self.completed) + len(self.retried) + len(self.dead) + len(self.cancelled)


class _Runs:
    """Fetch, run and acknowledge jobs in the calling thread, one at a time."""

    def __init__(self, app: Conveyor, drained: Drained, max_jobs: int) -> None:
        self.app = app
        self.clock: VirtualClock = virtual_clock(app)
        self.worker = f"drain-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.drained = drained
        self.max_jobs = max_jobs
        self._runner: Runner | None = None

    def __enter__(self) -> _Runs:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            self._runner = Runner(self.app, _watchdog(), self.worker)
        return self._runner

    def run_due(self, queues: Sequence[str] | None = None) -> int:
        """Run every job due now (by the virtual clock), jobs they enqueue included."""
        count = 0
        backend = self.app.backend
        # A store that ends a batch's jobs on one thread and enqueues its callbacks on
        # another (Redis Cluster's forwarder) is waited for before "nothing is due".
        settle = getattr(backend, "settle_batches", None)
        while True:
            records = backend.fetch(queues, 1, self.worker, self.app.lease, self.clock())
            if not records and settle is not None and settle():
                records = backend.fetch(queues, 1, self.worker, self.app.lease, self.clock())
            if not records:
                records = self._passed_over(queues)
            if not records:
                return count
            if self.drained.runs >= self.max_jobs:
                backend.release([r.id for r in records], self.worker)
                raise TooManyJobs(
                    f"ran {self.drained.runs} jobs and more are due: does a job enqueue itself "
                    "again and again? (raise max_jobs= if that many are meant)"
                )
            for record in records:
                self.run(record)
                count += 1

    def _passed_over(self, queues: Sequence[str] | None) -> list[JobRecord]:
        """The claim again, for a while, when it found nothing but a job of these queues is
        pending: a store that claims with SKIP LOCKED (PostgreSQL) passes over a row another
        connection holds for an instant (``job.result()`` waiting in another thread marks the
        job it waits for), and a drain that stopped there would leave a due job behind."""
        backend = self.app.backend
        if not getattr(backend, "passes_locked_jobs", False):
            return []
        pause, deadline = 0.005, time.monotonic() + _PASSED_OVER_FOR
        while time.monotonic() < deadline:
            if not self._claimable_pending(queues):
                return []
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
            records = backend.fetch(queues, 1, self.worker, self.app.lease, self.clock())
            if records:
                return records
        return []

    def _claimable_pending(self, queues: Sequence[str] | None) -> bool:
        """Whether a pending job of these queues is one a claim may take: its queue is not
        paused, and no limit holds it back (none with a rate; none whose jobs run now)."""
        backend, now = self.app.backend, self.clock()
        served = None if queues is None else set(queues)
        pending = [
            r
            for r in backend.jobs(state="pending", limit=_LOOKAHEAD, now=now)
            if served is None or split(r.queue)[0] in served
        ]
        if not pending:
            return False
        paused = backend.stats(now).paused
        limits = backend.limits() if isinstance(backend, StoresLimits) else {}
        running = {r.queue for r in backend.jobs(state="active", limit=_LOOKAHEAD, now=now)}
        running_in = {split(q)[0] for q in running}
        for record in pending:
            queue, name, _ = split(record.queue)
            if queue in paused:
                continue
            held = [limits.get((queue, QUEUE_LIMIT))]
            if name is not None:
                held.append(limits.get((queue, name)))
            if any(limit is not None and limit.rate for limit in held):
                continue
            if limits.get((queue, QUEUE_LIMIT)) is not None and queue in running_in:
                continue
            if name is not None and record.queue in running:
                continue
            return True
        return False

    def run(self, record: JobRecord) -> None:
        runner = self.runner
        job = runner.prepare(record)
        outcome: Outcome | None
        if isinstance(job, Failure):
            outcome = job
        elif job.task.is_async:
            outcome = _run_async(runner, job)
        else:
            outcome = runner.run_sync(job)
        backend, now = self.app.backend, self.clock()
        if outcome is None:  # the watchdog gave up on a run stuck in C code
            outcome = Failure(record.id, f"timed out after {record.timeout:g} s", None, None)
        if isinstance(outcome, Failure):
            backend.fail([outcome], self.worker, now)
            if outcome.cancelled:
                self.drained.cancelled.append(record.id)
            elif outcome.retry_at is None:
                self.drained.dead.append(record.id)
            else:
                self.drained.retried.append(record.id)
        else:
            backend.complete([outcome], self.worker, now)
            self.drained.completed.append(record.id)

    def skip_to(self, when: float) -> None:
        before = self.clock.offset
        self.clock.move_to(when)
        self.drained.advanced += self.clock.offset - before


_shared: Watchdog | None = None
_shared_lock = threading.Lock()


def _watchdog() -> Watchdog:
    """The watchdog that stops a sync run past its timeout, as in a worker: one thread for
    the whole process, started by the first drain (a thread per drain cost a test suite
    milliseconds a test on a busy machine)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Watchdog(lambda entry: None)
        return _shared


def _run_async(runner: Runner, job: Prepared) -> Outcome:
    """An async task's run, on an event loop of its own: in this thread, or in a new one when
    this thread already runs a loop (a drain called from an async test)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(runner.run_async(job))
    result: list[Outcome] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(runner.run_async(job)))
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=run, name="conveyor-drain-async")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return result[0]


def drain(
    app: Conveyor,
    advance: float = 0.0,
    *,
    queues: Sequence[str] | None = None,
    max_jobs: int = MAX_JOBS,
) -> Drained:
    """Run every job that is due, in this thread, until none is: jobs those jobs enqueue
    included, retries included once they come due, and the ticks of the app's periodic
    schedules as a worker's scheduler enqueues them. ``advance``: seconds to move the app's
    virtual clock forward meanwhile, step by step, so delayed, retried, scheduled and
    periodic jobs due within that time run too, in the order they come due (a backoff inside
    the window is skipped, not slept). Returns what ran.

    For test stores: finding the next job due reads up to 1,000 waiting jobs per state."""
    if advance < 0:
        raise ValueError(f"advance must be seconds >= 0, not {advance!r}")
    drained = Drained()
    with _Runs(app, drained, max_jobs) as runs:
        # Periodic jobs as a worker's scheduler enqueues them, on the virtual clock (its first
        # pass offers each schedule's latest past tick, which the store takes once).
        scheduler = Scheduler(app, now=runs.clock) if app.schedules else None
        target = runs.clock() + advance
        while True:
            if scheduler is not None:
                scheduler.run_due(runs.clock())
            runs.run_due(queues)
            due = [t for t in (_next_due(app, target, queues), _next_tick(scheduler)) if t is not None]
            if not due or min(due) > target:
                break
            runs.skip_to(min(due))
        runs.skip_to(target)
    return drained


def _next_tick(scheduler: Scheduler | None) -> float | None:
    return None if scheduler is None else scheduler.next_due()


def _next_due(app: Conveyor, until: float, queues: Sequence[str] | None) -> float | None:
    """When the next waiting job comes due, if by ``until``."""
    backend, now = app.backend, app.clock()
    times = [
        r.run_at
        for state in ("scheduled", "retry")
        for queue in (list(queues) if queues else [None])
        for r in backend.jobs(state=state, queue=queue, limit=_LOOKAHEAD, now=now)
    ]
    later = [t for t in times if t <= until]
    return min(later) if later else None


class _Inline(Middleware):
    """Runs each batch just stored, unless it was enqueued by a job this runs (that one is
    picked up by the loop already running)."""

    def __init__(self, app: Conveyor, max_jobs: int) -> None:
        self.app = app
        self.max_jobs = max_jobs
        self.waiting: set[str] = set()
        self._running = threading.local()

    def after_enqueue(self, records: list[JobRecord]) -> None:
        self.waiting.update(r.id for r in records)
        if getattr(self._running, "yes", False):
            return
        self._running.yes = True
        try:
            self._run_until_ended()
        finally:
            self._running.yes = False

    def _run_until_ended(self) -> None:
        backend = self.app.backend
        with _Runs(self.app, Drained(), self.max_jobs) as runs:
            while self.waiting:
                ran = runs.run_due()
                left = [
                    r for r in (backend.get(i) for i in self.waiting) if r and r.state not in FINAL_STATES
                ]
                self.waiting = {r.id for r in left}
                if not left:
                    return
                due = min(r.run_at for r in left)
                if not ran and due <= runs.clock():
                    stuck = ", ".join(f"{r.id} ({r.state} in queue {r.queue!r})" for r in left)
                    raise RuntimeError(
                        f"inline: jobs are due but none can be fetched (a paused queue?): {stuck}"
                    )
                # A delay or a backoff: skipped, not slept.
                runs.skip_to(due)


@contextmanager
def inline(app: Conveyor, *, max_jobs: int = MAX_JOBS) -> Iterator[None]:
    """Inside the block, each enqueue (``enqueue``, ``enqueue_many``, ``aenqueue`` …) runs
    its jobs at once, in the calling thread, before it returns: after the store's JSON round
    trip (a non-JSON argument still fails at enqueue), with retries (their backoff skipped on
    the virtual clock, not slept) and delays (skipped likewise), and with the jobs those
    jobs enqueue. Other jobs already due in the store may run along with them."""
    hook = _Inline(app, max_jobs)
    app.add_middleware(hook)
    try:
        yield
    finally:
        app.remove_middleware(hook)


__all__ = ["MAX_JOBS", "Drained", "TooManyJobs", "drain", "inline"]
