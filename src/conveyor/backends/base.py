"""The Backend protocol: everything a store does, in one table of contents.

A store keeps ``JobRecord`` rows and never looks inside their payloads. The semantics of each
method are stated by ``tests/conformance/``, which every store passes unchanged.

Times are seconds since the epoch, taken from the caller's clock (``now`` arguments) where a
decision depends on it, so that tests can move time and stores agree on one clock.

What a store may do beyond ``Backend`` is declared, not guessed: one small protocol per
optional capability (``StreamsEnqueue``, ``EnqueuesInTransaction``, ``WaitsAndFetches``,
``WaitsForJobs``, ``Partitions``, ``Migrates``), as River's driver declares
``SupportsListener``. Callers look a capability up once, when they get the store, never per
job.

Every method of the contract raises ``StoreUnavailable`` when the store cannot be reached;
each store states which of its driver's errors mean that once, with ``translate_errors``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from ..batch import StoresBatches
from ..errors import StoreUnavailable
from ..job import Failure, JobRecord, ScheduleState, Stats, Tick, WorkerInfo
from ..limits import Limit
from ..redaction import redact, redact_url
from .listing import Page

#: Admin actions accepted by ``Backend.act``.
#: retry: dead, cancelled, retry or scheduled jobs become pending now, attempts reset to 0;
#: cancel: waiting (scheduled, pending, retry) jobs become cancelled;
#: delete: the job is removed, whatever its state.
ACTIONS = ("retry", "cancel", "delete")


def check_action(action: str) -> None:
    """Raise ``ValueError`` unless ``action`` is one of ``ACTIONS``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")


