"""Conveyor: the app object. Configuration, the task registry, enqueue and admin calls."""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

import orjson

from .backends import (
    Backend,
    EnqueuesInTransaction,
    Partitions,
    StoresDependencies,
    StoresLimits,
    StreamsEnqueue,
    WaitsForJobs,
    open_backend,
)
from .backends.aio import AsyncStore, open_async_store
from .batch import META_KEY as BATCH_META
from .batch import Batch, BatchRecord, StoresBatches
from .codec import Codec, check_json, normalize_encryption_keys, normalize_keys
from .errors import BatchClosed, ConfigurationError, JobFailed, PayloadTooLarge
from .job import (
    CANCELLED,
    COMPLETED,
    DEAD,
    FINAL_STATES,
    PENDING,
    SCHEDULED,
    STATES,
    WAITING,
    WAITING_STATES,
    Job,
    JobRecord,
    Stats,
    WorkerInfo,
    new_id,
)
from .limits import QUEUE_LIMIT, SEP, Limit, bucket, check_limit_key, compute_key, fold, make_limit
from .middleware import Enqueuing, Middleware, overriding
from .page import JobPage
from .redaction import redact_url
from .retry import Backoff
from .task import MAX_DELAY, PRIORITY_RANGE, JobSpec, Options, Task, check_name

log = logging.getLogger("conveyor")

if TYPE_CHECKING:
    # Imported where the async client needs it: asyncio is ~40% of `import conveyor` (90-260
    # ms on a loaded 2-core machine), and a worker's first job waits for its imports.
    import asyncio

    from .periodic.schedule import Schedule
    from .periodic.status import ScheduleStatus
    from .worker.worker import Worker

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_URL = "sqlite:///conveyor.db"
#: Batches from this size enqueue with the cyclic garbage collector paused.
_GC_PAUSE_FROM = 256
#: Jobs per chunk of a batch streamed to a store that writes one chunk while the next is
#: built; a batch up to this size goes in one call.
STREAM_CHUNK = 1000
_MISSING = object()
#: Argument types that need no deeper JSON check (ints are range-checked by check_json).
_PLAIN = frozenset({str, bool, type(None)})
DEFAULT_MAX_PAYLOAD = 1024 * 1024
#: Dead and cancelled jobs kept by default: as Sidekiq's dead set, six months and 10,000.
DEAD_TTL = 180 * 86400.0
DEAD_MAX = 10_000


def _lifecycle(record: JobRecord, spec: JobSpec, now: float) -> None:
    """Give a built record its expiry and unique key (the rare path: options were set)."""
    opts = spec.options
    if opts.expires is not None:
        record.expires_at = opts.expires_at(spec.task.name, now)
    if opts.unique_for is not None:
        record.unique_key = opts.unique_key or unique_key(spec.task.name, spec.args, spec.kwargs)
        record.unique_until = now + opts.unique_for


