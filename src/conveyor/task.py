"""Task: a registered function, with the options it is enqueued with."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, ParamSpec, TypeVar

from .codec import check_json
from .errors import ConfigurationError
from .limits import Limit, checked_key
from .retry import Backoff

if TYPE_CHECKING:
    from .app import Conveyor
    from .job import Job

P = ParamSpec("P")
R = TypeVar("R")

_UNSET: Any = object()

#: Priorities fit a PostgreSQL integer (and sort the same way on every store).
PRIORITY_RANGE = (-(2**31), 2**31 - 1)
#: The longest delay: a century, far inside what a datetime (year 9999) can hold.
MAX_DELAY = 100 * 365.25 * 86400
NAME_MAX = 200
#: Characters a queue or task name may not hold: whitespace and control characters break log
#: lines and tables, ',' and ':' are the syntax of --queues ('critical:6,default:3'), and
#: '}' would end a Redis Cluster hash tag ({ns:queue}) early.
_NAME_FORBIDDEN = re.compile(r"[\s{},:\x00-\x1f\x7f-\x9f]")


def check_name(kind: str, name: object) -> str:
    """``name`` if it is a valid queue or task name (one rule for both), else
    ``ConfigurationError`` saying what is wrong with it."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{kind} name must be a non-empty string, not {name!r}")
    if len(name) > NAME_MAX:
        raise ConfigurationError(f"{kind} name {name[:40]!r}… is {len(name)} characters; at most {NAME_MAX}")
    bad = _NAME_FORBIDDEN.search(name)
    if bad is not None or not name.isprintable():
        char = bad.group() if bad is not None else next(c for c in name if not c.isprintable())
        raise ConfigurationError(
            f"{kind} name {name!r} holds {char!r}; names take no whitespace, control characters, "
            "',', ':', '{' or '}'"
        )
    return name