@runtime_checkable
class Backend(Protocol):
    # -- the hot path ---------------------------------------------------------------------
    def enqueue(self, records: Sequence[JobRecord], max_queue_length: int | None = None) -> None:
        """Store new jobs atomically: all of them or none (raises ``QueueFull`` when a
        queue would exceed ``max_queue_length`` waiting jobs). A record whose ``run_at`` is
        in the future is ``scheduled``, else ``pending``."""

    def enqueue_each(
        self, records: Sequence[JobRecord], now: float, max_queue_length: int | None = None
    ) -> list[str | None]:
        """Store jobs that carry a unique key or an expiry, each decided on its own: a job
        whose ``unique_key`` a live job (waiting or active) of its queue holds, and whose
        ``unique_until`` has not passed, is not stored, and the holder's id is returned in its
        place (None for a job stored). Atomic per job in the store: however many processes
        enqueue one key at once, one job holds it. A job that ends frees its key."""

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

    def sweep(self, now: float, dead_before: float | None, dead_max: int | None, limit: int) -> int:
        """Housekeeping of job lifetimes, in bounded steps: waiting jobs whose ``expires_at``
        has passed end ``cancelled`` with the error "expired"; dead and cancelled jobs that
        finished before ``dead_before``, or beyond the newest ``dead_max`` of the namespace,
        are deleted, oldest first. At most ``limit`` jobs of each kind per call, found by
        index; returns how many changed (a caller repeats while that reaches ``limit``)."""

    def wait(self, queues: Sequence[str] | None, timeout: float) -> None:
        """Block up to ``timeout`` seconds, returning early when a job may have arrived."""

    # -- periodic jobs ----------------------------------------------------------------------
    def enqueue_ticks(self, ticks: Sequence[Tick], now: float) -> list[bool]:
        """Offer schedule ticks (each schedule at most once in a call); returns, per tick,
        whether its job was stored. For each tick, one atomic step: if the schedule's
        recorded tick is older than ``tick.at`` (or none is recorded and the tick is not a
        ``catch_up``), record ``tick.at``, ``tick.next_at``, the job's id and ``now`` as the
        schedule's state and store ``tick.record`` (pending); else store nothing. However
        many schedulers offer one tick, its job is stored once, and a tick older than the
        recorded one never is."""

    def schedules(self) -> list[ScheduleState]:
        """The recorded state of every schedule of the namespace."""

    def forget_schedules(self, keep: Sequence[str], abandoned_before: float) -> int:
        """Delete the state of schedules not named in ``keep`` whose recorded next tick is
        before ``abandoned_before`` (checked atomically per schedule: one enqueued meanwhile
        stays); returns how many went."""

    # -- admin ----------------------------------------------------------------------------
    #: Jobs a search reads at most when its caller does not say (``list_jobs``).
    search_scan: int

    def get(self, job_id: str) -> JobRecord | None: ...

    def jobs(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
        now: float | None = None,
        search: str | None = None,
        after: str | None = None,
    ) -> list[JobRecord]:
        """``list_jobs(...).records``. ``offset`` is deprecated: it is skipped by reading
        it (O(offset)); page with ``after`` instead."""

    def list_jobs(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        after: str | None = None,
        now: float | None = None,
        search: str | Sequence[str] | None = None,
        scan: int | None = None,
        task: str | None = None,
    ) -> Page:
        """One page of jobs in a state's listing order (see ``backends/listing.py``), after
        the cursor ``after`` (a ``Page.next``), read through an index: every page costs what
        the first does. ``state="pending"`` includes scheduled and retry jobs that are due;
        ``"scheduled"`` and ``"retry"`` only those still waiting; None lists every state in
        turn. ``search`` keeps jobs whose encoded payload contains the text (each text, for a
        list), reading at most ``scan`` jobs (None: the store's ``search_scan``, 2,000); the
        page says how many it read. ``task`` keeps the jobs of that task (``JobRecord.task``;
        a store that keeps no task names looks for ``"t":<name>`` in the payload instead), and
        is a search too: read through an index where the store has one."""

    def stats(self, now: float) -> Stats: ...

    def workers(self) -> list[WorkerInfo]: ...

    def act(
        self,
        action: str,
        ids: Sequence[str] | None,
        now: float,
        state: str | None = None,
        queue: str | None = None,
        note: str | None = None,
        limit: int | None = None,
    ) -> int:
        """Apply an admin action (see ``ACTIONS``) to the jobs ``ids``, or, when ``ids`` is
        None, to every job in ``state`` (and ``queue``, if given), or to at most ``limit`` of
        them (which ones is not specified: a caller repeats until fewer change, to show
        progress); returns how many changed.
        A job whose state the action does not apply to is left alone. ``cancel`` by id also
        asks a running job to stop: its ``cancel`` is set to ``note`` (once), which its
        worker reads with ``cancel_requests``; a cancelled waiting job gets ``note`` as its
        last error."""

    def change(
        self,
        job_id: str,
        now: float,
        run_at: float | None = None,
        priority: int | None = None,
        queue: str | None = None,
        payload: bytes | None = None,
    ) -> bool:
        """Change a waiting job (scheduled, pending, retry), atomically: ``run_at`` (it is
        then ``pending`` if due by ``now``, else ``scheduled``, or ``retry`` if it was one),
        ``priority``, ``queue`` (with ``payload``, signed for that queue). False, and
        nothing changed, for a job in any other state or none."""

    # -- the running job --------------------------------------------------------------------
    def set_progress(self, job_id: str, worker: str, progress: bytes) -> bool:
        """Store a running job's progress, while ``worker`` holds it; False otherwise."""

    def cancel_requests(self, worker: str, queues: Sequence[str]) -> list[tuple[str, str]]:
        """(id, note) of the jobs ``worker`` holds whose cancellation was asked for;
        ``queues`` are those of the jobs it runs (stores that keep jobs per queue read only
        those). Called about once a second while the worker runs jobs: no scan."""

    def set_paused(self, queue: str, paused: bool) -> None: ...

    def close(self) -> None: ...


# -- optional capabilities -------------------------------------------------------------------
@runtime_checkable
class StreamsEnqueue(Protocol):
    """A store that writes a large batch chunk by chunk as the caller builds it (Redis)."""

    def enqueue_stream(self, chunks: Iterable[Sequence[JobRecord]]) -> None:
        """``enqueue`` (no queue limit) of the jobs of ``chunks``, each chunk sent as soon
        as it is built; each chunk is stored whole or not at all."""


