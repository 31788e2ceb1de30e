"""Concurrency and rate limits shared by every worker: their definitions, the names of the
places their jobs wait in, and the token-bucket arithmetic every store applies the same way.

A limited job is stored in a *bucket*: an internal queue named after its queue, the limit's
name and its key (``mail\\x1fmail.send\\x1fcustomer:42``). Queue and task names never hold
control characters, so the separator cannot be forged by a name. A bucket is never served by
the plain claim of its queue (that claim walks only its own queue's jobs), so a job held back
by a limit waits in the store, costs nothing to the jobs behind it, and is claimed only by a
claim that has first counted the bucket's running jobs and its tokens under the store's lock.
Everything else a store does with a job (retry, lease recovery, cancel, listings) works on
the bucket like on any queue, so a slot is free as soon as its job is no longer ``active``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .job import Stats

#: Separates a bucket's queue, limit name and key in its internal queue name.
SEP = "\x1f"
#: The limit name of a whole queue's limit (``app.limit_queue``); task names are never empty.
QUEUE_LIMIT = ""
#: Buckets a claim takes jobs from beyond two per job it asks for (see ``rooms``).
LOOK_AT_BUCKETS = 8
#: The longest key a limit_key callable may return.
KEY_MAX = 200

_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0}  # fmt: skip
_RATE = re.compile(r"\s*(\d+)\s*/\s*([a-z]+)\s*")


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``concurrency`` runs at once and ``rate`` starts per ``per`` seconds (either
    may be None). Starts are metered by a token bucket that refills ``rate / per`` tokens a
    second and holds at most ``burst`` of them; it starts full."""

    concurrency: int | None = None
    rate: int | None = None
    per: float | None = None

    @property
    def burst(self) -> int:
        """Starts allowed at once after a quiet spell: a tenth of a period's allowance, but
        never less than one second's (``"20/s"``: 20), and at least one. Over any span of T
        seconds at most ``burst + rate * T / per`` jobs start.

        Workers claim by polling (every 50 ms when idle, plus the claim's round-trip, longer
        on a loaded machine or while a worker's threads are busy), and tokens past the burst
        are lost: the burst must hold the tokens of a gap between two claims, or the rate
        goes unused with jobs waiting. A tenth of a second, the burst of per-second rates
        before, was about one idle worker's gap."""
        rate = self.rate or 0
        return max(1, math.ceil(rate / 10), math.ceil(rate / self.per) if self.per else 0)

    def encode(self) -> str:
        """``concurrency|rate|per`` (empty where unset): how stores keep a definition."""
        return f"{self.concurrency or ''}|{self.rate or ''}|{self.per or ''}"

    @classmethod
    def decode(cls, text: str | bytes | None) -> Limit | None:
        """A definition read back from a store; None for an absent or garbled one (a bucket
        without a usable definition is served without a limit rather than held for ever)."""
        if text is None:
            return None
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        parts = text.split("|")
        if len(parts) != 3:
            return None
        try:
            concurrency = int(parts[0]) if parts[0] else None
            rate = int(parts[1]) if parts[1] else None
            per = float(parts[2]) if parts[2] else None
        except ValueError:
            return None
        if rate is not None and not per:
            return None
        return cls(concurrency, rate, per)

    def describe(self) -> str:
        parts = []
        if self.concurrency is not None:
            parts.append(f"concurrency {self.concurrency}")
        if self.rate is not None and self.per:
            unit = {1.0: "s", 60.0: "m", 3600.0: "h"}.get(self.per, f"{self.per:g}s")
            parts.append(f"rate {self.rate}/{unit} (burst {self.burst})")
        return ", ".join(parts) or "no limit"


def parse_rate(rate: str, owner: str) -> tuple[int, float]:
    """``"N/s"``, ``"N/m"`` or ``"N/h"`` as (N, seconds); ConfigurationError naming
    ``owner`` and the value otherwise."""
    match = _RATE.fullmatch(rate.lower()) if isinstance(rate, str) else None
    if match is None or match.group(2) not in _PERIODS or int(match.group(1)) <= 0:
        raise ConfigurationError(
            f"{owner}: rate={rate!r} is not a rate; write starts per period as 'N/s', 'N/m' "
            "or 'N/h' with N > 0, e.g. rate='100/m'"
        )
    return int(match.group(1)), _PERIODS[match.group(2)]


def make_limit(owner: str, concurrency: int | None, rate: str | None) -> Limit | None:
    """The checked limit of a task or queue (None when it has neither option)."""
    if concurrency is None and rate is None:
        return None
    if concurrency is not None and (type(concurrency) is not int or concurrency < 1):
        raise ConfigurationError(
            f"{owner}: concurrency={concurrency!r} must be an int >= 1 (the runs allowed at once)"
        )
    count, per = parse_rate(rate, owner) if rate is not None else (None, None)
    return Limit(concurrency, count, per)