def unique_key(task: str, args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    """A task's own unique key: its name and a digest of its arguments as canonical JSON
    (sorted keys), so equal arguments give equal keys whatever their order in a dict."""
    import hashlib  # (here: OpenSSL's hashlib is ~3 ms of a worker's start, and rarely used)

    canonical = orjson.dumps([list(args), kwargs], option=orjson.OPT_SORT_KEYS)
    return f"{task}:{hashlib.blake2b(canonical, digest_size=16).hexdigest()}"


def _of_task(record: JobRecord, task: str, codec: Codec) -> bool:
    """Whether a listed job is of ``task``: by the name the store keeps where it keeps one,
    else by its payload's."""
    if record.task is not None:
        return record.task == task
    payload, _ = codec.peek(record.id, record.payload)
    return payload is not None and payload.task == task


def _state(state: str) -> str:
    """``state`` if it names a job state; a ``ValueError`` naming the valid ones otherwise (a
    typo must not read as "no such jobs")."""
    if state not in STATES:
        raise ValueError(f"unknown job state {state!r}; expected one of {', '.join(STATES)}")
    return state


def _plain(spec: JobSpec) -> bool:
    """A job the async client stores itself: no unique key, no expiry, no limit."""
    return spec.options.plain and spec.task.limit is None and spec.options.limit_key is None


def _check_specs(specs: list[Any], call: str) -> None:
    for n, spec in enumerate(specs):
        if not isinstance(spec, JobSpec):
            raise TypeError(
                f"{call} takes jobs described by task.job(...); item {n} is a {type(spec).__name__}"
            ) from None


#: Jobs ``aenqueue_many`` checks and encodes before it lets the event loop run again (about
#: 0.6 ms of work; on a thread instead, the work would hold the GIL for up to its switch
#: interval, 5 ms, while the loop waited for it).
_BUILD_CHUNK = 100


class Conveyor:
    """One job system: a store, the tasks registered on it, and the calls to use both.

    Constructing an app opens nothing; the store is connected on first use.

    ``url``: the store (``sqlite:///jobs.db``, ``postgresql://…``, ``redis://…``); default
    ``$CONVEYOR_URL``, else ``sqlite:///conveyor.db``. ``namespace`` isolates apps sharing one
    store. ``lease``: seconds a fetched job is reserved for its worker before another may
    take it back; the worker's heartbeat extends it while the job runs. ``result_ttl``:
    seconds completed jobs and their results are kept. ``secret_key``: signs every payload
    (a list rotates: the first signs, any verifies). ``encryption_key``: encrypts arguments
    and results at rest with AES-256-GCM (32 bytes; a list rotates likewise; needs
    ``conveyor[crypto]``). ``max_payload``: bytes one encoded job
    may take. ``max_queue_length``: waiting jobs one queue may hold (``QueueFull`` beyond).
    ``dead_ttl`` and ``dead_max``: dead and cancelled jobs are kept this many seconds and at
    most this many per namespace (Sidekiq's dead set: six months, 10,000); the worker's
    housekeeping deletes the oldest beyond either, a bounded batch at a time (None: no limit).
    ``replicas`` (Redis): enqueue and completion wait until that many replicas have the
    write, so an acknowledged job survives a failover. ``migrate=False`` (PostgreSQL): opening
    the store never changes its schema (``conveyor migrate`` does, run by a role allowed to);
    the choice for hardened deployments whose app role has only data grants.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str = "conveyor",
        lease: float = 30.0,
        result_ttl: float = 3600.0,
        secret_key: str | bytes | Sequence[str | bytes] | None = None,
        encryption_key: str | bytes | Sequence[str | bytes] | None = None,
        max_payload: int | None = DEFAULT_MAX_PAYLOAD,
        max_queue_length: int | None = None,
        middleware: Iterable[Middleware] = (),
        dead_ttl: float | None = DEAD_TTL,
        dead_max: int | None = DEAD_MAX,
        replicas: int | None = None,
        migrate: bool = True,
    ) -> None:
        self.url = url or os.environ.get("CONVEYOR_URL") or DEFAULT_URL
        if not namespace or len(namespace) > 40:
            raise ConfigurationError("namespace must be 1 to 40 characters")
        if lease <= 0:
            raise ConfigurationError("lease must be seconds > 0")
        self.namespace = namespace
        self.lease = float(lease)
        self.result_ttl = float(result_ttl)
        if dead_ttl is not None and (
            isinstance(dead_ttl, bool) or not (isinstance(dead_ttl, int | float) and dead_ttl > 0)
        ):
            raise ConfigurationError(f"dead_ttl must be seconds > 0 or None, not {dead_ttl!r}")
        if dead_max is not None and (type(dead_max) is not int or dead_max < 0):
            raise ConfigurationError(f"dead_max must be an int >= 0 or None, not {dead_max!r}")
        self.dead_ttl = None if dead_ttl is None else float(dead_ttl)
        self.dead_max = dead_max
        self.max_queue_length = max_queue_length
        # Store options: see open_backend (docs/production/redis.md, docs/production/postgres.md).
        self.replicas = replicas
        self.migrate = migrate
        self.codec = Codec(normalize_keys(secret_key), max_payload, normalize_encryption_keys(encryption_key))
        self.middleware: list[Middleware] = list(middleware)
        self._on_enqueue = overriding(self.middleware, "on_enqueue")
        self.tasks: dict[str, Task[Any, Any]] = {}
        #: Whole-queue limits declared with ``limit_queue``.
        self.queue_limits: dict[str, Limit] = {}
        self._lifted: set[str] = set()  # queues whose limit limit_queue lifted
        # (queue, limit name) -> the definition this process has written to the store.
        self._defined: dict[tuple[str, str], Limit] = {}
        #: Periodic schedules by name (``app.periodic``); every worker runs a scheduler for them.
        self.schedules: dict[str, Schedule] = {}
        self._backend: Backend | None = None
        self._backend_lock = threading.Lock()
        #: The time enqueue reads (seconds since the epoch): ``conveyor.testing.drain`` moves
        #: it forward to bring delayed and retried jobs due without waiting for them.
        self.clock: Callable[[], float] = time.time
        # The async client's store of each event loop that awaited this app (see aio.py).
        self._async_stores: dict[asyncio.AbstractEventLoop, asyncio.Task[AsyncStore]] = {}

    def __repr__(self) -> str:
        return f"<Conveyor {self.namespace!r} at {redact_url(self.url)} {len(self.tasks)} tasks>"

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            with self._backend_lock:
                if self._backend is None:
                    self._backend = open_backend(
                        self.url, self.namespace, replicas=self.replicas, migrate=self.migrate
                    )
        return self._backend

    def close(self) -> None:
        """Close the store's connections (it reopens on next use). The async client's
        connections are dropped; ``await app.aclose()`` closes them on their loop."""
        self._async_stores.clear()
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    async def aclose(self) -> None:
        """Close the async client's connections of the running event loop, and the store's."""
        import asyncio

        opening = self._async_stores.pop(asyncio.get_running_loop(), None)
        if opening is not None and opening.done() and not opening.cancelled() and opening.exception() is None:
            await opening.result().close()
        await asyncio.to_thread(self.close)

    def add_middleware(self, middleware: Middleware) -> None:
        self.middleware.append(middleware)
        self._on_enqueue = overriding(self.middleware, "on_enqueue")

    def remove_middleware(self, middleware: Middleware) -> None:
        self.middleware.remove(middleware)
        self._on_enqueue = overriding(self.middleware, "on_enqueue")

    # -- registry -------------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        retries: int = 3,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        concurrency: int | None = None,
        rate: str | None = None,
        limit_key: Callable[..., str] | None = None,
        unique_for: float | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(  # type: ignore[misc]  # mypy misreads the positional-only default here
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        retries: int = 3,
        timeout: float | None = None,
        backoff: Backoff | None = None,
        concurrency: int | None = None,
        rate: str | None = None,
        limit_key: Callable[..., str] | None = None,
        unique_for: float | None = None,
    ) -> Task[Any, Any] | Callable[[Callable[..., Any]], Task[Any, Any]]:
        """Register a function as a task; usable bare (``@app.task``) or with options.

        The name defaults to ``module.qualname``; a worker runs only registered names.
        ``unique_for``: while a job of this task with equal arguments waits or runs (for at
        most that many seconds), enqueueing another returns it instead (``duplicate=True``).
        ``concurrency=N`` allows at most N runs at once and ``rate="N/s"`` (or ``/m``,
        ``/h``) at most N starts per period, counted by the store across every worker,
        process and machine; with ``limit_key=callable(*args, **kwargs) -> str`` each key
        (a customer, an API token) gets its own allowance. See docs/limits.md.
        """
        options = Options(
            queue=queue,
            priority=priority,
            retries=retries,
            timeout=timeout,
            backoff=backoff,
            unique_for=unique_for,
        )

        def register(func: Callable[..., Any]) -> Task[Any, Any]:
            if name is None and getattr(func, "__name__", None) == "<lambda>":
                # Every lambda of a module would share the name module.<lambda>.
                raise ConfigurationError("a lambda has no name to register it by: use a def, or give name=")
            task_name = check_name("task", name or f"{func.__module__}.{func.__qualname__}")
            if task_name in self.tasks and self.tasks[task_name].fn is not func:
                raise ConfigurationError(f"a different task is already registered as {task_name!r}")
            owner = f"task {task_name!r}"
            limit = make_limit(owner, concurrency, rate)
            key_fn = check_limit_key(owner, limit_key)
            if key_fn is not None and limit is None:
                raise ConfigurationError(f"{owner}: limit_key needs concurrency= or rate= to partition")
            registered: Task[Any, Any] = Task(self, func, task_name, options, limit, key_fn)
            self.tasks[task_name] = registered
            return registered

        return register(fn) if fn is not None else register

    def limit_queue(self, queue: str, *, concurrency: int | None = None, rate: str | None = None) -> None:
        """Limit a whole queue: at most ``concurrency`` of its jobs run at once and at most
        ``rate`` (``"N/s"``, ``"N/m"``, ``"N/h"``) start per period, counted by the store
        across every worker. The definition reaches the store when a worker of this app
        starts (or at once, with ``define_limits``); neither option lifts the queue's limit
        (the same way: when a worker starts). Nothing reaches the store at this call."""
        check_name("queue", queue)
        limit = make_limit(f"queue {queue!r}", concurrency, rate)
        if limit is None:
            self.queue_limits.pop(queue, None)
            self._lifted.add(queue)
            return
        self._lifted.discard(queue)
        self.queue_limits[queue] = limit

    def limit_definitions(self) -> dict[tuple[str, str], Limit]:
        """Every limit this app declares: (queue, task name) for tasks, (queue, "") for
        whole queues."""
        found = {(task.options.queue, name): task.limit for name, task in self.tasks.items() if task.limit}
        found.update({(queue, QUEUE_LIMIT): limit for queue, limit in self.queue_limits.items()})
        return found

    def define_limits(self) -> None:
        """Write every limit this app declares to the store (a worker does this as it starts)."""
        for (queue, name), limit in self.limit_definitions().items():
            self._define(queue, name, limit, force=True)
        for queue in sorted(self._lifted):
            self._define(queue, QUEUE_LIMIT, None, force=True)

    def _define(self, queue: str, name: str, limit: Limit | None, force: bool = False) -> None:
        if not force and self._defined.get((queue, name)) == limit:
            return
        store = self.backend
        if not isinstance(store, StoresLimits):
            raise ConfigurationError(f"the store at {redact_url(self.url)} does not support limits")
        store.set_limit(queue, name, limit)
        if limit is None:
            self._defined.pop((queue, name), None)
        else:
            self._defined[(queue, name)] = limit

    @overload
    def periodic(
        self,
        task: Task[P, R] | Callable[P, R],
        /,
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        tz: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        queue: str | None = None,
    ) -> Schedule: ...

    @overload
    def periodic(
        self,
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        tz: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        queue: str | None = None,
    ) -> Callable[[Task[P, R] | Callable[P, R]], Task[P, R]]: ...

    def periodic(  # type: ignore[misc]  # mypy misreads the positional-only default here
        self,
        task: Task[Any, Any] | Callable[..., Any] | None = None,
        /,
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        tz: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        queue: str | None = None,
    ) -> Schedule | Callable[[Any], Task[Any, Any]]:
        """Enqueue ``task`` at every tick of ``cron`` (read in the IANA zone ``tz``) or
        ``every`` seconds (a number or a timedelta; ticks at multiples of it since the epoch).

        ``app.periodic(task, cron=...)`` registers a schedule and returns it; as a decorator,
        ``@app.periodic(cron=...)`` stacks on ``@app.task`` or on a plain function (which it
        registers as a task with the default options) and returns the task. The schedule's
        name defaults to the task's; two schedules may not share one. ``args``/``kwargs`` are
        the job's arguments, ``queue`` overrides the task's.

        Every worker runs the scheduler, and each tick is enqueued once per namespace however
        many run (the store decides, atomically). After a time when no worker ran, only the
        latest missed tick is enqueued. A bad expression, zone, interval or argument (not
        JSON, or not fitting the task) raises here, naming it.
        """

        # Imported here: the periodic modules bring cronsim and zoneinfo (3-5 ms of a
        # worker's start), which an app without schedules never needs.
        from .periodic.schedule import build_schedule

        def register(fn: Task[Any, Any] | Callable[..., Any]) -> Schedule:
            registered = fn if isinstance(fn, Task) else self.task(fn)
            if registered.app is not self:
                raise ConfigurationError(f"task {registered.name!r} is registered on another app")
            schedule = build_schedule(
                registered, cron=cron, every=every, tz=tz, args=args, kwargs=kwargs, name=name, queue=queue
            )
            if schedule.name in self.schedules:
                raise ConfigurationError(
                    f"a schedule named {schedule.name!r} is already registered; give this one name="
                )
            # Encoded once now, so a job too large for the store fails here, not at its tick.
            self._encode(schedule.spec(0.0), time.time(), new_id())
            self.schedules[schedule.name] = schedule
            return schedule

        if task is not None:
            return register(task)

        def decorate(fn: Task[Any, Any] | Callable[..., Any]) -> Task[Any, Any]:
            return register(fn).task

        return decorate

    def schedule_status(self, job_states: bool = True) -> list[ScheduleStatus]:
        """Every periodic schedule of this app's code and of its store, by name: schedule,
        zone, next run, the last tick enqueued, its job and (``job_states``: one store read
        per schedule) that job's state."""
        from .periodic.status import statuses

        return statuses(self, time.time(), job_states)

    def run_schedule(self, name: str) -> Job:
        """Enqueue a schedule's job now, outside its ticks (the dashboard's "run now"): the
        ticks go on as before. ``KeyError`` naming the schedules if ``name`` is none of them."""
        schedule = self.schedules.get(name)
        if schedule is None:
            known = ", ".join(sorted(self.schedules)) or "none"
            raise KeyError(f"no schedule {name!r} in this app; defined: {known}")
        return self._enqueue_one(schedule.spec(None))

    # -- enqueue --------------------------------------------------------------------------
    def enqueue_many(self, specs: Iterable[JobSpec]) -> list[Job]:
        """Store many jobs in one round-trip; returns their handles in order.

        Every argument is checked first, so a bad one raises before anything is stored. The
        batch is stored all or none, with one exception: on Redis, a batch of more than
        1,000 jobs (with no middleware and no ``max_queue_length``) is streamed in chunks of
        1,000 as it is built, and only each chunk is all or none. Should the calling process
        die or the store fail part-way, the chunks already written stay stored; a caller
        that enqueues the batch again then has those jobs twice.
        """
        specs = specs if isinstance(specs, list) else list(specs)
        try:
            if len(specs) < _GC_PAUSE_FROM or not gc.isenabled():
                return self._enqueue_many(specs)
            # Building thousands of small objects sets off the cyclic collector again and
            # again, and it walks every one of them; none of them can form a cycle.
            gc.disable()
            try:
                return self._enqueue_many(specs)
            finally:
                gc.enable()
        except AttributeError:
            # Looked for only now: checking every item first would cost each batch.
            _check_specs(specs, "enqueue_many")
            raise

    def _enqueue_one(self, spec: JobSpec) -> Job:
        """``enqueue_many([spec])[0]`` without a batch's bookkeeping: a job enqueued alone is
        the commonest call of all."""
        opts = spec.options
        if (
            opts.connection is not None
            or self.middleware
            or opts.unique_for is not None
            or opts.expires is not None
            or opts.after is not None
        ):
            return self._enqueue_many([spec])[0]
        now = self.clock()
        record, job = self._build(spec, now, datetime.fromtimestamp(now, UTC), new_id())
        self.backend.enqueue((record,), self.max_queue_length)
        return job

    def _enqueue_many(self, specs: list[JobSpec], ids: list[str] | None = None) -> list[Job]:
        backend = self.backend
        if (
            len(specs) > STREAM_CHUNK
            and isinstance(backend, StreamsEnqueue)
            and not self.middleware
            and self.max_queue_length is None
            and all(spec.options.connection is None and spec.options.plain for spec in specs)
        ):
            return self._enqueue_streamed(specs, backend)
        records, jobs, connection, each, after = self._build_many(specs, ids)
        if not records:
            return []
        for mw in self.middleware:
            mw.before_enqueue(records)
        if after:
            if each:
                raise ConfigurationError(
                    "one enqueue_many call cannot mix jobs with after= and jobs with unique_for or "
                    "expires: enqueue them in two calls"
                )
            self._enqueue_after(records, jobs, after, connection)
        elif each:
            if connection is not None:
                raise ConfigurationError(
                    "using(connection=...) cannot be combined with unique_for or expires: those "
                    "jobs are stored one by one, outside the caller's transaction"
                )
            self._enqueue_each(records, jobs, each)
        elif connection is not None:
            if not isinstance(backend, EnqueuesInTransaction):
                raise ConfigurationError(
                    "using(connection=...) needs the PostgreSQL store, whose jobs can join "
                    "the caller's transaction"
                )
            backend.enqueue_in(connection, records, self.max_queue_length)
        else:
            backend.enqueue(records, self.max_queue_length)
        for mw in self.middleware:
            mw.after_enqueue(records)
        return jobs

    def _build_many(
        self, specs: list[JobSpec], ids: list[str] | None = None
    ) -> tuple[list[JobRecord], list[Job], Any, list[int], dict[str, tuple[str, ...]]]:
        """The records to store and the handles to return for a batch, the caller's
        connection its jobs are enqueued through (None: the store's own), the positions
        of the jobs with a unique key or an expiry, and the dependencies of those that wait
        for others (id -> ids). ``ids``: the jobs' ids, made in advance (``chain``)."""
        now = self.clock()
        when = datetime.fromtimestamp(now, UTC)
        records: list[JobRecord] = []
        jobs: list[Job] = []
        connection: Any = None
        each: list[int] = []  # positions of jobs with a unique key or an expiry
        after: dict[str, tuple[str, ...]] = {}
        for spec, job_id in zip(specs, new_id.many(len(specs)) if ids is None else ids, strict=True):
            record, job = self._build(spec, now, when, job_id)
            opts = spec.options
            if opts.unique_for is not None or opts.expires is not None or opts.after is not None:
                if opts.after is not None:
                    # Stored waiting (the store may release it at once): the handle says so.
                    # An expiry counts from now, waiting included (docs/workflows.md).
                    after[job_id] = opts.after
                    record.state = WAITING
                    object.__setattr__(job, "state", WAITING)
                    if opts.expires is not None:
                        _lifecycle(record, spec, now)
                else:
                    each.append(len(records))
                    _lifecycle(record, spec, now)
            if spec.options.connection is not None:
                if connection is not None and spec.options.connection is not connection:
                    raise ConfigurationError("one enqueue_many call takes one connection")
                connection = spec.options.connection
            records.append(record)
            jobs.append(job)
        return records, jobs, connection, each, after

    def _enqueue_after(
        self,
        records: list[JobRecord],
        jobs: list[Job],
        after: dict[str, tuple[str, ...]],
        connection: Any,
    ) -> None:
        """A batch of which some jobs wait for others: the store decides, per dependency,
        whether it completed, failed or is still to come, atomically with its end."""
        if connection is not None and not hasattr(self.backend, "enqueue_after_in"):
            raise ConfigurationError(
                "using(connection=...) needs the PostgreSQL store, whose jobs can join the "
                "caller's transaction"
            )
        store = self.backend
        if not isinstance(store, StoresDependencies):
            raise ConfigurationError(f"the store at {redact_url(self.url)} does not support after=")
        now = self.clock()
        # An id the store does not hold is taken as a job pruned after it completed when it
        # is older than result_ttl (ids are time-ordered); a younger one is an error.
        if connection is not None:
            # In the caller's transaction: the jobs, their edges and the locks on their
            # dependencies last until it commits (PostgreSQL only).
            store.enqueue_after_in(  # type: ignore[attr-defined]
                connection, records, after, now, now - self.result_ttl, self.max_queue_length
            )
            return
        store.enqueue_after(records, after, now, now - self.result_ttl, self.max_queue_length)

    def chain(self, *specs: JobSpec) -> list[Job]:
        """Enqueue jobs that run one after another: each waits for the one before it
        (``using(after=...)``), and a step that ends dead or cancelled cancels the rest.
        All are stored in one store call (on Redis, one call per step, in order); returns
        their handles in order. A step may also wait for other jobs (its own ``after``)."""
        if not specs:
            return []
        _check_specs(list(specs), "chain")
        ids = new_id.many(len(specs))
        linked = [specs[0]]
        for n, spec in enumerate(specs[1:]):
            waits = (*(spec.options.after or ()), ids[n])
            linked.append(
                spec._replace(options=dataclasses.replace(spec.options, after=waits).checked(spec.task.name))
            )
        return self._enqueue_many(linked, ids)

    def dependencies(self, job_id: str) -> list[Job]:
        """Snapshots of the jobs ``job_id`` waits or waited for, in the order given
        (``current_job().dependencies()`` inside a task); jobs pruned since are left out."""
        return self._snapshots(self._deps_store().dependencies(job_id))

    def dependents(self, job_id: str, limit: int = 100) -> list[Job]:
        """Snapshots of the jobs that wait or waited for ``job_id`` (at most ``limit``)."""
        return self._snapshots(self._deps_store().dependents(job_id, limit))

    def _deps_store(self) -> StoresDependencies:
        store = self.backend
        if not isinstance(store, StoresDependencies):
            raise ConfigurationError(f"the store at {redact_url(self.url)} does not support after=")
        return store

    def _snapshots(self, ids: list[str]) -> list[Job]:
        now = self.clock()
        found = [self.backend.get(job_id) for job_id in ids]
        return [self._job(record, now) for record in found if record is not None]

    def _enqueue_each(self, records: list[JobRecord], jobs: list[Job], each: list[int]) -> None:
        """Jobs with a unique key or an expiry are decided one by one by the store (a
        duplicate is not an error, and does not keep the rest out); the others of the batch
        are stored together, all or none, first."""
        chosen = set(each)
        plain = [r for n, r in enumerate(records) if n not in chosen]
        if plain:
            self.backend.enqueue(plain, self.max_queue_length)
        holders = self.backend.enqueue_each([records[n] for n in each], self.clock(), self.max_queue_length)
        for n, holder in zip(each, holders, strict=True):
            if holder is not None:
                job = jobs[n]
                jobs[n] = dataclasses.replace(job, id=holder, duplicate=True)

    def _enqueue_streamed(self, specs: list[JobSpec], store: StreamsEnqueue) -> list[Job]:
        """A large batch for a store that takes it in chunks as they are built (Redis): the
        store writes one chunk while the next is built. Every job is checked and encoded
        first, so a bad one still raises before anything is stored."""
        now = self.clock()
        when = datetime.fromtimestamp(now, UTC)
        ids = new_id.many(len(specs))
        encoded = [self._encode(spec, now, job_id) for spec, job_id in zip(specs, ids, strict=True)]
        jobs: list[Job] = []

        def chunks() -> Iterator[list[JobRecord]]:
            for start in range(0, len(specs), STREAM_CHUNK):
                records: list[JobRecord] = []
                for n in range(start, min(start + STREAM_CHUNK, len(specs))):
                    record, job = self._materialize(specs[n], ids[n], *encoded[n], now, when)
                    records.append(record)
                    jobs.append(job)
                yield records

        store.enqueue_stream(chunks())
        return jobs

    def _build(self, spec: JobSpec, now: float, when: datetime, job_id: str) -> tuple[JobRecord, Job]:
        return self._materialize(spec, job_id, *self._encode(spec, now, job_id), now, when)

    def _encode(self, spec: JobSpec, now: float, job_id: str) -> tuple[bytes, float, int, str]:
        """Check one job and encode its payload: (payload, run_at, max_attempts, the queue it
        is stored in). Raises for anything that must keep a job out of the store."""
        task, args, kwargs, opts = spec.task, spec.args, spec.kwargs, spec.options
        if task.app is not self and self.tasks.get(task.name) is not task:
            raise ConfigurationError(f"task {task.name!r} is registered on another app")
        for i, arg in enumerate(args):
            if type(arg) not in _PLAIN:
                check_json(arg, f"argument {i} of task {task.name!r}")
        for key, value in kwargs.items():
            if type(value) not in _PLAIN:
                check_json(value, f"argument {key!r} of task {task.name!r}")
        task.check_arguments(args, kwargs)
        run_at = now
        if opts.at is not None:
            run_at = opts.at.timestamp()
        elif opts.delay:
            run_at = now + opts.delay
        max_attempts = opts.retries + 1
        backoff = float(opts.backoff) if isinstance(opts.backoff, int | float) else None
        if backoff is not None and opts.backoff is task.options.backoff:
            backoff = None  # the worker knows the task's own backoff; store only overrides
        meta = opts.meta
        if self._on_enqueue:
            meta = self._middleware_meta(job_id, task.name, opts.queue, meta)
        queue = opts.queue
        if task.limit is not None or opts.limit_key is not None:
            queue = self._limited_queue(task, opts, args, kwargs)
        expires = None if opts.expires is None else opts.expires_at(task.name, now)
        payload = self.codec.encode_payload(
            job_id, queue, max_attempts, task.name, args, kwargs, backoff, meta, expires
        )
        limit = self.codec.max_payload
        if limit is not None and len(payload) > limit:
            raise PayloadTooLarge(
                f"job of task {task.name!r} encodes to {len(payload)} bytes, over the limit "
                f"of {limit}; store large data elsewhere and pass its key"
            )
        return payload, run_at, max_attempts, queue

    def _limited_queue(self, task: Task[Any, Any], opts: Options, args: Any, kwargs: Any) -> str:
        """The bucket a limited job is stored in; its definition is written to the store
        first (once per process), so that no worker meets a bucket without its limit."""
        if task.limit is None:
            raise ConfigurationError(
                f"task {task.name!r}: using(limit_key={opts.limit_key!r}) needs a task declared "
                "with concurrency= or rate="
            )
        key = opts.limit_key
        if key is None and task.limit_key is not None:
            key = compute_key(task.name, task.limit_key, args, kwargs)
        self._define(opts.queue, task.name, task.limit)
        return bucket(opts.queue, task.name, key)

    def _middleware_meta(
        self, job_id: str, task: str, queue: str, meta: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The job's metadata after each middleware's ``on_enqueue``; a failing one is logged
        and its changes are dropped, so that it never keeps a job out of the store."""
        current = dict(meta) if meta else {}
        for mw in self._on_enqueue:
            job = Enqueuing(job_id, task, queue, dict(current))
            try:
                mw.on_enqueue(job)
                check_json(job.meta, f"meta written by middleware {type(mw).__name__}")
            except Exception:
                log.exception("middleware %r failed in on_enqueue; job %s keeps its metadata", mw, job_id)
                continue
            current = job.meta
        return current or None

    def _materialize(
        self,
        spec: JobSpec,
        job_id: str,
        payload: bytes,
        run_at: float,
        max_attempts: int,
        queue: str,
        now: float,
        when: datetime,
    ) -> tuple[JobRecord, Job]:
        """The record to store and the handle to return for a checked, encoded job."""
        opts = spec.options
        # Positional: a dataclass __init__ with keywords costs twice as much, per job.
        record = JobRecord(
            job_id,
            queue,
            payload,
            opts.priority,
            SCHEDULED if run_at > now else PENDING,
            run_at,
            0,
            max_attempts,
            opts.timeout,
            now,
        )
        record.task = spec.task.name
        job = Job.enqueued(
            record,
            spec.task.name,
            list(spec.args),
            dict(spec.kwargs),
            self,
            when if run_at == now else datetime.fromtimestamp(run_at, UTC),
            when,
        )
        return record, job

    # -- batches ----------------------------------------------------------------------------
    def batch(
        self,
        jobs: Iterable[JobSpec],
        *,
        on_success: JobSpec | None = None,
        on_complete: JobSpec | None = None,
        on_death: JobSpec | None = None,
        parent: Batch | str | None = None,
    ) -> Batch:
        """Enqueue ``jobs`` as one batch, with callbacks the store enqueues exactly once
        (``conveyor.batch`` says when each fires and when a batch is open). The jobs and the
        batch are stored together (all or none on SQLite and PostgreSQL; on Redis the batch
        first, then its jobs per queue). ``parent``: a batch (or its id) whose jobs this
        batch's callbacks become; it then needs ``on_complete``, which the parent counts
        from now on. Batch jobs take no ``unique_for``, ``expires`` or ``connection``."""
        specs = list(jobs)
        if len(specs) < _GC_PAUSE_FROM or not gc.isenabled():
            return self._batch(specs, on_success, on_complete, on_death, parent)
        # As enqueue_many: thousands of small objects, none of which can form a cycle.
        gc.disable()
        try:
            return self._batch(specs, on_success, on_complete, on_death, parent)
        finally:
            gc.enable()

    def _batch(
        self,
        specs: list[JobSpec],
        on_success: JobSpec | None,
        on_complete: JobSpec | None,
        on_death: JobSpec | None,
        parent: Batch | str | None,
    ) -> Batch:
        parent_id = parent.id if isinstance(parent, Batch) else parent
        if parent_id is not None and on_complete is None:
            raise ConfigurationError(
                "a nested batch (parent=) needs on_complete: the parent counts it from now on, "
                "so that it waits for this batch"
            )
        now = self.clock()
        batch_id = new_id()
        records, handles, after = self._batch_records(batch_id, specs)
        callbacks: list[tuple[str, JobRecord]] = []
        when = datetime.fromtimestamp(now, UTC)
        for kind, spec in (("success", on_success), ("complete", on_complete), ("death", on_death)):
            if spec is None:
                continue
            if not isinstance(spec, JobSpec):
                raise TypeError(f"on_{kind} takes a job spec (task.job(...)), not {type(spec).__name__}")
            self._check_batch_spec(spec, f"on_{kind}")
            meta = {**(spec.options.meta or {}), BATCH_META: batch_id}
            spec = spec._replace(options=dataclasses.replace(spec.options, meta=meta))
            record, _ = self._build(spec, now, when, new_id())
            record.batch_id = parent_id
            callbacks.append((kind, record))
        info = BatchRecord(batch_id, len(records), 0, 0, 0, now, parent_id)
        for mw in self.middleware:
            mw.before_enqueue(records)
        store = self.backend
        if not isinstance(store, StoresBatches):
            raise ConfigurationError(f"the store {type(store).__name__} keeps no batches")
        if after:  # jobs of the batch that wait for others (the rare path)
            store.create_batch(
                info, records, callbacks, now, after=after, pruned_before=now - self.result_ttl
            )
        else:
            store.create_batch(info, records, callbacks, now)
        for mw in self.middleware:
            mw.after_enqueue(records)
        callbacks_info: dict[str, tuple[str, float | None]] = {kind: (r.id, None) for kind, r in callbacks}
        return Batch(self, dataclasses.replace(info, callbacks=callbacks_info), handles)

    async def abatch(
        self,
        jobs: Iterable[JobSpec],
        *,
        on_success: JobSpec | None = None,
        on_complete: JobSpec | None = None,
        on_death: JobSpec | None = None,
        parent: Batch | str | None = None,
    ) -> Batch:
        """``batch`` for async code: the jobs are built and the batch is stored on a thread,
        so the event loop runs on meanwhile (as ``aenqueue_many`` does for what it cannot
        send through the async store); the same batch, the same rules."""
        import asyncio

        specs = list(jobs)
        return await asyncio.to_thread(
            self.batch,
            specs,
            on_success=on_success,
            on_complete=on_complete,
            on_death=on_death,
            parent=parent,
        )

    async def achain(self, *specs: JobSpec) -> list[Job]:
        """``chain`` for async code (stored on a thread: the event loop runs on)."""
        import asyncio

        return await asyncio.to_thread(self.chain, *specs)

    async def aget_batch(self, batch_id: str) -> Batch | None:
        """``get_batch`` for async code."""
        import asyncio

        return await asyncio.to_thread(self.get_batch, batch_id)

    def get_batch(self, batch_id: str) -> Batch | None:
        """The batch with this id, its counters fresh from the store; None if there is none."""
        store = self.backend
        if not isinstance(store, StoresBatches):
            return None
        record = store.get_batch(batch_id)
        return None if record is None else Batch(self, record)

    def _check_batch_spec(self, spec: JobSpec, where: str) -> None:
        opts = spec.options
        if where == "batch" and opts.unique_for is None and opts.expires is None and opts.connection is None:
            return  # a job of the batch may wait for others (after=)
        if not opts.plain or opts.connection is not None:
            raise ConfigurationError(
                f"{where}: a batch's jobs take no unique_for, expires or connection, and its "
                "callbacks no after= either: the store counts every job the batch stores, so "
                "none may be left out as a duplicate (unique_for) or stored outside the batch's "
                "own step (connection); a callback is enqueued when the batch decides "
                "(docs/workflows.md)"
            )

    def _batch_records(
        self, batch_id: str, specs: list[JobSpec]
    ) -> tuple[list[JobRecord], list[Job], dict[str, tuple[str, ...]]]:
        """The records and handles of a batch's jobs, and the dependencies of those that
        wait for others (id -> ids; stored ``waiting``)."""
        _check_specs(specs, "batch")
        for spec in specs:
            self._check_batch_spec(spec, "batch")
        records, handles, _, _, after = self._build_many(specs)
        for record, job in zip(records, handles, strict=True):
            record.batch_id = batch_id
            # Job.enqueued built the handle's __dict__ itself; a replace() would cost more
            # than the rest of its enqueue.
            job.__dict__["batch_id"] = batch_id
        return records, handles, after

    def _add_to_batch(self, batch_id: str, specs: list[JobSpec]) -> list[Job]:
        if len(specs) >= _GC_PAUSE_FROM and gc.isenabled():
            gc.disable()
            try:
                return self._add_to_batch(batch_id, specs)
            finally:
                gc.enable()
        records, handles, after = self._batch_records(batch_id, specs)
        if not records:
            return []
        store = self.backend
        if not isinstance(store, StoresBatches):
            raise ConfigurationError(f"the store {type(store).__name__} keeps no batches")
        for mw in self.middleware:
            mw.before_enqueue(records)
        now = self.clock()
        added = (
            store.add_to_batch(batch_id, records, now, after=after, pruned_before=now - self.result_ttl)
            if after
            else store.add_to_batch(batch_id, records, now)
        )
        if not added:
            raise BatchClosed(
                f"batch {batch_id} is not open (every job it counted has ended, or there is no "
                "such batch): nothing was added"
            )
        for mw in self.middleware:
            mw.after_enqueue(records)
        return handles

    # -- reading jobs ---------------------------------------------------------------------
    def _job(self, record: JobRecord, now: float | None = None) -> Job:
        payload, hidden_args = self.codec.peek(record.id, record.payload)
        task, args, kwargs = (payload.task, payload.args, payload.kwargs) if payload else ("?", [], {})
        value, hidden_result = self.codec.decode_result(record.result, record.id)
        return Job.from_record(
            record,
            task,
            args,
            kwargs,
            value,
            self,
            now=now,
            encrypted=hidden_args or hidden_result,
            meta=payload.meta if payload else None,
        )

    def get_job(self, job_id: str) -> Job | None:
        """A fresh snapshot of one job, or None if it does not exist (or was pruned)."""
        record = self.backend.get(job_id)
        return None if record is None else self._job(record, self.clock())

    def jobs(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
        search: str | None = None,
        meta: dict[str, Any] | None = None,
        after: str | None = None,
        task: str | None = None,
    ) -> list[Job]:
        """Snapshots of jobs, filtered by state (one of ``conveyor.job.STATES``;
        ``ValueError`` for any other) and queue, in the state's listing order (pending: next
        to run first; the others newest first): ``jobs_page(...).jobs``.

        ``offset`` is deprecated: it is skipped by reading it, so page N costs N pages;
        ``jobs_page`` gives the cursor that makes every page cost the same."""
        if offset > 0:
            return self.jobs_page(state, queue, offset + limit, after, search, meta, task=task).jobs[offset:]
        return self.jobs_page(state, queue, limit, after, search, meta, task=task).jobs

    def jobs_page(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        after: str | None = None,
        search: str | Sequence[str] | None = None,
        meta: dict[str, Any] | None = None,
        scan: int | None = None,
        task: str | None = None,
    ) -> JobPage:
        """One page of jobs read through the store's index, and the cursor of the next page
        (``after=page.next``): every page costs what the first does, however many jobs are
        stored. ``search`` keeps jobs whose payload contains the text (a task name, an
        argument; every text of a list); ``meta`` keeps jobs whose metadata has each of these
        keys with that value. A search or meta filter reads at most ``scan`` jobs, newest
        first (None: the store's default, 2,000), and says how many it read (``scanned``)
        and whether it stopped at that bound (``stopped``).

        ``task`` keeps the jobs of that task (its registered name). SQLite and PostgreSQL
        read them from an index of task names, newest first (every state but pending and
        active, whose listing is read comparing the name); Redis looks for the name in each
        payload, within the same bound as a text. It is a search: ``scanned`` and
        ``stopped`` say what it read."""
        now = self.clock()
        chosen = None if state is None else _state(state)
        if not meta:
            page = self.backend.list_jobs(chosen, queue, limit, after, now, search, scan, task=task)
            records = page.records
            if task is not None:
                # A store that looks for the name in the payload may meet it elsewhere (an
                # argument named "t"): only the task's own jobs are kept.
                records = [r for r in records if _of_task(r, task, self.codec)]
            jobs = [self._job(r, now) for r in records]
            return JobPage(jobs, page.next, page.scanned, page.stopped)
        if search is not None:
            raise ValueError("jobs() takes search= or meta=, not both")
        # The store searches for the first pair's text; every pair is checked here.
        scan = self.backend.search_scan if scan is None else scan
        key, value = next(iter(meta.items()))
        text = orjson.dumps(key).decode() + ":" + orjson.dumps(value).decode()
        found: list[Job] = []
        scanned = 0
        while True:
            page = self.backend.list_jobs(
                chosen, queue, limit - len(found), after, now, text, scan - scanned, task=task
            )
            scanned += page.scanned or 0
            for record in page.records:
                job = self._job(record, now)
                if task is not None and not _of_task(record, task, self.codec):
                    continue
                if job.meta is not None and all(job.meta.get(k, _MISSING) == v for k, v in meta.items()):
                    found.append(job)
            after = page.next
            if len(found) >= limit or after is None or page.stopped or scanned >= scan:
                return JobPage(found, after, scanned, page.stopped or (after is not None and scanned >= scan))

    def wait_for(self, job_id: str, timeout: float | None = None, queue: str | None = None) -> Any:
        """The result of a job once it completes (see ``Job.result``): woken by the store
        where it can be (Redis, PostgreSQL), else reading the job again with backoff."""
        backend = self.backend
        if isinstance(backend, WaitsForJobs):
            return self._result_of(job_id, backend.wait_ended(job_id, queue, timeout), timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.002
        while True:
            record = self.backend.get(job_id)
            if record is None or record.state in FINAL_STATES:
                return self._result_of(job_id, record, timeout)
            if deadline is not None and time.monotonic() >= deadline:
                return self._result_of(job_id, record, timeout)
            sleep = pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(sleep)
            pause = min(pause * 1.5, 0.1)

    def _result_of(self, job_id: str, record: JobRecord | None, timeout: float | None) -> Any:
        """The result of a completed job; ``JobFailed`` for one that ended otherwise or is
        gone, ``TimeoutError`` for one still on its way after ``timeout`` seconds."""
        if record is None:
            raise JobFailed(job_id, "missing", "no such job (deleted, or pruned after result_ttl)")
        if record.state == COMPLETED:
            value, hidden = self.codec.decode_result(record.result, job_id)
            if hidden:
                raise ConfigurationError(
                    f"the result of job {job_id} is encrypted with a key this app does not hold"
                )
            return value
        if record.state in (DEAD, CANCELLED):
            raise JobFailed(job_id, record.state, record.last_error)
        raise TimeoutError(f"job {job_id} is still {record.state} after {timeout} s")

    # -- the async client API -------------------------------------------------------------
    async def _astore(self) -> AsyncStore:
        """This event loop's async store, opened by the first call that needs it (the sync
        store under it is opened on a thread: SQLite and PostgreSQL check their schema then,
        and a Redis Cluster client reads the slot map)."""
        import asyncio

        loop = asyncio.get_running_loop()
        opening = self._async_stores.get(loop)
        if opening is None:
            for other in [o for o in self._async_stores if o.is_closed()]:
                del self._async_stores[other]
            opening = loop.create_task(self._open_async())
            self._async_stores[loop] = opening
        try:
            return await asyncio.shield(opening)
        except BaseException:
            if opening.done() and (opening.cancelled() or opening.exception() is not None):
                self._async_stores.pop(loop, None)  # the next call tries again
            raise

    async def _open_async(self) -> AsyncStore:
        import asyncio

        backend = self._backend
        if backend is None:
            backend = await asyncio.to_thread(lambda: self.backend)
        return open_async_store(backend)

    async def aenqueue_many(self, specs: Iterable[JobSpec]) -> list[Job]:
        """``enqueue_many`` for async code: the event loop runs on while the store works
        (and between chunks of a large batch as it is checked and encoded). All or none, as
        ``enqueue_many``; ``using(connection=...)`` is for the sync call only."""
        specs = specs if isinstance(specs, list) else list(specs)
        if len(specs) < _GC_PAUSE_FROM or not gc.isenabled():
            return await self._aenqueue_many(specs)
        # As enqueue_many does; here it also keeps a full collection, tens of milliseconds
        # for a batch of thousands, from running inside one of the event loop's steps.
        gc.disable()
        try:
            return await self._aenqueue_many(specs)
        finally:
            gc.enable()

    async def _aenqueue_many(self, specs: list[JobSpec]) -> list[Job]:
        import asyncio

        try:
            plain = all(_plain(spec) for spec in specs)
        except AttributeError:
            _check_specs(specs, "aenqueue_many")
            raise
        if not plain:
            # A unique key or an expiry is decided job by job by the sync store's own call
            # (enqueue_each), and a limited task's limit is written to the store once before
            # its first job: made on a thread, the sync path keeps the loop free all the same.
            return await asyncio.to_thread(self._enqueue_many, specs)
        records: list[JobRecord] = []
        jobs: list[Job] = []
        connection: Any = None
        try:
            for start in range(0, len(specs), _BUILD_CHUNK):
                if start:
                    await asyncio.sleep(0)  # let the loop run between chunks
                built, handles, connection, _, _ = self._build_many(specs[start : start + _BUILD_CHUNK])
                records += built
                jobs += handles
        except AttributeError:
            _check_specs(specs, "aenqueue_many")
            raise
        if connection is not None:
            raise ConfigurationError(
                "using(connection=...) joins a sync transaction: enqueue with .enqueue() inside "
                "it (aenqueue goes through the store's own connection)"
            )
        if not records:
            return []
        store = await self._astore()
        for mw in self.middleware:
            mw.before_enqueue(records)
        await store.enqueue(records, self.max_queue_length)
        for mw in self.middleware:
            mw.after_enqueue(records)
        return jobs

    async def _aenqueue_one(self, spec: JobSpec) -> Job:
        if spec.options.connection is not None or self.middleware or not _plain(spec):
            return (await self.aenqueue_many([spec]))[0]
        now = self.clock()
        record, job = self._build(spec, now, datetime.fromtimestamp(now, UTC), new_id())
        store = await self._astore()
        await store.enqueue((record,), self.max_queue_length)
        return job

    async def aget_job(self, job_id: str) -> Job | None:
        """``get_job`` for async code."""
        record = await (await self._astore()).get(job_id)
        return None if record is None else self._job(record, self.clock())

    async def await_result(self, job_id: str, timeout: float | None = None, queue: str | None = None) -> Any:
        """The result of a job once it completes (see ``Job.aresult``); ``queue``, when
        known, spares the store a look-up."""
        store = await self._astore()
        record = await store.wait_ended(job_id, queue, timeout)
        return self._result_of(job_id, record, timeout)

    # -- admin ----------------------------------------------------------------------------
    def stats(self) -> Stats:
        """Jobs per queue and state, paused queues, processed and failed totals."""
        store = self.backend
        stats = store.stats(time.time())
        definitions = store.limits() if isinstance(store, StoresLimits) else {}
        if definitions or any(SEP in queue for queue in stats.queues):
            stats = fold(stats, definitions)
        return stats

    def workers(self) -> list[WorkerInfo]:
        """Worker processes that sent a heartbeat recently."""
        return self.backend.workers()

    def retry(self, *job_ids: str) -> int:
        """Run dead, cancelled, retrying or scheduled jobs now, their attempts reset; returns
        how many changed (``app.retry(job_id)``: 1, or 0 if its state does not allow it).
        Any number of ids go to the store in one call."""
        return self._act("retry", job_ids)

    def retry_all(self, state: str = DEAD, queue: str | None = None, *, limit: int | None = None) -> int:
        """``retry`` every job in ``state`` (and ``queue``), or at most ``limit`` of them;
        returns how many."""
        return self.backend.act("retry", None, time.time(), state=_state(state), queue=queue, limit=limit)

    def delete(self, *job_ids: str) -> int:
        """Remove jobs, whatever their state; returns how many were there. One store call."""
        return self._act("delete", job_ids)

    def delete_all(self, state: str, queue: str | None = None, *, limit: int | None = None) -> int:
        """Remove every job in ``state`` (and ``queue``), or at most ``limit`` of them;
        returns how many."""
        return self.backend.act("delete", None, time.time(), state=_state(state), queue=queue, limit=limit)

    def cancel(self, *job_ids: str, by: str | None = None) -> int:
        """Cancel jobs: a waiting one (scheduled, pending, retry) ends ``cancelled`` now; a
        running one is asked to stop, and its worker stops it within about a second (an
        async task is cancelled; a sync one sees ``current_job().cancelled`` and is stopped
        the way a timeout stops it) and ends it ``cancelled``, never retried. Returns how many
        were cancelled or asked (0 for a finished job). ``by`` says who, in the jobs' last
        error (default: this process). One store call."""
        who = by if by is not None else f"app.cancel() in pid {os.getpid()} on {socket.gethostname()}"
        return self._act("cancel", job_ids, note=f"cancelled by {who}")

    def _act(self, action: str, job_ids: tuple[str, ...], note: str | None = None) -> int:
        for job_id in job_ids:
            if not isinstance(job_id, str):
                raise TypeError(
                    f"app.{action}() takes job ids as arguments, got a {type(job_id).__name__}; "
                    f"pass a list as app.{action}(*ids)"
                )
        if not job_ids:
            return 0
        # Each id once: a repeated id must not count twice on any store.
        return self.backend.act(action, list(dict.fromkeys(job_ids)), time.time(), note=note)

    def queue(self, name: str, *, partitions: int = 1) -> int:
        """Settings of one queue, kept in the store for every process that uses it.

        ``partitions``: on Redis, spread the queue over that many hash slots, so that on a
        Cluster one busy queue uses every master (``docs/scaling.md``). Jobs are dealt out
        over the partitions and workers take from all of them; priority and FIFO order hold
        within a partition, not across them. The count can grow, never shrink (jobs already
        in a partition stay served); returns the count in force. Processes already running
        pick it up within 10 s. Other stores keep one queue (a table has no slots) and
        return 1.
        """
        check_name("queue", name)
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise ConfigurationError(f"partitions={partitions!r} for queue {name!r}: a whole number >= 1")
        if isinstance(self.backend, Partitions):
            return self.backend.partition(name, partitions)
        return 1

    def reschedule(self, job_id: str, *, at: datetime | None = None, delay: float | None = None) -> bool:
        """Move a waiting job (scheduled, pending or retry) to run at ``at`` (an aware
        datetime) or ``delay`` seconds from now; True if it moved, False for a job in any
        other state (running, finished) or none. One store call, atomic in the store."""
        now = time.time()
        if (at is None) == (delay is None):
            raise ConfigurationError("reschedule() takes at= or delay=, exactly one of them")
        if at is not None:
            if not isinstance(at, datetime) or at.tzinfo is None:
                raise ConfigurationError(
                    f"reschedule(at=) takes an aware datetime (with a tzinfo), not {at!r}"
                )
            run_at = at.timestamp()
        else:
            if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY:
                raise ConfigurationError(
                    f"reschedule(delay=) takes seconds from 0 to {MAX_DELAY:.0f}, not {delay!r}"
                )
            run_at = now + float(delay)
        return self.backend.change(job_id, now, run_at=run_at)

    def update(self, job_id: str, *, priority: int | None = None, queue: str | None = None) -> bool:
        """Change a waiting job's priority and/or queue; True if it changed, False for a job
        in any other state or none. A job with a unique key keeps its queue (ValueError): its
        key guards one queue; so does a job of a batch. Moving queues is one atomic store call
        on SQLite, PostgreSQL and a single Redis server; Redis Cluster refuses it
        (``ConfigurationError``): the two queues live in different slots, which no one script
        may touch together."""
        if priority is None and queue is None:
            raise ConfigurationError("update() takes priority= and/or queue=")
        if priority is not None:
            low, high = PRIORITY_RANGE
            if type(priority) is not int or not low <= priority <= high:
                raise ConfigurationError(
                    f"update(priority=) takes an int from {low} to {high}, not {priority!r}"
                )
        payload = None
        if queue is not None:
            check_name("queue", queue)
            record = self.backend.get(job_id)
            if record is None or record.state not in WAITING_STATES:
                return False
            if record.queue == queue:
                queue = None
            else:
                if record.unique_key is not None:
                    raise ConfigurationError(
                        f"job {job_id} holds the unique key {record.unique_key!r} in queue "
                        f"{record.queue!r}; it cannot move to {queue!r} (cancel it and enqueue anew)"
                    )
                if record.batch_id is not None:
                    # On Redis a batch job's end is found through its queue's batch index.
                    raise ConfigurationError(
                        f"job {job_id} belongs to batch {record.batch_id}; it keeps its queue "
                        f"{record.queue!r} (cancel it and add a new job to the batch)"
                    )
                # The signature covers the queue: the moved job is signed for its new one
                # (after its old signature is verified), as the worker will check.
                payload = self.codec.for_queue(
                    record.payload, job_id, record.queue, queue, record.max_attempts
                )
            if queue is None and priority is None:
                return True
        return self.backend.change(job_id, time.time(), priority=priority, queue=queue, payload=payload)

    def pause(self, queue: str) -> None:
        """Stop workers from fetching this queue's jobs; enqueue still works."""
        self.backend.set_paused(queue, True)

    def resume(self, queue: str) -> None:
        self.backend.set_paused(queue, False)

    def inline(self) -> AbstractContextManager[None]:
        """For tests: inside ``with app.inline():`` each job enqueued runs at once, in the
        calling thread, before the enqueue returns (see ``conveyor.testing.inline``)."""
        from .testing.drain import inline

        return inline(self)

    def dashboard(self, **options: Any) -> Any:
        """The web dashboard as an ASGI app, to mount in Starlette, FastAPI or Django, or
        to serve with ``conveyor dashboard``. Needs ``conveyor[dashboard]``."""
        from .dashboard import create_app

        return create_app(self, **options)

    # -- running --------------------------------------------------------------------------
    def worker(
        self,
        queues: Sequence[str] | str | None = None,
        concurrency: int = 10,
        *,
        burst: bool = False,
        grace: float = 30.0,
        prefetch: int | None = None,
        pool: str = "thread",
        max_tasks_per_child: int | None = None,
        max_memory_per_child: float | None = None,
        app_target: str | None = None,
    ) -> Worker:
        """A worker for this app; ``.run()`` it. ``queues`` as in ``conveyor worker
        --queues``: a list in strict order, or ``"critical:6,default:3"`` for weights.

        ``pool="process"`` runs sync tasks in ``concurrency`` child processes (see ``conveyor
        worker --pool``); the children import the app as ``app_target`` (``"module:app"``),
        found among the imported modules when not given."""
        from .worker.worker import Worker

        return Worker(
            self,
            queues=queues,
            concurrency=concurrency,
            burst=burst,
            grace=grace,
            prefetch=prefetch,
            pool=pool,
            max_tasks_per_child=max_tasks_per_child,
            max_memory_per_child=max_memory_per_child,
            app_target=app_target,
        )