@runtime_checkable
class EnqueuesInTransaction(Protocol):
    """A store whose jobs can join the caller's own database transaction (PostgreSQL)."""

    def enqueue_in(
        self, connection: Any, records: Sequence[JobRecord], max_queue_length: int | None = None
    ) -> None:
        """``enqueue`` through ``connection``, inside its transaction, without committing."""


@runtime_checkable
class WaitsAndFetches(Protocol):
    """A store that claims the jobs that woke an idle worker in the same round-trip (Redis)."""

    def wait_and_fetch(
        self, queues: Sequence[str] | None, timeout: float, limit: int, worker: str, lease: float
    ) -> list[JobRecord]:
        """``wait`` then ``fetch`` (by the store's clock), as one call."""


@runtime_checkable
class WaitsForJobs(Protocol):
    """A store that wakes a caller waiting for a job to end (Redis, PostgreSQL)."""

    def wait_ended(self, job_id: str, queue: str | None, timeout: float | None) -> JobRecord | None:
        """Block until the job ended (completed, dead, cancelled) and return its record, or
        its record as it stands after ``timeout`` seconds (``None``: no limit); None if
        there is no such job. ``queue``: the job's queue, when the caller knows it. Jobs
        nobody waits for pay nothing for this (at most a check per batch)."""


@runtime_checkable
class StoresLimits(Protocol):
    """A store that enforces concurrency and rate limits (see ``conveyor.limits``): every
    store does. A limited job is stored in its bucket (an internal queue name); ``fetch`` of
    a queue claims from its buckets only what each bucket's limit and the queue's own limit
    allow, deciding under the store's lock (a Lua script, one SQL transaction holding a
    lock per queue, SQLite's write lock), so the runs of a bucket never overlap past its
    concurrency, however many workers claim at once."""

    def set_limit(self, queue: str, name: str, limit: Limit | None) -> None:
        """Store the definition of limit ``name`` of ``queue`` (``QUEUE_LIMIT`` for the whole
        queue); None removes it."""

    def limits(self) -> dict[tuple[str, str], Limit]:
        """Every stored definition, by (queue, name)."""

    def fetch_ahead(
        self,
        queues: Sequence[str] | None,
        limit: int,
        worker: str,
        lease: float,
        now: float,
        runs: Sequence[tuple[str, str, int]],
    ) -> tuple[list[JobRecord], dict[str, str]]:
        """``fetch`` of up to ``limit`` jobs that start now, and besides them jobs taken
        *ahead*: for each ``(bucket, job id, attempts)`` of ``runs`` (a job ``worker`` holds,
        started or itself taken ahead, at that attempt), the next waiting job of that bucket,
        if the bucket's limits (its own and its queue's) are concurrency only. A job taken
        ahead is claimed like any other (active, an attempt, the lease) but holds no slot
        while the job it follows is active and held by ``worker`` at that attempt: the worker
        starts it only when that one ends, in its slot, and the store counts it from the
        moment it records that end. Returns the jobs, and for each one taken ahead the id of
        the job it follows. Atomic like ``fetch``.

        A store whose class sets ``chains_jobs_ahead = True`` takes a run listed k times up
        to k jobs, each following the one taken before it for that run (the first follows
        the run): a worker fills a run's chain in one claim. Other stores are sent each run
        once."""


@runtime_checkable
class StoresDependencies(Protocol):
    """A store that holds jobs until the jobs they wait for completed (``using(after=)``,
    ``app.chain``): every store does. See docs/workflows.md for how each decides."""

    def enqueue_after(
        self,
        records: Sequence[JobRecord],
        after: dict[str, tuple[str, ...]],
        now: float,
        pruned_before: float,
        max_queue_length: int | None = None,
    ) -> None:
        """Store jobs, those in ``after`` (id -> the ids it waits for) as ``waiting`` until
        each of those completed. A dependency may be a job of this very call, listed before
        its dependent. A dependency that completed counts as completed; one that ended dead
        or cancelled stores its dependent ``cancelled`` with ``dependency_note``; one the
        store does not hold counts as completed (pruned) when its id is older than
        ``pruned_before``, else ``UnknownDependency`` is raised and nothing is stored. When
        a dependency ends, its dependents are released (each exactly once, atomically in
        the store) or cancelled, and so on down the graph."""

    def dependencies(self, job_id: str) -> list[str]:
        """The ids a job waited for, in the order given (empty: none, or no such job)."""

    def dependents(self, job_id: str, limit: int = 100) -> list[str]:
        """Ids of jobs that wait (or waited) for ``job_id``, at most ``limit``."""