def check_limit_key(owner: str, limit_key: object) -> Callable[..., Any] | None:
    if limit_key is not None and not callable(limit_key):
        raise ConfigurationError(
            f"{owner}: limit_key={limit_key!r} must be a callable (*args, **kwargs) -> str"
        )
    return limit_key


def compute_key(task: str, limit_key: Callable[..., Any], args: Any, kwargs: Any) -> str:
    """The key of one job, from the task's callable; a clear error naming the task when the
    callable raises or returns anything but a short string."""
    try:
        key = limit_key(*args, **kwargs)
    except Exception as exc:
        raise ValueError(
            f"limit_key of task {task!r} raised {type(exc).__name__}: {exc} (for args {args!r})"
        ) from exc
    return checked_key(task, key)


def checked_key(task: str, key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > KEY_MAX:
        raise ValueError(
            f"limit_key of task {task!r} must give a non-empty str of at most {KEY_MAX} "
            f"characters; it gave {key!r}"
        )
    return key


def bucket(queue: str, name: str, key: str | None) -> str:
    """The internal queue a limited job waits and runs in."""
    return f"{queue}{SEP}{name}" if key is None else f"{queue}{SEP}{name}{SEP}{key}"


@functools.lru_cache(maxsize=65536)
def split(stored: str) -> tuple[str, str | None, str | None]:
    """(queue, limit name, key) of a stored queue name; (queue, None, None) for a plain one."""
    if SEP not in stored:
        return stored, None, None
    parts = stored.split(SEP, 2)
    return parts[0], parts[1], parts[2] if len(parts) > 2 else None


def bucket_range(queue: str) -> tuple[str, str]:
    """Bounds (exclusive) that every bucket of ``queue`` sorts between, bytewise."""
    return queue + SEP, queue + chr(ord(SEP) + 1)


@dataclass(frozen=True, slots=True)
class Tokens:
    """A token bucket's state as a store keeps it: tokens held at ``stamp``."""

    tokens: float
    stamp: float


def available(limit: Limit, state: Tokens | None, now: float) -> float:
    """Tokens in the bucket at ``now`` (``math.inf`` without a rate)."""
    if limit.rate is None or not limit.per:
        return math.inf
    if state is None:
        return float(limit.burst)
    elapsed = max(0.0, now - state.stamp)
    return min(float(limit.burst), state.tokens + elapsed * limit.rate / limit.per)


def allowed(limit: Limit | None, active: int, state: Tokens | None, now: float) -> int:
    """How many more jobs of a bucket may start now."""
    if limit is None:
        return 1 << 30
    room = 1 << 30 if limit.concurrency is None else max(0, limit.concurrency - active)
    tokens = available(limit, state, now)
    # A hair over the float: 0.05 s at 20/s must make one whole token, not 0.999...
    return min(room, int(tokens + 1e-9) if tokens != math.inf else 1 << 30)


def spend(limit: Limit, state: Tokens | None, now: float, started: int) -> Tokens:
    """The bucket's state after ``started`` jobs started at ``now``."""
    return Tokens(available(limit, state, now) - started, max(now, state.stamp if state else now))


@dataclass(frozen=True, slots=True)
class Usage:
    """One limit as ``conveyor info``, ``top``, the dashboard and ``/metrics`` show it:
    summed over its keys."""

    queue: str
    name: str
    limit: Limit
    active: int
    waiting: int
    keys: int

    @property
    def label(self) -> str:
        return f"queue {self.queue}" if self.name == QUEUE_LIMIT else self.name

    @property
    def in_use(self) -> str:
        """Slots in use, out of how many (per key when keyed)."""
        if self.limit.concurrency is None:
            return str(self.active)
        return f"{self.active}/{self.limit.concurrency}" + (" per key" if self.keys else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "limit": self.name or None,
            "concurrency": self.limit.concurrency,
            "rate": self.limit.rate,
            "per": self.limit.per,
            "burst": self.limit.burst if self.limit.rate else None,
            "active": self.active,
            "waiting": self.waiting,
            "keys": self.keys,
        }


#: The columns every view of limits shows (``conveyor info``, ``top``, the dashboard).
USAGE_COLUMNS = ("limit", "queue", "allows", "running", "waiting", "keys")


def usage_row(u: Usage) -> list[str]:
    return [u.label, u.queue, u.limit.describe(), u.in_use, str(u.waiting), str(u.keys) if u.keys else "-"]


def usage(
    definitions: Mapping[tuple[str, str], Limit], counts: Mapping[str, Mapping[str, int]]
) -> list[Usage]:
    """Per limit: runs in progress and jobs waiting, from per-queue counts (buckets
    included) and the stored definitions."""
    active: dict[tuple[str, str], int] = {}
    waiting: dict[tuple[str, str], int] = {}
    keys: dict[tuple[str, str], int] = {}
    for stored, states in counts.items():
        queue, name, key = split(stored)
        ids = [(queue, QUEUE_LIMIT)] if (queue, QUEUE_LIMIT) in definitions else []
        if name is not None:
            ids.append((queue, name))
            if key is not None:
                keys[(queue, name)] = keys.get((queue, name), 0) + 1
        for ident in ids:
            active[ident] = active.get(ident, 0) + states.get("active", 0)
            waiting[ident] = waiting.get(ident, 0) + states.get("pending", 0)
    return [
        Usage(queue, name, limit, active.get((queue, name), 0), waiting.get((queue, name), 0),
              keys.get((queue, name), 0))
        for (queue, name), limit in sorted(definitions.items())
    ]  # fmt: skip


def fold(stats: Stats, definitions: Mapping[tuple[str, str], Limit]) -> Stats:
    """``stats`` with every bucket's counts added to its queue's, and the usage of each
    defined limit in ``limits``."""
    from dataclasses import replace

    queues: dict[str, dict[str, int]] = {}
    oldest: dict[str, float] = {}
    for stored, states in stats.queues.items():
        queue = split(stored)[0]
        merged = queues.setdefault(queue, {})
        for state, n in states.items():
            merged[state] = merged.get(state, 0) + n
    for stored, age in stats.oldest_pending.items():
        queue = split(stored)[0]
        oldest[queue] = max(oldest.get(queue, 0.0), age)
    return replace(stats, queues=queues, oldest_pending=oldest, limits=usage(definitions, stats.queues))


# -- the claim of a limited queue, shared by the SQL stores ------------------------------------
def _definition(queue: str, stored: str, limits: Mapping[str, Limit]) -> Limit | None:
    return None if stored == queue else limits.get(split(stored)[1] or "")


def rated(queue: str, limits: Mapping[str, Limit], names: Iterable[str]) -> list[str]:
    """The token buckets a claim of ``queue`` must read: its own, and those of the stored
    queues ``names`` whose limit has a rate."""
    found = [n for n in names if (d := _definition(queue, n, limits)) is not None and d.rate]
    whole = limits.get(QUEUE_LIMIT)
    if whole is not None and whole.rate:
        found.append(queue)
    return found


def ahead_allowed(bucket_name: str, served: set[str], limits: Mapping[str, Mapping[str, Limit]]) -> bool:
    """Whether jobs of the stored queue ``bucket_name`` may be taken ahead (``fetch_ahead``):
    a bucket of a served queue whose limits, its own and its queue's, are concurrency only.
    A rate meters starts, and a job taken ahead starts later than it is claimed."""
    queue, name, _ = split(bucket_name)
    if name is None or queue not in served:
        return False
    own = limits.get(queue, {})
    definition, whole = own.get(name), own.get(QUEUE_LIMIT)
    return (
        definition is not None
        and definition.concurrency is not None
        and not definition.rate
        and not (whole is not None and whole.rate)
    )


def rooms(
    queue: str,
    limits: Mapping[str, Limit],
    active: Mapping[str, int],
    ready: Iterable[str],
    tokens: Mapping[str, Tokens],
    want: int,
    now: float,
    turn: int = 0,
) -> tuple[int, dict[str, int]]:
    """(jobs the claim may take from ``queue`` in all, jobs it may take from each of its
    stored queues with ready jobs): the whole queue's limit counts every running job of the
    queue and its buckets; a bucket's limit counts its own.

    At most ``LOOK_AT_BUCKETS + 2 * want`` buckets take part, so that a claim's cost does not
    grow with the number of keys: when more have room, the ``turn``-th group of that many in
    name order, cyclically (the caller counts its claims: round robin across keys)."""
    cap = want
    whole = limits.get(QUEUE_LIMIT)
    if whole is not None:
        cap = min(cap, allowed(whole, sum(active.values()), tokens.get(queue), now))
    room: dict[str, int] = {}
    if cap <= 0:
        return 0, room
    for name in ready:
        n = min(cap, allowed(_definition(queue, name, limits), active.get(name, 0), tokens.get(name), now))
        if n > 0:
            room[name] = n
    most = LOOK_AT_BUCKETS + 2 * want
    names = sorted(name for name in room if name != queue)
    if len(names) > most:
        start = (turn * most) % len(names)
        keep = set((names[start:] + names[:start])[:most]) | {queue}
        room = {name: n for name, n in room.items() if name in keep}
    return cap, room


def spent(
    queue: str,
    limits: Mapping[str, Limit],
    tokens: Mapping[str, Tokens],
    started: Mapping[str, int],
    now: float,
) -> list[tuple[str, float, float]]:
    """(bucket, tokens, stamp) to store after a claim started ``started`` jobs per stored queue."""
    out: list[tuple[str, float, float]] = []
    for name, n in started.items():
        definition = _definition(queue, name, limits)
        if definition is not None and definition.rate:
            state = spend(definition, tokens.get(name), now, n)
            out.append((name, state.tokens, state.stamp))
    whole = limits.get(QUEUE_LIMIT)
    total = sum(started.values())
    if whole is not None and whole.rate and total:
        state = spend(whole, tokens.get(queue), now, total)
        out.append((queue, state.tokens, state.stamp))
    return out