@dataclass(frozen=True, slots=True)
class Options:
    """How one job is enqueued; every field may be overridden by ``Task.using``."""

    queue: str = "default"
    priority: int = 0
    retries: int = 3
    timeout: float | None = None
    backoff: Backoff | None = None
    delay: float | None = None
    at: datetime | None = None
    #: A database connection to enqueue through (the PostgreSQL store): the job then
    #: commits or rolls back with the caller's transaction.
    connection: Any = None
    #: JSON metadata kept with the job (an object with string keys), seen by middleware.
    meta: dict[str, Any] | None = None
    #: The key this job's limits count under (``using(limit_key=...)``), instead of the one
    #: the task's ``limit_key`` callable would give.
    limit_key: str | None = None
    #: Seconds a unique job holds its key at most (None: not unique); the key is
    #: ``unique_key``, else the task name and its arguments.
    unique_for: float | None = None
    unique_key: str | None = None
    #: A job not started by then is cancelled: seconds from its enqueue, or an aware datetime.
    expires: float | datetime | None = None
    #: The ids of the jobs this one waits for (``using(after=...)``): it stays ``waiting``
    #: until every one completed. None: it waits for nothing.
    after: tuple[str, ...] | None = None

    @property
    def plain(self) -> bool:
        """No unique key, no expiry, no dependencies: the job takes the batch path of the
        store."""
        return self.unique_for is None and self.expires is None and self.after is None

    def checked(self, task_name: str) -> Options:
        try:
            check_name("queue", self.queue)
        except ConfigurationError as exc:
            raise ConfigurationError(f"task {task_name!r}: {exc}") from None
        low, high = PRIORITY_RANGE
        if type(self.priority) is not int or not low <= self.priority <= high:
            raise ConfigurationError(
                f"task {task_name!r}: priority must be an int from {low} to {high}, not {self.priority!r}"
            )
        if type(self.retries) is not int or self.retries < 0:
            raise ConfigurationError(f"task {task_name!r}: retries must be an int >= 0")
        if self.timeout is not None and not 0 < self.timeout < math.inf:
            raise ConfigurationError(f"task {task_name!r}: timeout must be finite seconds > 0")
        if self.at is not None and self.at.tzinfo is None:
            raise ConfigurationError(
                f"task {task_name!r}: at= must be an aware datetime (give it a tzinfo, "
                "e.g. datetime.now(timezone.utc)); a naive one is ambiguous"
            )
        if self.meta is not None:
            if type(self.meta) is not dict or not all(type(k) is str for k in self.meta):
                raise ConfigurationError(
                    f"task {task_name!r}: meta must be a dict with string keys, not {self.meta!r}"
                )
            check_json(self.meta, f"meta of task {task_name!r}")
        self._check_lifecycle(task_name)
        if self.after is not None:
            self._check_after(task_name)
        if self.limit_key is not None:
            checked_key(task_name, self.limit_key)
        if self.delay is not None and not 0 <= self.delay <= MAX_DELAY:
            raise ConfigurationError(
                f"task {task_name!r}: delay must be seconds from 0 to {MAX_DELAY:.0f} (a century), "
                f"not {self.delay!r}"
            )
        return self

    def _check_lifecycle(self, task_name: str) -> None:
        if self.unique_key is not None:
            key = self.unique_key
            if type(key) is not str or not 0 < len(key) <= UNIQUE_KEY_MAX or not key.isprintable():
                raise ConfigurationError(
                    f"task {task_name!r}: unique_key must be a printable string of 1 to "
                    f"{UNIQUE_KEY_MAX} characters, not {_short(key)}"
                )
            if self.unique_for is None:
                raise ConfigurationError(
                    f"task {task_name!r}: unique_key={key!r} needs unique_for= (the most seconds "
                    "the key is held)"
                )
        if self.unique_for is not None and not _seconds(self.unique_for):
            raise ConfigurationError(
                f"task {task_name!r}: unique_for must be seconds > 0 (at most a century), "
                f"not {self.unique_for!r}"
            )
        expires = self.expires
        if isinstance(expires, datetime):
            if expires.tzinfo is None:
                raise ConfigurationError(
                    f"task {task_name!r}: expires={expires!r} is a naive datetime; give it a tzinfo "
                    "(e.g. datetime.now(timezone.utc) + timedelta(minutes=5))"
                )
        elif expires is not None and not _seconds(expires):
            raise ConfigurationError(
                f"task {task_name!r}: expires must be seconds > 0 (at most a century) or an aware "
                f"datetime, not {expires!r}"
            )

    def _check_after(self, task_name: str) -> None:
        from .job import id_time

        for job_id in self.after or ():
            if type(job_id) is not str or id_time(job_id) is None:
                raise ConfigurationError(
                    f"task {task_name!r}: after= takes jobs or job ids (UUIDv7 strings), not {_short(job_id)}"
                )
        if self.unique_for is not None:
            raise ConfigurationError(
                f"task {task_name!r}: after= cannot be combined with unique_for yet: a unique key "
                "is taken by the store's own one-job enqueue, which does not record dependencies "
                "(hold the key on the first job of the workflow, or check in the task)"
            )

    def expires_at(self, task_name: str, now: float) -> float | None:
        """When a job enqueued ``now`` expires; ``ConfigurationError`` if that has passed."""
        expires = self.expires
        if expires is None:
            return None
        if isinstance(expires, datetime):
            when = expires.timestamp()
            if when <= now:
                raise ConfigurationError(
                    f"task {task_name!r}: expires={expires.isoformat()} is in the past; the job "
                    "would never run"
                )
            return when
        return now + float(expires)


#: The longest ``unique_key``: it is stored in an index (and, on Redis, in a key name).
UNIQUE_KEY_MAX = 200