@runtime_checkable
class Partitions(Protocol):
    """A store that can spread one queue over several shards (Redis: hash slots, hence the
    masters of a Cluster)."""

    def partition(self, queue: str, count: int) -> int:
        """Spread ``queue`` over ``count`` shards from now on (never fewer than it has:
        jobs already in a shard must stay served); returns the count in force."""


@runtime_checkable
class Migrates(Protocol):
    """A store with a versioned schema that ``conveyor migrate`` brings up to date."""

    def migrate(self) -> list[int]:
        """Apply the missing schema versions; returns those applied (empty: up to date)."""


#: Every method a store may implement, contract and capabilities: the ones whose errors
#: ``translate_errors`` turns into ``StoreUnavailable``.
CONTRACT: tuple[str, ...] = tuple(
    name
    for protocol in (
        Backend,
        StreamsEnqueue,
        EnqueuesInTransaction,
        WaitsAndFetches,
        WaitsForJobs,
        StoresLimits,
        StoresDependencies,
        Partitions,
        Migrates,
        StoresBatches,
    )
    for name in protocol.__dict__
    if not name.startswith("_") and callable(protocol.__dict__[name])
)

S = TypeVar("S", bound=type)
#: What ``explain`` makes of a driver error: the error to raise and its message.
Explained = tuple[type[StoreUnavailable], str]


def unavailable(
    store: str, url: str, exc: BaseException, raise_as: type[StoreUnavailable] = StoreUnavailable
) -> StoreUnavailable:
    """The error that says ``store`` at ``url`` cannot be reached because of the driver's
    ``exc``, with no secret from either (the async stores raise it too)."""
    return raise_as(
        f"cannot reach {store} at {redact_url(url)} ({redact(str(exc))}); "
        "is the server running and the URL right?"
    )


def translate_errors(
    store: str,
    errors: tuple[type[BaseException], ...],
    unreachable: Callable[[BaseException], bool] = lambda exc: True,
    raise_as: type[StoreUnavailable] = StoreUnavailable,
    explain: Callable[[Any, BaseException], Explained | None] = lambda store, exc: None,
) -> Callable[[S], S]:
    """Class decorator of a store: a driver error of ``errors`` for which ``unreachable``
    holds, raised by its constructor or any method of ``CONTRACT``, becomes ``raise_as``
    naming the store's URL without secrets (the store sets ``self.url`` first thing).

    ``explain(store, error)`` names the real cause of an error it recognises (of any type: a
    wrong password, a read-only replica, a missing GRANT, a full store) as ``(error class,
    what happened and what to do)``; "is the server running?" is only said of the rest.

    The one place a store's connection errors are translated, so no public call can leak a
    driver's error, and none shows a password: the URL goes through ``redact_url`` and the
    driver's text through ``redact``. The wrapper costs one Python call per store call (a
    batch, not a job); the ``try`` itself is free until something is raised.
    """

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(self: Any, /, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except StoreUnavailable:
                raise
            except Exception as exc:
                where = redact_url(self.url if "url" in vars(self) else str(args[0]))
                explained = explain(self, exc)
                if explained is not None:
                    kind, text = explained
                    raise kind(f"{store} at {where}: {redact(text)}") from exc
                if not isinstance(exc, errors) or not unreachable(exc):
                    raise
                raise raise_as(
                    f"cannot reach {store} at {where} ({redact(str(exc))}); "
                    "is the server running and the URL right?"
                ) from exc

        return call

    def decorate(cls: S) -> S:
        for name in ("__init__", *CONTRACT):
            # The class's own method or one it inherits (a store may keep its admin calls
            # in a base class of their own); never object's __init__.
            owner = next((k for k in cls.__mro__ if name in vars(k)), object)
            if owner is not object:
                setattr(cls, name, wrap(vars(owner)[name]))
        return cls

    return decorate
