"""Between ``JobRecord`` and a job's hash: the one factory that makes a record of what the
server returns, and the arguments enqueue.lua stores."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from ...job import ACTIVE, COMPLETED, PENDING, RETRY, SCHEDULED, JobRecord
from .keys import DEFAULT
from .partitions import queue_of

#: A job hash's fields, in the order ``record`` reads them (see keys.py for their meaning).
FIELDS: Final = ("p", "m", "s", "ra", "a", "sa", "fa", "r", "e", "tb", "lb", "lu", "pg", "cx", "x", "u", "sn")
#: Values per job fetch.lua returns: id, then p m ra a e tb of its hash (after each queue's
#: position and count).
CLAIMED: Final = 7


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def meta_field(priority: int, max_attempts: int, timeout: str, created_at: str) -> str:
    """A job hash's field m: the settings no script changes (timeout "" for none)."""
    return f"{int(priority)}|{int(max_attempts)}|{timeout}|{created_at}"


def record(
    job_id: str,
    queue: str,
    payload: bytes,
    meta: bytes,
    state: str,
    run_at: bytes,
    attempts: bytes,
    started_at: float | None,
    finished_at: float | None,
    result: bytes | None,
    error: str | None,
    tb: str | None,
    locked_by: str | None,
    lease_until: float | None,
    progress: bytes | None = None,
    cancel: str | None = None,
) -> JobRecord:
    """The store's one way to a record: the hash's fields m, ra and a as the server returns
    them, the rest already read. Tolerates wrong values in a hand-written hash: the worker
    then sends that one job to ``dead`` with a reason instead of crashing.

    Positional, one call, no helper per field: this runs for every job a worker claims."""
    try:
        priority, max_attempts, timeout, created = meta.split(b"|")
        return JobRecord(
            job_id,
            queue,
            payload,
            int(priority),
            state,
            float(run_at),
            int(attempts),
            int(max_attempts),
            float(timeout) if timeout else None,
            float(created),
            started_at,
            finished_at,
            result,
            error,
            tb,
            locked_by,
            lease_until,
            progress,
            cancel,
        )
    except (TypeError, ValueError, AttributeError):
        # A wrong value somewhere: each field on its own, a default for what cannot be read.
        fields: list[bytes | None] = [
            *(meta.split(b"|") if isinstance(meta, bytes) else []),
            None,
            None,
            None,
            None,
        ]
        return JobRecord(
            job_id,
            queue,
            payload,
            _int(fields[0], 0),
            state,
            _float(run_at) or 0.0,
            _int(attempts, 0),
            _int(fields[1], 1),
            _float(fields[2] or None),
            _float(fields[3]) or 0.0,
            started_at,
            finished_at,
            result,
            error,
            tb,
            locked_by,
            lease_until,
            progress,
            cancel,
        )


def from_hash(job_id: str, queue: str, v: Sequence[Any]) -> JobRecord:
    """``record`` of a job hash read whole (its ``FIELDS``), found in ``queue`` (or a
    partition of it). complete.lua leaves a completed
    job's last lease and error in its hash (removing them would cost a command per job), so
    they are dropped here."""
    state = _text(v[2]) or PENDING
    if state == COMPLETED:
        v = [*v[:8], None, None, None, None, v[12], None, *v[14:]]
    payload = v[0] if isinstance(v[0], bytes) else b""
    started, finished, lease_until = _float(v[5]), _float(v[6]), _float(v[11])
    error, tb, locked_by = _text(v[8]), _text(v[9]), _text(v[10])
    found = record(
        job_id,
        queue_of(queue),
        payload,
        v[1],
        state,
        v[3],
        v[4],
        started,
        finished,
        v[7],
        error,
        tb,
        locked_by,
        lease_until,
        v[12] if isinstance(v[12], bytes) else None,
        _text(v[13]),
    )
    found.expires_at = _float(v[14])
    found.unique_key = _text(v[15])
    found.snoozes = _int(v[16], 0)
    return found


def _settings(meta: Any) -> tuple[int, int, float | None, float] | None:
    """A job hash's field m read as ``record`` reads it (None if it cannot be)."""
    try:
        priority, max_attempts, timeout, created = meta.split(b"|")
        return int(priority), int(max_attempts), float(timeout) if timeout else None, float(created)
    except (TypeError, ValueError, AttributeError):
        return None


