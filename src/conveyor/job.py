"""The job record: plain data, as the store keeps it and as the admin API shows it."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import orjson

from .limits import SEP, Usage, split

if TYPE_CHECKING:
    from .app import Conveyor

#: Held by its dependencies (``using(after=...)``) until every one completed.
WAITING: Final = "waiting"
SCHEDULED: Final = "scheduled"
PENDING: Final = "pending"
ACTIVE: Final = "active"
RETRY: Final = "retry"
COMPLETED: Final = "completed"
DEAD: Final = "dead"
CANCELLED: Final = "cancelled"

STATES: Final = (WAITING, SCHEDULED, PENDING, ACTIVE, RETRY, COMPLETED, DEAD, CANCELLED)
#: States a job may still leave by being fetched.
WAITING_STATES: Final = (SCHEDULED, PENDING, RETRY)
#: A waiting job due further ahead than this (or at no number at all) was not written by
#: conveyor: housekeeping sends it to ``dead`` with ``BAD_RUN_AT`` rather than keep it for ever.
FAR_FUTURE: Final = 100 * 365.25 * 86400.0
BAD_RUN_AT: Final = (
    "bad run_at: not a time, or more than 100 years ahead; the record was not written by conveyor"
)
#: The error of a job whose worker stopped renewing its lease mid-run.
LOST: Final = (
    "worker lost: its lease expired while the job was active (the worker was killed, crashed or stalled)"
)
#: The error of a job that was not started before its ``expires`` time.
EXPIRED: Final = "expired"
#: The error of a job cancelled without saying by whom.
CANCELLED_NOTE: Final = "cancelled"
#: States a job never leaves on its own.
FINAL_STATES: Final = (COMPLETED, DEAD, CANCELLED)


@dataclass(slots=True)
class JobRecord:
    """One job as a store holds it: scheduling columns plus the encoded payload.

    Times are seconds since the epoch. ``payload`` and ``result`` are encoded by the codec;
    a store never looks inside them.

    Treat a record as read-only. It is not a frozen dataclass because one is built per job
    on every hot path (enqueue, fetch), and a frozen ``__init__`` costs about five times as
    much (an ``object.__setattr__`` per field): 2.3 µs against 0.4 µs on CPython 3.11.
    """

    id: str
    queue: str
    payload: bytes
    priority: int = 0
    state: str = PENDING
    run_at: float = 0.0
    attempts: int = 0
    max_attempts: int = 1
    timeout: float | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    result: bytes | None = None
    last_error: str | None = None
    traceback: str | None = None
    locked_by: str | None = None
    lease_until: float | None = None
    #: The last progress a run reported (JSON: done, total, message, at), or None.
    progress: bytes | None = None
    #: Why a running job was asked to stop (``app.cancel`` on an active job), or None.
    cancel: str | None = None
    #: When a job not started by then is cancelled as expired (``using(expires=)``), or None.
    expires_at: float | None = None
    #: The key no other live job of its queue may hold (``unique_for``), or None; and until
    #: when it holds it at most.
    unique_key: str | None = None
    unique_until: float | None = None
    #: How many times its runs asked to come back later (``raise Snooze``).
    snoozes: int = 0
    #: The batch it belongs to (``app.batch``), or None: the one column that says so, so
    #: jobs outside batches take the old paths (see ``conveyor.batch``).
    batch_id: str | None = None
    #: The task's name, given by the app at enqueue so that a SQL store can index it for
    #: search without looking inside the payload; None where a store does not keep it.
    task: str | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """One tick of a periodic schedule, as a scheduler offers it to ``Backend.enqueue_ticks``.

    ``record`` is the job to store if this tick wins; ``next_at`` is the schedule's next tick
    as the offering scheduler computes it (kept for display and to find abandoned schedules).
    ``catch_up`` marks the tick a scheduler offers when it starts (the latest one at or before
    its start): it wins only over an older recorded tick, never for a schedule the store has
    no state for, so a new schedule first runs at its next tick rather than at once.
    """

    name: str
    at: float
    next_at: float
    record: JobRecord
    catch_up: bool = False


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What a store keeps of one periodic schedule: its last enqueued tick and job."""

    name: str
    queue: str
    last_at: float
    next_at: float
    job_id: str
    enqueued_at: float