def _seconds(value: object) -> bool:
    """A number of seconds > 0 and at most a century (not a bool, not NaN)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 < value <= MAX_DELAY


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class JobSpec(NamedTuple):
    """A job described but not yet stored, for ``app.enqueue_many`` (a named tuple: one is
    built per job of a batch, and a frozen dataclass costs about twice as much)."""

    task: Task[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: Options


class Task(Generic[P, R]):
    """A function registered on an app. Calling it runs it inline; ``enqueue`` stores a job.

    Delivery is at-least-once: a job may run twice if its worker dies mid-run, so tasks
    should be safe to repeat.
    """

    def __init__(
        self,
        app: Conveyor,
        fn: Callable[P, R],
        name: str,
        options: Options,
        limit: Limit | None = None,
        limit_key: Callable[..., Any] | None = None,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.options = options.checked(name)
        #: At most this many runs at once / starts per period, counted by the store across
        #: every worker (per key when ``limit_key`` is given).
        self.limit = limit
        #: ``(*args, **kwargs) -> str``: the key each job's limit counts under.
        self.limit_key = limit_key
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        self._positional = _positional_range(self.signature)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.options.queue!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def job(self, *args: P.args, **kwargs: P.kwargs) -> JobSpec:
        """Describe a job without storing it, for ``app.enqueue_many``."""
        return JobSpec(self, args, kwargs, self.options)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Store a job that runs this task with these arguments; returns its handle.

        Arguments must be JSON values: anything else is a TypeError here, and nothing is
        stored.
        """
        return self.app._enqueue_one(JobSpec(self, args, kwargs, self.options))

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """``enqueue`` for async code: the event loop runs on while the store works. The
        same checks, the same guarantee."""
        return await self.app._aenqueue_one(JobSpec(self, args, kwargs, self.options))

    def using(
        self,
        *,
        queue: str = _UNSET,
        priority: int = _UNSET,
        retries: int = _UNSET,
        timeout: float | None = _UNSET,
        backoff: Backoff | None = _UNSET,
        delay: float | None = _UNSET,
        at: datetime | None = _UNSET,
        connection: Any = _UNSET,
        meta: dict[str, Any] | None = _UNSET,
        limit_key: str | None = _UNSET,
        unique_for: float | None = _UNSET,
        unique_key: str | None = _UNSET,
        expires: float | datetime | None = _UNSET,
        after: Sequence[Job | str] | None = _UNSET,
    ) -> BoundTask[P, R]:
        """The same task with options changed for the jobs enqueued through the result.
        ``unique_for``/``unique_key``: no second live job with that key in the queue (an
        enqueue returns the live one, ``duplicate=True``); ``expires``: seconds or an aware
        datetime after which the job, if not started, is cancelled.
        ``meta`` is JSON metadata kept with the job (``app.get_job(id).meta``,
        ``current_job().meta``, ``app.jobs(meta=...)``); it is not encrypted with the
        arguments, so keep secrets out of it. ``after``: jobs (or their ids) this job waits
        for: it is stored ``waiting`` and becomes pending once every one completed, and ends
        ``cancelled`` if one ends dead or cancelled (docs/workflows.md)."""
        return BoundTask(self, self.options)._with(
            queue=queue,
            priority=priority,
            retries=retries,
            timeout=timeout,
            backoff=backoff,
            delay=delay,
            at=at,
            connection=connection,
            meta=meta,
            limit_key=limit_key,
            unique_for=unique_for,
            unique_key=unique_key,
            expires=expires,
            after=after,
        )

    def check_arguments(self, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
        """TypeError, naming the task, when the arguments do not fit its signature."""
        if not kwargs and self._positional is not None:
            low, high = self._positional
            if low <= len(args) <= high:
                return  # the common case, without the cost of Signature.bind
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"task {self.name!r} takes {self.signature}: {exc}") from None


class BoundTask(Generic[P, R]):
    """A task with per-enqueue options, as returned by ``Task.using``."""

    def __init__(self, task: Task[P, R], options: Options) -> None:
        self.task = task
        self.options = options

    def _with(self, **changes: Any) -> BoundTask[P, R]:
        changes = {k: v for k, v in changes.items() if v is not _UNSET}
        if "after" in changes:
            changes["after"] = after_ids(self.task.name, changes["after"])
        if "backoff" in changes and callable(changes["backoff"]):
            raise ConfigurationError(
                f"task {self.task.name!r}: using(backoff=) takes seconds; a callable backoff "
                "belongs in @app.task(backoff=...) because it cannot be stored with the job"
            )
        return BoundTask(self.task, replace(self.options, **changes).checked(self.task.name))

    def using(self, **changes: Any) -> BoundTask[P, R]:
        return self._with(**changes)

    def job(self, *args: P.args, **kwargs: P.kwargs) -> JobSpec:
        return JobSpec(self.task, args, kwargs, self.options)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        return self.task.app._enqueue_one(JobSpec(self.task, args, kwargs, self.options))

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        return await self.task.app._aenqueue_one(JobSpec(self.task, args, kwargs, self.options))


def after_ids(task_name: str, after: Any) -> tuple[str, ...] | None:
    """The ids of ``using(after=...)``: each a ``Job`` or a job id, each once, in order;
    None for no dependencies."""
    if after is None:
        return None
    if isinstance(after, str) or not isinstance(after, Sequence | set | frozenset):
        raise ConfigurationError(
            f"task {task_name!r}: after= takes a list of jobs or job ids, not {_short(after)}"
        )
    # Each checked (a UUIDv7 string) by Options.checked.
    ids: list[Any] = [item if isinstance(item, str) else getattr(item, "id", item) for item in after]
    return tuple(dict.fromkeys(ids)) or None


def _positional_range(signature: inspect.Signature) -> tuple[int, int] | None:
    """(required, allowed) positional argument counts, when positional arguments alone can
    satisfy the signature; None when only ``Signature.bind`` can tell."""
    low = high = 0
    for param in signature.parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            high += 1
            if param.default is param.empty:
                low += 1
        elif param.kind == param.VAR_POSITIONAL:
            high = 1 << 30
        elif param.kind == param.KEYWORD_ONLY and param.default is param.empty:
            return None
    return low, high