def claimed(
    queues: Sequence[str],
    flat: Sequence[Any],
    worker: str,
    lease_until: float,
    now: float,
    held: dict[str, str],
    beaten: set[str],
) -> list[JobRecord]:
    """Records of jobs fetch.lua just claimed from ``queues`` (in the order it was given
    them). Per queue that gave jobs it returns the queue's position and count, then only
    what the caller cannot know of each job (the rest: state active, started now, held by
    ``worker`` until ``lease_until``). Each job's queue (a partition's own name: see
    partitions.py) goes to ``held``, the queue to ``beaten``; a record shows the name of
    the queue a partition belongs to."""
    records: list[JobRecord] = []
    # Jobs enqueued together share their hash's fields m and ra (a batch is written with
    # one created_at and run_at) and come out of a claim side by side: a value equal to the
    # last job's is not read again. Parsing a 17-digit float costs about 0.5 µs, and the
    # two of them were a third of a job's share of a claim. A value that does not read
    # takes the tolerant path of ``record``.
    last_m: Any = None
    last_ra: Any = None
    known: tuple[int, int, float | None, float] | None = None
    run_at: float | None = None
    at = 0
    while at < len(flat):
        name, count = queues[int(flat[at]) - 1], int(flat[at + 1])
        queue = queue_of(name)
        beaten.add(name)
        reply = iter(flat[at + 2 : at + 2 + CLAIMED * count])
        at += 2 + CLAIMED * count
        for job_id, p, m, ra, a, e, tb in zip(*([reply] * CLAIMED), strict=True):
            job = job_id.decode()
            held[job] = name
            error = None if e is None else e.decode(errors="replace")
            trace = None if tb is None else tb.decode(errors="replace")
            if m != last_m or known is None:
                known, last_m = _settings(m), m
            if ra != last_ra or run_at is None:
                run_at, last_ra = _float(ra), ra
            if known is not None and run_at is not None:
                try:
                    attempts = int(a)
                except (TypeError, ValueError):
                    pass
                else:
                    priority, max_attempts, timeout, created = known
                    records.append(
                        JobRecord(
                            job,
                            queue,
                            p,
                            priority,
                            ACTIVE,
                            run_at,
                            attempts,
                            max_attempts,
                            timeout,
                            created,
                            now,
                            None,
                            None,
                            error,
                            trace,
                            worker,
                            lease_until,
                        )
                    )
                    continue
            records.append(
                record(job, queue, p, m, ACTIVE, ra, a, now, None, None, error, trace, worker, lease_until)
            )
    return records


def claimed_limited(
    flat: Sequence[Any], worker: str, lease_until: float, now: float, held: dict[str, str], beaten: set[str]
) -> list[JobRecord]:
    """Records of jobs fetch_limited.lua just claimed, each led by its stored queue (the
    queue itself or one of its buckets), which goes to ``held`` and ``beaten`` as
    ``claimed`` does with a partition's name."""
    reply = iter(flat)
    records: list[JobRecord] = []
    for queue, job_id, p, m, ra, a, e, tb in zip(*([reply] * (CLAIMED + 1)), strict=True):
        name, job = queue.decode(), job_id.decode()
        held[job] = name
        beaten.add(name)
        error = None if e is None else e.decode(errors="replace")
        trace = None if tb is None else tb.decode(errors="replace")
        records.append(
            record(job, name, p, m, ACTIVE, ra, a, now, None, None, error, trace, worker, lease_until)
        )
    return records


def hash_items(reply: Any) -> list[tuple[Any, Any]]:
    """HGETALL's answer as (field, value) pairs, whether the client made it a dict (RESP3,
    or redis-py's own callback) or left it a flat list (RESP2 read raw, as redis-py 5 does
    in our pipelines)."""
    if isinstance(reply, dict):
        return list(reply.items())
    return list(zip(reply[::2], reply[1::2], strict=True))


def queue_names(values: Iterable[Any]) -> list[str]:
    """Queue names from SMEMBERS (a list in RESP2, a set in RESP3), default first."""
    names = [v.decode() if isinstance(v, bytes) else str(v) for v in values]
    return sorted(names, key=lambda q: (q != DEFAULT, q))


def split_by_queue(records: Iterable[JobRecord]) -> dict[str, list[JobRecord]]:
    by_queue: dict[str, list[JobRecord]] = {}
    for r in records:
        by_queue.setdefault(r.queue, []).append(r)
    return by_queue


def groups(batch: Sequence[JobRecord]) -> list[Any]:
    """enqueue.lua's arguments for ``batch``: runs of jobs that share their settings, each
    a header (count, priority, state, run_at, the hash's field m) and then the id and
    payload of every job of the run."""
    args: list[Any] = []
    times: dict[float, str] = {}  # a float's repr costs more than the rest of a job's arguments
    shared: tuple[Any, ...] = ()
    header = 0
    for r in batch:
        settings = (r.priority, r.state, r.run_at, r.max_attempts, r.timeout, r.created_at)
        if settings != shared:
            if header:
                args[header - 1] = (len(args) - header - 4) // 2
            shared = settings
            state = r.state if r.state in (SCHEDULED, PENDING, RETRY) else PENDING
            run_at = times.get(r.run_at) or times.setdefault(r.run_at, repr(float(r.run_at)))
            created = times.get(r.created_at) or times.setdefault(r.created_at, repr(float(r.created_at)))
            timeout = "" if r.timeout is None else repr(float(r.timeout))
            meta = meta_field(r.priority, r.max_attempts, timeout, created)
            args += (0, int(r.priority), state, run_at, meta)
            header = len(args) - 4
        args += (r.id, r.payload)
    args[header - 1] = (len(args) - header - 4) // 2
    return args