@dataclass(frozen=True, slots=True)
class Failure:
    """The outcome of a failed run, as the worker hands it to ``Backend.fail``.

    ``retry_at`` is when to run again; ``None`` sends the job to ``dead`` (``cancelled``
    when ``cancelled`` is set).
    """

    id: str
    error: str
    traceback: str | None = None
    retry_at: float | None = None
    #: The run was stopped by ``app.cancel``: the job ends ``cancelled``, never retried.
    cancelled: bool = False
    #: The run raised ``Snooze``: the job waits ``scheduled`` until ``retry_at``, the attempt
    #: not counted, its snooze counter one up.
    snoozed: bool = False


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker process as it reports itself with each heartbeat."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    started_at: float
    last_seen: float = 0.0
    running: tuple[str, ...] = ()
    #: False in the last heartbeat of a worker that is shutting down cleanly.
    alive: bool = True


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts for the admin API: jobs per queue and state, totals, and per-minute history."""

    queues: dict[str, dict[str, int]]
    paused: frozenset[str] = frozenset()
    processed: int = 0
    failed: int = 0
    oldest_pending: dict[str, float] = field(default_factory=dict)
    #: (minute start as epoch seconds, processed, failed), oldest first, last hour at most.
    history: list[tuple[float, int, int]] = field(default_factory=list)
    #: Each concurrency or rate limit stored, with its runs in progress and jobs waiting.
    limits: list[Usage] = field(default_factory=list)

    def total(self, state: str) -> int:
        return sum(states.get(state, 0) for states in self.queues.values())


def _utc(ts: float | None) -> datetime | None:
    """An aware datetime, or None for a time no datetime can hold (a hand-written row may
    say NaN, infinity or 1e300): a snapshot must never fail to show a job."""
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, ValueError, OSError):
        return None


@dataclass(frozen=True)
class Job:
    """A snapshot of one job, and a handle to wait for its result.

    Snapshots do not change; call ``app.get_job(job.id)`` for a fresh one.
    """

    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    priority: int = 0
    state: str = PENDING
    attempts: int = 0
    max_attempts: int = 1
    timeout: float | None = None
    run_at: datetime | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_error: str | None = None
    traceback: str | None = None
    return_value: Any = None
    worker: str | None = None
    lease_until: datetime | None = None
    #: True when the arguments are encrypted and this process does not hold the key.
    encrypted: bool = False
    #: The job's JSON metadata (``using(meta=...)`` and middleware), or None.
    meta: dict[str, Any] | None = None
    #: What its run last reported: ``{"done", "total", "message", "at"}``, or None.
    progress: dict[str, Any] | None = None
    #: Why it was asked to stop while it ran (``app.cancel``), until its worker stops it.
    cancel_requested: str | None = None
    #: True on the handle an enqueue returns when a live job already held the unique key:
    #: nothing was stored and ``id`` is that job's id.
    duplicate: bool = False
    #: How many times a run of it raised ``Snooze``.
    snoozes: int = 0
    #: When it expires if not started by then (``using(expires=)``), or None.
    expires_at: datetime | None = None
    #: Its unique key (``unique_for``), or None.
    unique_key: str | None = None
    #: The key its task's limits count it under (``limit_key``), or None.
    limit_key: str | None = None
    #: The id of the batch it belongs to (``app.batch``), or None.
    batch_id: str | None = None
    _app: Conveyor | None = field(default=None, repr=False, compare=False)

    @property
    def retries(self) -> int:
        return self.max_attempts - 1

    def refresh(self) -> Job | None:
        """A fresh snapshot from the store, or None if the job is gone."""
        return self._require_app().get_job(self.id)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job to finish and return its result (the store wakes the caller
        when the job ends on Redis and PostgreSQL; SQLite is read again with backoff).

        Raises ``JobFailed`` if it ended in ``dead`` or ``cancelled``, and ``TimeoutError`` if
        it has not finished within ``timeout`` seconds (``None`` waits for ever).
        """
        return self._require_app().wait_for(self.id, timeout, self.queue)

    async def aresult(self, timeout: float | None = None) -> Any:
        """``result`` for async code: the event loop runs on while it waits, and the store
        wakes it when the job ends where it can (Redis, PostgreSQL); SQLite is read again
        with backoff, from every 2 ms to every 0.1 s."""
        return await self._require_app().await_result(self.id, timeout, self.queue)

    def _require_app(self) -> Conveyor:
        if self._app is None:
            raise RuntimeError("this Job is not bound to a Conveyor app")
        return self._app

    @classmethod
    def enqueued(
        cls,
        record: JobRecord,
        task: str,
        args: list[Any],
        kwargs: dict[str, Any],
        app: Conveyor,
        run_at: datetime,
        enqueued_at: datetime,
    ) -> Job:
        """The handle ``enqueue`` returns: built without the dataclass ``__init__``, which
        costs more than the rest of an enqueue (one ``object.__setattr__`` per field)."""
        job = object.__new__(cls)
        queue = record.queue
        # The other fields keep their defaults, which the dataclass leaves on the class.
        fields = {
            "id": record.id,
            "task": task,
            "args": args,
            "kwargs": kwargs,
            "queue": queue,
            "priority": record.priority,
            "state": record.state,
            "max_attempts": record.max_attempts,
            "timeout": record.timeout,
            "run_at": run_at,
            "enqueued_at": enqueued_at,
            "_app": app,
        }
        if SEP in queue:  # a limited job's bucket: show its queue and key
            fields["queue"], _, fields["limit_key"] = split(queue)
        object.__setattr__(job, "__dict__", fields)
        return job

    @staticmethod
    def from_record(
        record: JobRecord,
        task: str,
        args: list[Any],
        kwargs: dict[str, Any],
        return_value: Any,
        app: Conveyor | None,
        *,
        encrypted: bool = False,
        now: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Job:
        queue, _, limit_key = split(record.queue)
        return Job(
            id=record.id,
            task=task,
            args=args,
            kwargs=kwargs,
            queue=queue,
            limit_key=limit_key,
            priority=record.priority,
            state=visible_state(record.state, record.run_at, time.time() if now is None else now),
            attempts=record.attempts,
            max_attempts=record.max_attempts,
            timeout=record.timeout,
            run_at=_utc(record.run_at),
            enqueued_at=_utc(record.created_at),
            started_at=_utc(record.started_at),
            finished_at=_utc(record.finished_at),
            last_error=record.last_error,
            traceback=record.traceback,
            return_value=return_value,
            worker=record.locked_by,
            lease_until=_utc(record.lease_until),
            encrypted=encrypted,
            meta=meta,
            progress=_progress(record.progress),
            cancel_requested=record.cancel if record.state == ACTIVE else None,
            snoozes=record.snoozes,
            expires_at=_utc(record.expires_at),
            unique_key=record.unique_key,
            batch_id=record.batch_id,
            _app=app,
        )


def id_time(job_id: str) -> float | None:
    """When a conveyor id was made (seconds since the epoch: a UUIDv7 starts with its
    millisecond timestamp), or None when ``job_id`` is no UUIDv7."""
    if len(job_id) != 36 or job_id[14] != "7" or job_id.count("-") != 4:
        return None
    try:
        return int(job_id[:8] + job_id[9:13], 16) / 1000.0
    except ValueError:
        return None


def dependency_note(job_id: str, state: str) -> str:
    """The last error of a dependent cancelled because its dependency ``job_id`` ended
    ``state`` (dead, cancelled, or deleted before it completed)."""
    return f"dependency {job_id} ended {state}"


def _progress(data: bytes | None) -> dict[str, Any] | None:
    """A stored progress, or None when there is none or it is not a JSON object."""
    if not data:
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def visible_state(stored: str, run_at: float, now: float) -> str:
    """A waiting job whose time has come is ``pending``, whatever it waited as."""
    if (stored in (SCHEDULED, RETRY)) and run_at <= now:
        return PENDING
    return stored


class _IdGenerator:
    """UUIDv7 strings (RFC 9562), monotonic within this process.

    The 12 bits after the millisecond timestamp count up within one millisecond, so the
    jobs of one ``enqueue_many`` sort in the order they were given.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._seq = 0

    def __call__(self) -> str:
        return self.many(1)[0]

    def many(self, count: int) -> list[str]:
        """``count`` ids in order, for one batch: one clock read and one lock for them all."""
        if count <= 0:
            return []
        ms = time.time_ns() // 1_000_000
        with self._lock:
            if ms <= self._last_ms:
                ms, first = self._last_ms, self._seq + 1
            else:
                first = random.getrandbits(10)
            last = first + count - 1
            # 4,096 ids per millisecond; a bigger batch runs on into the next ones.
            self._last_ms, self._seq = ms + (last >> 12), last & 0xFFF
        return [_uuid7(ms + (n >> 12), n & 0xFFF) for n in range(first, last + 1)]


def _uuid7(ms: int, seq: int) -> str:
    # Ids order and identify jobs; they guard nothing, so a fast PRNG is enough.
    value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | random.getrandbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


new_id = _IdGenerator()
