"""The Redis store itself: the contract's hot path and housekeeping (the admin calls are in
admin.py). What each call sends is built from keys.py's names, runs as lua/ scripts through
wire.py, and comes back as records by records.py."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
import zlib
from collections.abc import Iterable, Sequence
from typing import Any, Final, NamedTuple

import orjson
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError

from ...errors import ConfigurationError, QueueFull, StoreFull
from ...job import (
    BAD_RUN_AT,
    EXPIRED,
    FAR_FUTURE,
    FINAL_STATES,
    PENDING,
    SCHEDULED,
    Failure,
    JobRecord,
    Stats,
    WorkerInfo,
)
from ...limits import SEP, Limit, split
from ...redaction import redact_url
from .. import prune
from ..aio import AsyncStore
from ..base import translate_errors
from . import workflows
from .admin import Admin
from .batches import Forwarder, RedisBatches
from .connect import RETRYABLE, UNAVAILABLE, RedisUnavailable, connect, explain, unreachable
from .keys import DEFAULT, WAKE_TOKENS, Keys
from .partitions import MAX_PARTITIONS, SEPARATOR, queue_of, shard, shards
from .periodic import Periodic
from .records import claimed, claimed_limited, groups, hash_items, meta_field, queue_names, split_by_queue
from .wire import Call, Wire

log = logging.getLogger("conveyor.redis")

WORKER_EXPIRY: Final = 60.0  # seconds of silence after which a worker is forgotten
LOST: Final = (
    "worker lost: its lease expired while the job was active (the worker was killed, crashed or stalled)"
)
#: How long fetch retries, with the same claim token, while Redis is unreachable. A claim
#: the server made but whose reply was lost comes back to the retry instead of staying
#: held by this worker (its heartbeat would keep extending it) until the worker exits.
FETCH_OUTAGE: Final = 5.0
#: Seconds a process trusts its list of queues with limits (see the SQLite store).
LIMITS_TTL: Final = 1.0
#: Buckets a claim of a limited queue looks at beyond two per job it asks for (the ready
#: set holds only buckets with a free slot, so most of them give a job).
LOOK_AT_BUCKETS: Final = 8
#: Seconds a waiter for a job blocks before it looks at the job again: what a lost wake-up
#: token (a failover, a job moved to another queue) costs it at most.
RECHECK: Final = 5.0
#: A job's state as watch.lua returns it, once it ended.
ENDED: Final = (b"completed", b"dead", b"cancelled")


#: Scripts that may make a job wait (write a queue's ``w:<p>``): on Cluster each call of one
#: is followed by its queue's hint (``_hint_calls``). recover.lua hints after the fact, for
#: the queues where it gave jobs back.
MAKES_WAIT: Final = frozenset(
    ("enqueue", "enqueue_each", "change", "act", "ticks", "release", "fail", "deps_add", "deps_release")
)
#: Cluster: seconds between two fetches that look at every queue, hinted or not (a hint lost
#: to a crash between a write and its hint, or to a race the tokens cannot tell, costs a job
#: at most this long while its worker is busy with other queues).
LOOK_AT_ALL: Final = 2.0
#: Cluster: seconds the hints and the registry read by a fetch are used again without being
#: read, while the first queue each fetch claims from fills the batch (a queue that gets jobs
#: meanwhile, before it in order, waits at most this long).
HINTS_FRESH: Final = 0.1
#: Cluster: queues a fetch counts at most in one round-trip (beside its claims).
COUNT_AT_ONCE: Final = 32
#: Cluster: due jobs a count (due.lua) or a claim's reply counts in a queue at most: more
#: than a fetch asks for, so that a queue known with fewer gives all it has.
COUNT_UP_TO: Final = 10_000
#: Cluster: seconds a queue's hint may name a token its queue never confirms (a stamp lost
#: with its write's connection) before a fetch that finds the queue empty drops it anyway.
HINT_GRACE: Final = 2.0


class EnqueuePlan(NamedTuple):
    """An enqueue as calls: ``first`` (Cluster: the id index and queue registry, sent
    first), then ``scripts``, one enqueue.lua per queue of ``by_queue``."""

    by_queue: dict[str, list[JobRecord]]
    fresh: list[str]
    first: list[Call]
    scripts: list[Call]
    #: Where the reply with the partition counts is: in ``first``'s, ``scripts``' or none.
    reread: str

    def forget(self, registered: dict[str, float]) -> None:
        """The calls failed: the registry may not have been written; send it again next time."""
        for queue in self.fresh:
            registered.pop(queue, None)

    def full(self, results: Sequence[Any]) -> set[int]:
        """Positions of the queues whose script refused the batch (queue full)."""
        return {i for i, r in enumerate(results) if r[0] == -1}

    def queue_full(self, full: set[int], results: Sequence[Any], limit: int | None) -> QueueFull:
        i = min(full)
        queue = list(self.by_queue)[i]
        return QueueFull(
            # A partition's limit is its own: see partitions.py.
            f"queue {queue!r} holds {results[i][1]} waiting jobs; adding {len(self.by_queue[queue])} "
            f"would pass its limit of {limit}"
        )


@translate_errors("Redis", UNAVAILABLE, unreachable, RedisUnavailable, explain)
class RedisBackend(RedisBatches, Admin, Periodic):
    """Jobs in Redis, shared by any number of processes and machines.

    ``replicas=N`` (or ``?replicas=N`` in the URL): enqueue and completion return only
    once N replicas have the write (``WAIT``), so an acknowledged job survives a failover.
    """

    #: ``fetch_ahead`` takes a run listed k times k jobs ahead, each after the one before
    #: (fetch_limited.lua): a worker fills a run's chain in one claim.
    chains_jobs_ahead = True

    def __init__(self, url: str, namespace: str, replicas: int | None = None) -> None:
        if "{" in namespace or "}" in namespace:
            raise ConfigurationError(
                f"namespace {namespace!r} must not contain {{ or }}: the Redis store uses them "
                "as hash tags to keep each queue in one Cluster slot"
            )
        self.url = url
        self.ns = namespace
        connected = connect(url, replicas)
        self._wire = Wire(
            connected.client,
            connected.cluster,
            connected.sentinel,
            connected.replicas,
            connected.replicas_timeout,
        )
        self.client, self.cluster = self._wire.client, self._wire.cluster
        self.keys = Keys(namespace)
        # Queues this process registered lately: enqueue skips re-registering them.
        self._registered: dict[str, float] = {}
        # Queue of each job this process fetched and has not acknowledged: complete/fail
        # find the job's keys without asking the id index (no extra round-trip).
        self._held: dict[str, str] = {}
        self._known: list[str] = []
        # Queues this process held jobs of since its last heartbeat: see heartbeat.
        self._beaten: set[str] = set()
        # Partitioned queues and their counts (partitions.py), read again every 10 s; and
        # a turn that deals jobs out over the partitions and picks where a fetch starts.
        self._partitions: dict[str, int] = {}
        self._partitions_read = -1e9
        self._partitions_known = False  # read once before the first fetch: see _fetch
        self._fetch_keys: dict[tuple[str, ...], tuple[list[str], list[str]]] = {}
        self._known_raw: Any = None
        self._known_partitioned = False
        # Cluster: the hints last read ({ns}:hints: queue -> token), queues found with no job
        # due (queue -> (the token then, when to look again)), when each token was first
        # seen, the due jobs each queue was last found with, and the next look at every queue.
        self._hints: dict[str, bytes] = {}
        self._hints_count: bytes | None = None  # {ns}:hintv when the hints were read
        self._registry_size: int | None = None  # {ns}:queues's size when it was read
        self._quiet: dict[str, tuple[bytes | None, float]] = {}
        self._hint_seen: dict[str, tuple[bytes, float]] = {}
        self._due: dict[str, int] = {}
        self._typical = 64.0  # the due jobs a queue is found with, a running mean
        self._head_filled = False  # did the last fetch's first claim fill it?
        self._hints_fresh = -1e9  # (monotonic) until when the hints read last are fresh
        self._due_hint: dict[str, bytes | None] = {}  # the stamp each of _due was learned under
        self._claims: tuple[str, set[str]] = ("", set())  # a fetch's token, the queues it claimed from
        self._drops: list[Any] = []  # (queue, token) to drop from the hints, the same
        self._look_at_all = -1e9
        if self.cluster:
            self._wire.hints = self._hint_calls
        self._turn = itertools.count()
        self._offset = (-1e9, 0.0)  # (when measured, seconds): see _clock_offset
        self._limited: set[str] = set()  # queues with limits, read at _limited_read
        self._limited_read = -1e9
        self._batched: dict[str, float] = {}  # see batches.py
        self._forwarding: Forwarder | None = None

    # -- plumbing -------------------------------------------------------------------------
    def _queues(self) -> list[str]:
        """Every queue ever used in this namespace, ``default`` first."""
        self._learn(self.client.smembers(self.keys.queues))
        return list(self._known)

    def _learn(self, registry: Any) -> None:
        """The registry as SMEMBERS returned it: sorted again only when it changed."""
        if registry != self._known_raw:
            self._known_raw = registry
            self._known = queue_names(registry)
            self._known_partitioned = any(SEPARATOR in q for q in self._known)

    def _unregistered(self, queues: Iterable[str]) -> list[str]:
        """Queues not added to the registry by this process lately, now marked as added (a
        queue is never unregistered, so re-adding it every 10 s only guards against a
        flushed server). A bucket stands for its queue: buckets are never in the registry."""
        fresh = [q for q in queues if not self._is_registered(q)]
        if any(SEP in q for q in fresh):
            fresh = [q for q in dict.fromkeys(split(q)[0] for q in fresh) if not self._is_registered(q)]
        now = time.monotonic()
        for q in fresh:
            self._registered[q] = now
        return fresh

    def _is_registered(self, queue: str) -> bool:
        return time.monotonic() - self._registered.get(queue, -1e9) <= 10.0

    # -- partitions (partitions.py) --------------------------------------------------------
    def partition(self, queue: str, count: int) -> int:
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PARTITIONS:
            raise ConfigurationError(
                f"partitions={count!r} for queue {queue!r}: a whole number from 1 to {MAX_PARTITIONS}"
            )
        (now_in_force,) = self._wire.run([Call("partition", self.keys.partition(), [queue, count])])
        self._partitions_read = -1e9  # read them all again at the next call that can
        if int(now_in_force) > 1:
            self._partitions[queue] = int(now_in_force)
        return int(now_in_force)

    def _read_partitions(self, raw: Any) -> None:
        counts: dict[str, int] = {}
        for name, value in hash_items(raw):
            try:
                count = int(value)
            except ValueError:
                log.warning("ignoring partition count %r of queue %r", value, name)
                continue
            if count > 1:
                counts[name.decode() if isinstance(name, bytes) else str(name)] = min(count, MAX_PARTITIONS)
        self._partitions = counts
        self._partitions_read = time.monotonic()
        self._partitions_known = True

    def _partitions_stale(self) -> list[Call]:
        """The call that reads the partition counts again, if they are older than 10 s (sent
        in the pipeline of a call the store makes anyway: never a round-trip of its own)."""
        if time.monotonic() - self._partitions_read <= 10.0:
            return []
        return [Call(None, "HGETALL", self.keys.partitions)]

    def _shard(self, queue: str) -> str:
        """Where the next job of ``queue`` goes: the queue, or its partitions in turn."""
        count = self._partitions.get(queue)
        return queue if count is None else shard(queue, next(self._turn) % count)

    def _split(self, records: Iterable[JobRecord]) -> dict[str, list[JobRecord]]:
        """``records`` by the queue, or partition, each goes to."""
        if not self._partitions:
            return split_by_queue(records)
        by_queue: dict[str, list[JobRecord]] = {}
        for r in records:
            by_queue.setdefault(self._shard(r.queue), []).append(r)
        return by_queue

    def _shards(self, queues: Sequence[str], turn: int) -> list[str]:
        """``queues`` with every partitioned one replaced by its partitions, from partition
        ``turn`` round (a fetch's own: workers that fetch together start apart)."""
        counts = self._partitions
        if not counts:
            return list(queues)
        names: list[str] = []
        for q in queues:
            count = counts.get(q)
            names += [q] if count is None else shards(q, count, turn)
        return names

    def _order(self, turn: int) -> list[str]:
        """Every queue and partition to serve when the worker serves all: "default" (even
        if missing from the registry), then the registry's names as last read, a queue's
        partitions together from partition ``turn`` round."""
        known = self._known if self._known[:1] == [DEFAULT] else [DEFAULT, *self._known]
        if not self._partitions and not self._known_partitioned:
            return known
        names: list[str] = []
        for q in dict.fromkeys(queue_of(name) for name in known):
            names += self._shards([q], turn) if q in self._partitions else [q]
        extra = set(known) - set(names)  # partitions past the count (never shrinks; robust)
        return names + [q for q in known if q in extra]

    def _partition_counts(self) -> dict[str, int]:
        """The partition counts, read again first if older than 10 s (admin calls)."""
        if self._partitions_stale():
            self._read_partitions(self.client.hgetall(self.keys.partitions))
        return self._partitions

    # -- admin calls on a partitioned queue: every partition, shown as the queue ----------
    def stats(self, now: float) -> Stats:
        found = super().stats(now)
        if not any(SEPARATOR in q for q in found.queues):
            return found
        queues: dict[str, dict[str, int]] = {}
        oldest: dict[str, float] = {}
        for name, counts in found.queues.items():
            total = queues.setdefault(queue_of(name), {})
            for state, n in counts.items():
                total[state] = total.get(state, 0) + n
        for name, age in found.oldest_pending.items():
            oldest[queue_of(name)] = max(age, oldest.get(queue_of(name), 0.0))
        paused = frozenset(queue_of(q) for q in found.paused)
        return dataclasses.replace(found, queues=queues, paused=paused, oldest_pending=oldest)

    def _listing_queues(self, queue: str | None, now: float) -> list[str]:
        # A partitioned queue is listed as one: its partitions' pages merged.
        count = None if queue is None else self._partition_counts().get(queue)
        if queue is None or count is None:
            return super()._listing_queues(queue, now)
        return list(shards(queue, count))

    def set_paused(self, queue: str, paused: bool) -> None:
        names = shards(queue, self._partition_counts().get(queue, 1))
        for name in names:
            super().set_paused(name, paused)
        if self.cluster and not paused:  # its jobs may be claimed again: hinted (_fetch_slots)
            self._wire.run(self._hints_of(names))

    def _locate(self, ids: Sequence[str]) -> dict[str, list[str]]:
        """Job ids grouped by queue: from this process's fetches, else the id index or the
        default queue (asked together), else (an index entry lost) a look in every queue,
        repairing the index."""
        by_queue: dict[str, list[str]] = {}
        unknown: list[str] = []
        for job_id in ids:
            queue = self._held.get(job_id)
            if queue is None:
                unknown.append(job_id)
            else:
                by_queue.setdefault(queue, []).append(job_id)
        if unknown:
            found, *in_default = self._wire.run(
                [
                    Call(None, "HMGET", self.keys.where, *unknown),
                    *(Call(None, "EXISTS", self.keys.job(DEFAULT, i)) for i in unknown),
                ]
            )
            lost: list[str] = []
            for job_id, queue, default_has_it in zip(unknown, found, in_default, strict=True):
                if queue is not None:
                    by_queue.setdefault(queue.decode(), []).append(job_id)
                elif default_has_it:
                    by_queue.setdefault(DEFAULT, []).append(job_id)
                else:
                    lost.append(job_id)
            if lost:
                for job_id, queue in self._search(lost).items():
                    by_queue.setdefault(queue, []).append(job_id)
        return by_queue

    def _search(self, ids: Sequence[str]) -> dict[str, str]:
        """Which queue holds each job, looking in every queue but the default one."""
        queues = [q for q in self._all_queues() if q != DEFAULT]
        if not queues:
            return {}
        calls = [Call(None, "EXISTS", self.keys.job(q, i)) for i in ids for q in queues]
        exists = self._wire.run(calls)
        found: dict[str, str] = {}
        for n, flag in enumerate(exists):
            if flag:
                found.setdefault(ids[n // len(queues)], queues[n % len(queues)])
        if found:
            self.client.hset(self.keys.where, mapping=found)
        return found

    def open_async(self) -> AsyncStore:
        from .aio import AsyncRedisStore

        return AsyncRedisStore(self)

    # -- the hot path ---------------------------------------------------------------------
    def enqueue(self, records: Sequence[JobRecord], max_queue_length: int | None = None) -> None:
        if len(records) == 1 and max_queue_length is None and not self.cluster and not self._wire.replicas:
            r = records[0]
            name = self._shard(r.queue)
            if SEP not in r.queue and self._is_registered(name) and self._enqueue_one(r, name, time.time()):
                return
        if not records:
            return
        plan = self.plan_enqueue(records, max_queue_length)
        try:
            replies = self._wire.run(plan.first) if plan.first else []
            results = self._stored(plan.scripts, [], plan.by_queue)
        except BaseException:
            plan.forget(self._registered)
            raise
        results = self.enqueued(plan, replies, results)
        full = plan.full(results)
        if full:
            self._undo(plan.by_queue, full)
            raise plan.queue_full(full, results, max_queue_length)

    def plan_enqueue(
        self,
        records: Sequence[JobRecord],
        max_queue_length: int | None,
        by_queue: dict[str, list[JobRecord]] | None = None,
        grouped: dict[str, list[Any]] | None = None,
    ) -> EnqueuePlan:
        """What ``enqueue`` sends, for this client or the async one (``aio.py``) to send, and
        to hand back to ``enqueued``: raises ``QueueFull`` at once for a batch no queue could
        take. ``by_queue``: the records already split by the queue (or partition) each goes
        to (``batches.py`` marks them there first); ``grouped``: each queue's enqueue.lua
        arguments from ``groups``, already built (the async client builds them in slices)."""
        if by_queue is None:
            by_queue = self._split(records)
        if max_queue_length is not None:
            for queue, batch in by_queue.items():
                # A queue can never take more than its limit at once: refuse before writing.
                if len(batch) > max_queue_length:
                    raise QueueFull(
                        f"queue {queue!r} may hold {max_queue_length} waiting jobs; adding "
                        f"{len(batch)} at once would pass that limit"
                    )
        fresh = self._unregistered(by_queue)
        scripts = self._enqueue_calls(by_queue, fresh, max_queue_length, grouped)
        parents = self._register_parents(by_queue, fresh)
        # The partition counts are read again with the registry, in the same round-trip.
        reread = [Call(None, "HGETALL", self.keys.partitions)] if fresh else []
        first: list[Call] = []
        if self.cluster:
            # Index and registry first, by their own call: see the module docstring.
            index = [x for q, batch in by_queue.items() if q != DEFAULT for r in batch for x in (r.id, q)]
            if fresh:
                first += [Call(None, "SADD", self.keys.queues, *fresh), *reread]
            if index:
                first.append(Call(None, "HSET", self.keys.where, *index))
            return EnqueuePlan(by_queue, fresh, first, scripts, "first" if fresh else "")
        # A queue whose jobs all went to its buckets is registered before them.
        return EnqueuePlan(by_queue, fresh, parents, scripts + reread, "scripts" if fresh else "")

    def enqueued(self, plan: EnqueuePlan, replies: list[Any], results: list[Any]) -> list[Any]:
        """The replies of a plan's calls (``first``, then ``scripts``) taken in: the partition
        counts read with them; returns the enqueue scripts' own results."""
        if plan.reread == "first":
            self._read_partitions(replies[1])
        elif plan.reread == "scripts":
            self._read_partitions(results[-1])
            return results[:-1]
        return results

    def _register_parents(self, by_queue: dict[str, list[JobRecord]], fresh: list[str]) -> list[Call]:
        """The registry entry of a queue whose jobs of this batch all went to its buckets
        (a bucket registers itself with its queue, never in the registry)."""
        parents = [q for q in fresh if q not in by_queue]
        return [Call(None, "SADD", self.keys.queues, *parents)] if parents else []

    def _enqueue_calls(
        self,
        by_queue: dict[str, list[JobRecord]],
        fresh: list[str],
        max_queue_length: int | None,
        grouped: dict[str, list[Any]] | None = None,
    ) -> list[Call]:
        """One enqueue.lua call per queue; ``fresh`` queues are added to the registry."""
        now = time.time()
        limit = "" if max_queue_length is None else max_queue_length
        calls: list[Call] = []
        for queue, batch in by_queue.items():
            keys = self.keys.enqueue(queue, self.cluster)
            args = [
                self.keys.prefix(queue),
                limit,
                now,
                WAKE_TOKENS,
                queue,
                "b" if SEP in queue else "1" if queue in fresh else "",
                *(groups(batch) if grouped is None else grouped[queue]),
            ]
            calls.append(Call("enqueue", keys, args))
        return calls

    def enqueue_stream(self, chunks: Iterable[Sequence[JobRecord]]) -> None:
        """``enqueue`` of a large batch (no queue limit) whose jobs the caller builds as it
        goes: each chunk is written to the server as soon as it is built, so the server
        stores one chunk while Python builds the next (built whole, then stored whole, the
        two took turns). The replies are read at the end: still one round-trip.

        Each chunk is one script call per queue, stored whole or not at all, and safe to
        send again; if the client dies part-way, the chunks sent before stay stored.
        """
        if self.cluster:  # a pipeline across slots may go to several nodes: all at once
            self.enqueue([r for chunk in chunks for r in chunk])
            return
        calls: list[Call] = []
        ids_of_call: list[list[str]] = []
        registered: list[str] = []
        conn = self._wire.own_connection()
        writing = True
        try:
            for chunk in chunks:
                by_queue = self._split(chunk)
                fresh = self._unregistered(by_queue)
                registered += fresh
                if parents := self._register_parents(by_queue, fresh):
                    self._wire.run(parents)  # once per queue and process, before its jobs
                added = self._enqueue_calls(by_queue, fresh, None)
                calls += added
                ids_of_call += [[r.id for r in batch] for batch in by_queue.values()]
                if writing:
                    try:
                        Wire.write(conn, self._wire.commands(added))
                    except RETRYABLE:
                        # Stop writing; what was built is sent again below, with retries.
                        conn.disconnect()
                        writing = False
            results: list[Any] | None = None
            if writing:
                try:
                    results = Wire.replies(conn, len(calls))
                except RETRYABLE:
                    conn.disconnect()
            if results is None:
                results = self._wire.pipeline(calls)  # every call is safe to send twice
            results = self._wire.rerun_missing(calls, results)
            self._refuse_if_full(results, ids_of_call)
            self._wire.settle(calls, results)
            if self._wire.replicas:
                self._wire.pipeline([], durable=True)
        except BaseException:
            if writing:  # replies may be left unread: never reuse the connection as it is
                conn.disconnect()
            for queue in registered:  # the registry may not have been written: send it again
                self._registered.pop(queue, None)
            raise

    def _stored(
        self, scripts: list[Call], reread: list[Call], by_queue: dict[str, list[JobRecord]]
    ) -> list[Any]:
        """Run the enqueue ``scripts`` (and ``reread`` behind them), durably. If one queue's
        part hit maxmemory, what the others stored is taken back, so the call stays all or
        none (translate_errors makes the error ``StoreFull``)."""
        try:
            return self._wire.run(scripts + reread, durable=True)
        except OutOfMemoryError:
            if len(scripts) > 1:
                self._undo(by_queue, set())
            raise

    def _refuse_if_full(self, results: list[Any], ids_of_call: list[list[str]]) -> None:
        """A streamed batch that met maxmemory: ``StoreFull`` naming the jobs that were
        stored (each chunk of each queue is stored whole or not at all)."""
        if not any(isinstance(r, OutOfMemoryError) for r in results):
            return
        stored = [
            i
            for r, ids in zip(results, ids_of_call, strict=True)
            if not isinstance(r, Exception)
            for i in ids
        ]
        total = sum(len(ids) for ids in ids_of_call)
        reason = next(r for r in results if isinstance(r, OutOfMemoryError))
        raise StoreFull(
            f"Redis at {redact_url(self.url)} is out of memory (maxmemory, noeviction: {reason}): "
            f"{len(stored)} of {total} jobs of this batch were stored before it filled up (their "
            "ids are in this error's .stored), the rest were not. Let the workers drain it, then "
            "enqueue the rest again",
            stored,
        )

    def _enqueue_one(self, r: JobRecord, name: str, now: float) -> bool:
        """One pending or scheduled job of a registered queue (or partition ``name`` of
        it), by enqueue_one.lua; False for any other state."""
        if r.state == PENDING:
            due = "1" if r.run_at <= now else ""
        elif r.state == SCHEDULED:
            due = ""
        else:
            return False
        keys = self.keys.enqueue_one(name, r.id, int(r.priority))
        timeout = "" if r.timeout is None else repr(float(r.timeout))
        args = (
            r.payload,
            int(r.priority),
            r.state,
            repr(float(r.run_at)),
            meta_field(r.priority, r.max_attempts, timeout, repr(float(r.created_at))),
            r.id,
            name,
            due,
            WAKE_TOKENS,
        )
        # The commonest call of all, sent without the general path's bookkeeping.
        command = ("EVALSHA", self._wire.sha("enqueue_one"), len(keys), *keys, *args)
        reply = self._wire.on_own_connection(lambda conn: Wire.send(conn, (command,)))[0]
        if isinstance(reply, Exception):  # NOSCRIPT: load it and run again; else raise
            self._wire.run([Call("enqueue_one", keys, args)])
        return True

    def _undo(self, by_queue: dict[str, list[JobRecord]], full: set[int]) -> None:
        """A queue of the batch was refused: take back what the others stored."""
        self._wire.run(self.undo_calls(by_queue, full))

    def undo_calls(self, by_queue: dict[str, list[JobRecord]], full: set[int]) -> list[Call]:
        """A queue of the batch was full: the calls that take back what the others stored
        (all or none)."""
        calls: list[Call] = []
        for n, (queue, batch) in enumerate(by_queue.items()):
            ids = [r.id for r in batch]
            if n not in full:
                args = [self.keys.prefix(queue), "delete", time.time(), "", "", *ids]
                calls.append(Call("act", self.keys.act(queue), args))
            calls.append(Call(None, "HDEL", self.keys.where, *ids))
        return calls

    def fetch(
        self, queues: Sequence[str] | None, limit: int, worker: str, lease: float, now: float
    ) -> list[JobRecord]:
        if limit <= 0:
            return []
        deadline = time.monotonic() + FETCH_OUTAGE
        pause = 0.1
        # One token for every attempt: a claim whose reply was lost is returned again.
        token = os.urandom(8).hex()
        while True:
            try:
                return self._fetch(queues, limit, worker, lease, now, token)
            except RETRYABLE as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("fetch failed, retrying in %.1f s: %s", pause, exc)
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def fetch_ahead(
        self,
        queues: Sequence[str] | None,
        limit: int,
        worker: str,
        lease: float,
        now: float,
        runs: Sequence[tuple[str, str, int]],
    ) -> tuple[list[JobRecord], dict[str, str]]:
        after: dict[str, str] = {}
        deadline = time.monotonic() + FETCH_OUTAGE
        pause = 0.1
        token = os.urandom(8).hex()  # one for every attempt, as fetch's
        while True:
            try:
                got = self._fetch_limited(
                    queues, limit, worker, now + lease, now, token, self._limited_now(), runs, after
                )
                return got, after
            except RETRYABLE as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("fetch failed, retrying in %.1f s: %s", pause, exc)
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _fetch_limited(
        self,
        queues: Sequence[str] | None,
        limit: int,
        worker: str,
        lease_until: float,
        now: float,
        token: str,
        limited: set[str],
        runs: Sequence[tuple[str, str, int]] = (),
        after: dict[str, str] | None = None,
    ) -> list[JobRecord]:
        """The claim when a served queue has limits: queue by queue, in order, a limited one
        by fetch_limited.lua (its buckets and its own jobs, in one script, and the jobs taken
        ahead of ``runs`` in its buckets), the others by fetch.lua one at a time. (Limited
        queues are never partitioned.)"""
        order = list(queues) if queues is not None else self._queues()
        got: list[JobRecord] = []
        for queue in order:
            want = max(0, limit - len(got))
            ahead = [x for run in runs if split(run[0])[0] == queue for x in run] if queue in limited else []
            if want <= 0 and not ahead:
                continue
            if queue in limited:
                keys = self.keys.fetch_limited(queue, worker)
                looked_at = 2 * want + LOOK_AT_BUCKETS
                args = [
                    self.keys.prefix(queue),
                    want,
                    worker,
                    lease_until,
                    now,
                    token,
                    60000,
                    queue,
                    looked_at,
                    *ahead,
                ]
                flat, pairs = self._wire.script("fetch_limited", keys, args)
                got += claimed_limited(flat, worker, lease_until, now, self._held, self._beaten)
                if after is not None:
                    after.update((pairs[i].decode(), pairs[i + 1].decode()) for i in range(0, len(pairs), 2))
            else:
                names = self._shards([queue], 0)
                call = self._fetch_call(names, want, worker, lease_until, now, token)
                flat = self._wire.script("fetch", *call.args)
                got += claimed(names, flat, worker, lease_until, now, self._held, self._beaten)
        return got

    def _fetch_call(
        self,
        queues: Sequence[str],
        limit: int,
        worker: str,
        lease_until: float,
        now: float,
        token: str,
        left_after: bool = False,
    ) -> Call:
        """One fetch.lua call over ``queues`` in order (a single queue on Cluster, where a
        script stays in one slot; ``left_after``: its reply ends with what is left in it)."""
        # A worker sends the same queues fetch after fetch: their names are built once.
        names = (worker, *queues)
        built = self._fetch_keys.get(names)
        if built is None:
            built = (self.keys.fetch(queues[0], worker), [self.keys.prefix(q) for q in queues])
            if len(self._fetch_keys) > 64:  # (partitions: one entry per starting partition)
                self._fetch_keys.clear()
            self._fetch_keys[names] = built
        keys, prefixes = built
        # The claim is remembered for a minute: long enough for redis-py to re-send.
        more = ("?", max(limit, COUNT_UP_TO)) if left_after else prefixes[1:]
        return Call("fetch", keys, [prefixes[0], limit, worker, lease_until, now, token, 60000, "", *more])

    # -- limits ---------------------------------------------------------------------------
    def _limited_now(self) -> set[str]:
        """Queues with limits, read again at most every LIMITS_TTL: a claim of one of them
        runs fetch_limited.lua, which reads the definitions themselves in the queue's slot."""
        if time.monotonic() - self._limited_read > LIMITS_TTL:
            self._limited = set(queue_names(self.client.smembers(self.keys.limited)))
            self._limited_read = time.monotonic()
        return self._limited

    def set_limit(self, queue: str, name: str, limit: Limit | None) -> None:
        if limit is None:
            self.client.hdel(self.keys.limits(queue), name)
            return
        # Registry last: a claim that finds the queue limited then finds its definitions.
        self.client.hset(self.keys.limits(queue), name, limit.encode())
        self.client.sadd(self.keys.limited, queue)
        self.client.sadd(self.keys.queues, queue)
        self._limited_read = -1e9

    def limits(self) -> dict[tuple[str, str], Limit]:
        queues = queue_names(self.client.smembers(self.keys.limited))
        found: dict[tuple[str, str], Limit] = {}
        if not queues:
            return found
        replies = self._wire.run([Call(None, "HGETALL", self.keys.limits(q)) for q in queues])
        for queue, flat in zip(queues, replies, strict=True):
            for name, text in hash_items(flat):
                definition = Limit.decode(text)
                if definition is not None:
                    found[(queue, name.decode() if isinstance(name, bytes) else str(name))] = definition
        return found

    def _queues_of(self, queue: str) -> list[str]:
        """``queue`` and, when it has limits, its buckets (admin listings and actions)."""
        if queue not in self._limited_now():
            return [queue]
        return [queue, *sorted(queue_names(self.client.smembers(self.keys.buckets(queue))))]

    def _all_queues(self) -> list[str]:
        """Every queue and every bucket of each (recover, listings and counts see buckets;
        a claim reaches them only through their queue)."""
        queues = self._queues()
        limited = [q for q in queues if q in self._limited_now()]
        if not limited:
            return queues
        found = list(queues)
        for reply in self._wire.run([Call(None, "SMEMBERS", self.keys.buckets(q)) for q in limited]):
            found += sorted(queue_names(reply))
        return found

    def _fetch(
        self, queues: Sequence[str] | None, limit: int, worker: str, lease: float, now: float, token: str
    ) -> list[JobRecord]:
        lease_until = now + lease
        # Where among a queue's partitions this fetch starts: from the token, so a fetch sent
        # again walks them in the same order and gets its claims back.
        turn = zlib.crc32(token.encode())
        if not self._partitions_known:  # once a process: its first fetch serves every partition
            self._read_partitions(self.client.hgetall(self.keys.partitions))
        limited = self._limited_now()
        if limited and (queues is None or not limited.isdisjoint(queues)):
            return self._fetch_limited(queues, limit, worker, lease_until, now, token, limited)
        if self.cluster:
            return self._fetch_slots(queues, limit, worker, lease_until, now, token, turn)
        held, beaten = self._held, self._beaten
        reread = self._partitions_stale()
        if queues is None:
            # The queues known from the last fetch, and the registry to see new ones, in
            # one round-trip; a queue new since then is looked at if the batch has room.
            order = self._order(turn)
            known, flat, *counts = self._wire.run(
                [
                    Call(None, "SMEMBERS", self.keys.queues),
                    self._fetch_call(order, limit, worker, lease_until, now, token),
                    *reread,
                ]
            )
            got = claimed(order, flat, worker, lease_until, now, held, beaten)
            if counts:
                self._read_partitions(counts[0])
            self._learn(known)
            served = set(order)
            new = [q for q in self._order(turn) if q not in served]
            if new and len(got) < limit:
                call = self._fetch_call(new, limit - len(got), worker, lease_until, now, token)
                got += claimed(
                    new, self._wire.script("fetch", *call.args), worker, lease_until, now, held, beaten
                )
            return got
        names = self._shards(queues, turn)
        flat, *counts = self._wire.run(
            [self._fetch_call(names, limit, worker, lease_until, now, token), *reread]
        )
        if counts:
            self._read_partitions(counts[0])
        return claimed(names, flat, worker, lease_until, now, held, beaten)

    def _hint_calls(self, calls: Sequence[Call]) -> list[Call]:
        """Cluster: what follows ``calls`` in their pipeline: for each queue a call of which
        may make a job wait, its stamp (``{ns:q}:hint``, in its slot: written after the call
        on the same connection) and its hint in ``{ns}:hints``, with one new token."""
        queues: list[str] = []
        for call in calls:
            if call.script in MAKES_WAIT:
                queue = self._queue_of_key(str(call.args[0][0]))
                if queue is not None and queue not in queues:
                    queues.append(queue)
        return self._hints_of(queues) if queues else []

    def _queue_of_key(self, key: str) -> str | None:
        """The queue of a key ``{ns:q}:…``; None for a bucket's (never fetched by
        ``_fetch_slots``) or a namespace key."""
        start = len(self.ns) + 2
        end = key.find("}", start)
        if not key.startswith("{") or end < 0 or key.startswith(":b:", end + 1):
            return None
        return key[start:end]

    def _hints_of(self, queues: Sequence[str]) -> list[Call]:
        token = os.urandom(6).hex()
        calls = [Call(None, "SET", self.keys.prefix(q) + "hint", token) for q in queues]
        calls.append(Call(None, "HSET", self.keys.hints, *(x for q in queues for x in (q, token))))
        # After the HSET, on the same connection: a fetch that sees the count raised reads
        # hints at least this new (hints_read.lua).
        calls.append(Call(None, "INCR", self.keys.hintv))
        # This process's own fetches know at once (not at their next read of the hints) that
        # these queues may hold more than they were last found with.
        hint = token.encode()
        for q in queues:
            self._hints[q] = hint
            self._due.pop(q, None)
            self._quiet.pop(q, None)
        return calls

    def _fetch_slots(
        self,
        queues: Sequence[str] | None,
        limit: int,
        worker: str,
        lease_until: float,
        now: float,
        token: str,
        turn: int,
    ) -> list[JobRecord]:
        """``_fetch`` on Cluster, where each queue is a slot of its own and a script stays
        in one slot, so one call cannot walk the queues: a round-trip claims from the queues
        in order whose due jobs are known (a claim's reply ends with what is left in its
        queue, a count of due.lua says it too) and from the first one after them that may
        have jobs, for the rest; if the jobs that one was last seen with may not fill the
        batch, it counts the next ones instead (due.lua), all in one pipeline (one round-trip
        to each node, in parallel); what is still free is claimed from the queues counted,
        in order, in the next round-trip, never one per queue. The first round-trip claims
        only while the hints it goes by were read within ``HINTS_FRESH`` (a queue before
        those it claims from may have jobs the hints do not show yet), else from the first
        queue of all only.

        Which queues may have jobs comes from the hints (``{ns}:hints``): every write that
        makes a job wait leaves a new token there and, behind the write in the queue's own
        slot, in ``{ns:q}:hint``. A queue found with nothing waiting loses its hint, if the
        hint is still the token the queue holds (the write it announces is in) and still the
        one read (no write came since: ``hint_drop.lua``); a queue with jobs none of which is
        due is passed over until the first is, or its hint changes. So an empty queue costs
        a fetch nothing. Every ``LOOK_AT_ALL`` seconds a fetch looks at every queue, hinted
        or not: the hints are a shortcut, the queues the truth. A queue that gave less than
        it was known with (another worker was quicker) leaves the batch short, never over."""
        order = self._shards(queues, turn) if queues is not None else self._order(turn)
        held, beaten = self._held, self._beaten
        every = time.monotonic() >= self._look_at_all
        if every:
            self._look_at_all = time.monotonic() + LOOK_AT_ALL
        fresh = time.monotonic() < self._hints_fresh
        # A fetch sent again (its reply lost, or a later step of it failed) asks the queues
        # it claimed from with this token again, counting them first: fetch.lua gives the
        # same token its jobs again, never more, and due.lua counts them.
        if self._claims[0] != token:
            self._claims = (token, set())
        redo = set(self._claims[1])
        got: list[JobRecord] = []
        tried: set[str] = set()
        known: dict[str, int] = {}  # queues counted in this fetch with due jobs: how many
        claimed_from: set[str] = set()
        ran_dry: int | None = None  # the jobs the last queue that ran dry in this fetch gave
        read = False  # the hints and the registry, in this fetch
        for step in range(4):
            room = limit - len(got)
            claims: list[tuple[str, int]] = []
            counted: list[str] = []
            # One pass over the queues in order. Those counted earlier in this fetch, and
            # those whose due jobs an earlier fetch learned while their hint is still the
            # same (no write since: the count may only have fallen, or grown by jobs coming
            # due), are claimed from by their counts; in the first step only while the hints
            # are fresh. The first one not tried yet that may have jobs and is not known is
            # asked for the rest (it may well fill the batch alone): in the first step only
            # if the hints are fresh or it is the first queue of all; after it, none is
            # claimed from in this step. The next ones are counted while the jobs they were
            # last seen with (unknown: as many as queues here are found with; once a queue
            # ran dry in this fetch, no more than it gave) may not fill the batch, at most
            # COUNT_AT_ONCE a step.
            claiming = step > 0 or fresh
            cover = -1
            typical = max(1, round(self._typical if ran_dry is None else min(self._typical, ran_dry)))
            for queue in order:
                if room <= 0:
                    break
                if queue in known:
                    if cover < 0:
                        claims.append((queue, min(room, known.pop(queue))))
                        room -= claims[-1][1]
                    continue
                if queue in tried or not (every or queue in redo or self._may_have(queue, now)):
                    continue
                tried.add(queue)
                due = None if queue in redo else self._known_due(queue)
                if due is not None:
                    if claiming and cover < 0:
                        claims.append((queue, min(room, due)))
                        room -= claims[-1][1]
                        continue
                    known[queue] = due  # (claimed by it in the next step if room is left)
                elif cover < 0 and (claiming or queue == order[0]) and queue not in redo:
                    claims.append((queue, room))
                else:
                    counted.append(queue)
                cover = max(cover, 0) + (self._due.get(queue, typical) if due is None else due)
                if not every and (cover >= room or len(counted) >= COUNT_AT_ONCE):
                    break
            if step and not claims and not counted and read:
                break
            # (Nothing left to claim in the order known, the hints and the registry not read
            # in this fetch: read them, then look again. A worker serving every queue that had
            # claimed only from named ones did not know the queues new since, and a fetch
            # whose first queue had nothing due returned empty while another queue had jobs.)
            calls = [self._fetch_call([q], n, worker, lease_until, now, token, True) for q, n in claims]
            claimed_from.update(q for q, _ in claims)
            self._claims[1].update(q for q, _ in claims)
            for q in counted:
                # Never with this fetch's token once claimed from (a second fetch.lua of one
                # token gives the first one's jobs again, its retry): never claimed twice.
                asking = "" if q in claimed_from else token
                up_to = max(limit, COUNT_UP_TO)
                calls.append(Call("due", self.keys.due(q, worker), [self.keys.prefix(q), now, up_to, asking]))
            dropping = bool(self._drops)
            if dropping:
                calls.append(Call("hint_drop", self.keys.hint_drop(), self._drops))
                self._drops = []
            # The hints and the registry (queues new since), each sent only if it grew since
            # this process read it (whole at each look at every queue): not while the first
            # queue of each fetch fills the batch and they are fresh for a while yet (read
            # again before they are stale, so that the next fetch claims in its first step).
            stale = not self._head_filled or time.monotonic() >= self._hints_fresh - HINTS_FRESH / 2
            reading = not read and (step > 0 or stale or not calls)
            if reading:
                seen = "" if every or self._hints_count is None else self._hints_count
                size = (
                    "-"
                    if queues is not None
                    else ""
                    if every or self._registry_size is None
                    else self._registry_size
                )
                calls.append(Call("hints_read", self.keys.hints_read(), [seen, size]))
            reread = self._partitions_stale() if step == 0 else []
            calls += reread
            replies = self._wire.run(calls)
            for (queue, asked), flat in zip(claims, replies, strict=False):
                some = claimed([queue], flat[:-3], worker, lease_until, now, held, beaten)
                got += some
                left = int(flat[-3])
                if left:
                    self._quiet.pop(queue, None)
                    self._due[queue] = left
                    self._due_hint[queue] = flat[-1]  # (the queue's stamp, read with it)
                else:
                    self._due[queue] = 0
                    if len(some) < asked:  # a queue's worth, run dry
                        ran_dry = len(some)
                    self._drops += self._found_quiet(queue, flat[-3:], now)
                if some and len(some) < limit:
                    self._typical += (len(some) + left - self._typical) / 8
            for queue, reply in zip(counted, replies[len(claims) :], strict=False):
                count = int(reply[0])
                self._due[queue] = count
                self._due_hint[queue] = reply[2]
                if count:
                    self._typical += (count - self._typical) / 8
                    if queue not in claimed_from:
                        known[queue] = count
                    self._quiet.pop(queue, None)
                else:
                    self._drops += self._found_quiet(queue, reply, now)
            rest = replies[len(claims) + len(counted) + dropping :]
            if reread:
                self._read_partitions(rest[-1])
            if reading:
                read = True
                self._hints_fresh = time.monotonic() + HINTS_FRESH
                self._hints_count, hints, size, registry = rest[0]
                if hints is not None:
                    self._hints = {_text(k): v for k, v in hash_items(hints)}
                if size is not None:
                    self._registry_size = int(size)
                if registry is not None:
                    self._learn(registry)
            if reading or reread:
                order = self._shards(queues, turn) if queues is not None else self._order(turn)
            if step == 0:
                self._head_filled = len(got) >= limit
            if len(got) >= limit:
                break
        return got

    def _known_due(self, queue: str) -> int | None:
        """Cluster: the due jobs of ``queue`` as a claim's reply or a count last left them, if
        some and its hint is the stamp the queue held then (no write since: each write leaves
        a new token in both, its stamp first)."""
        due = self._due.get(queue)
        if not due or self._due_hint.get(queue, b"") != self._hints.get(queue):
            return None
        return due

    def _may_have(self, queue: str, now: float) -> bool:
        """Cluster: whether a fetch should look at ``queue`` (see ``_fetch_slots``)."""
        hint = self._hints.get(queue)
        if hint is None:
            return False
        quiet = self._quiet.get(queue)
        return quiet is None or quiet[0] != hint or now >= quiet[1]

    def _found_quiet(self, queue: str, reply: Sequence[Any], now: float) -> list[Any]:
        """Cluster: ``queue`` has no job due (due.lua's ``reply``): when to look again, and
        the (queue, token) to drop from the hints if it has nothing waiting."""
        hint = self._hints.get(queue)
        upcoming, stamp = reply[1], reply[2]
        if upcoming == b"paused":
            self._quiet[queue] = (hint, now + LOOK_AT_ALL)
            return []
        if upcoming:
            self._quiet[queue] = (hint, float(upcoming))
            return []
        if hint is None:
            self._quiet[queue] = (None, float("inf"))
            return []
        seen = self._hint_seen.get(queue)
        if seen is None or seen[0] != hint:
            self._hint_seen[queue] = seen = (hint, time.monotonic())
        if stamp != hint and time.monotonic() - seen[1] < HINT_GRACE:
            return []  # the write it announces may not be in yet: look again next time
        self._quiet[queue] = (hint, float("inf"))
        self._hint_seen.pop(queue, None)
        return [queue, hint]

    def complete(self, results: Sequence[tuple[str, bytes | None]], worker: str, now: float) -> None:
        if not results:
            return
        values = dict(results)
        minute = int(now // 60) * 60
        calls: list[Call] = []
        located = self._locate(list(values))
        for queue, ids in located.items():
            flags = "".join("0" if values[i] is None else "1" for i in ids)
            args: list[Any] = [self.keys.prefix(queue), worker, now, f"p:{minute}", flags]
            for i in ids:
                result = values[i]
                args += (i, b"" if result is None else result)
            calls.append(Call("complete", self.keys.complete(queue, worker), args))
        replies = self._acknowledge(calls, located)
        self._forget(values)
        # A list reply: some of these jobs have dependents, to be told now (workflows.py).
        told = [
            (queue, reply)
            for queue, reply in zip(located, replies[: len(located)], strict=True)
            if type(reply) is list
        ]
        if told:
            workflows.advance(self, (), now, [t for q, reply in told for t in workflows.told(q, reply)])

    def _acknowledge(self, calls: list[Call], located: dict[str, list[str]]) -> list[Any]:
        """Run complete.lua or fail.lua ``calls``, with the calls that free limit slots and,
        for queues that hold batch jobs, their forward (batches.py); jobs outside batches
        cost one type test per queue here. Returns the replies."""
        forward, rode = self.batch_calls(located)
        replies = self._wire.run(calls + self._slots_freed(located) + forward, durable=True)
        self.batches_acknowledged(located, replies, rode, replies[len(replies) - len(forward) :])
        return replies

    def _slots_freed(self, queues: Iterable[str]) -> list[Call]:
        """For the buckets among ``queues`` (stored queues whose jobs just ended): each may
        start a job again, and a worker idle in BLPOP on its queue is woken to take it, at
        once instead of at its next poll. Nothing for queues without limits."""
        return [
            call
            for queue in queues
            if SEP in queue
            for call in self._bucket_freed(self.keys.parent(queue), queue)
        ]

    @staticmethod
    def _bucket_freed(parent: str, bucket: str) -> list[Call]:
        """A slot of ``bucket`` was freed: it may start a job again, and a worker idle in
        BLPOP on its queue is woken to take it."""
        return [
            Call(None, "ZADD", parent + "ready", 0, bucket),
            Call(None, "LPUSH", parent + "wake", "1"),
            Call(None, "LTRIM", parent + "wake", 0, WAKE_TOKENS - 1),
        ]

    def _forget(self, ids: Iterable[str]) -> None:
        held = self._held
        for i in ids:
            held.pop(i, None)

    def fail(self, failures: Sequence[Failure], worker: str, now: float) -> None:
        if not failures:
            return
        by_id = {f.id: f for f in failures}
        minute = int(now // 60) * 60
        calls: list[Call] = []
        located = self._locate(list(by_id))
        for queue, ids in located.items():
            batch = [by_id[i] for i in ids]
            flags = "".join("0" if f.traceback is None else "1" for f in batch)
            args: list[Any] = [self.keys.prefix(queue), worker, now, minute, flags]
            for f in batch:
                if f.snoozed:
                    mark: Any = f"s{f.retry_at!r}"
                else:
                    mark = "c" if f.cancelled else "" if f.retry_at is None else f.retry_at
                args += (f.id, mark, f.error, f.traceback or "")
            calls.append(Call("fail", self.keys.fail(queue, worker), args))
        replies = self._acknowledge(calls, located)
        self._forget(by_id)
        told = [
            (queue, reply)
            for queue, reply in zip(located, replies[: len(located)], strict=True)
            if type(reply) is list
        ]
        if told:
            workflows.advance(self, (), now, [t for q, reply in told for t in workflows.told(q, reply)])

    # -- dependencies (workflows.py) --------------------------------------------------------
    def enqueue_after(
        self,
        records: Sequence[JobRecord],
        after: dict[str, tuple[str, ...]],
        now: float,
        pruned_before: float,
        max_queue_length: int | None = None,
    ) -> None:
        workflows.enqueue_after(self, records, after, now, pruned_before, max_queue_length)

    def dependencies(self, job_id: str) -> list[str]:
        return workflows.dependencies(self, job_id)

    def dependents(self, job_id: str, limit: int = 100) -> list[str]:
        return workflows.dependents(self, job_id, limit)

    def enqueue_each(
        self, records: Sequence[JobRecord], now: float, max_queue_length: int | None = None
    ) -> list[str | None]:
        by_queue = split_by_queue(records)
        fresh = self._unregistered(by_queue)
        limit = "" if max_queue_length is None else max_queue_length
        calls: list[Call] = []
        for queue, batch in by_queue.items():
            args: list[Any] = [
                self.keys.prefix(queue),
                limit,
                now,
                WAKE_TOKENS,
                queue,
                "1" if queue in fresh else "",
            ]
            for r in batch:
                timeout = "" if r.timeout is None else repr(float(r.timeout))
                held_for = "" if r.unique_until is None else max(1, int((r.unique_until - now) * 1000))
                args += (
                    r.id,
                    r.payload,
                    int(r.priority),
                    r.state if r.state == SCHEDULED else PENDING,
                    repr(float(r.run_at)),
                    meta_field(r.priority, r.max_attempts, timeout, repr(float(r.created_at))),
                    "" if r.expires_at is None else repr(float(r.expires_at)),
                    r.unique_key or "",
                    held_for,
                )
            calls.append(Call("enqueue_each", self.keys.enqueue_each(queue, self.cluster), args))
        try:
            if self.cluster:
                # Index and registry first, by their own call (as enqueue): an entry for a job
                # that turns out a duplicate only points at nothing.
                index = [x for r in records if r.queue != DEFAULT for x in (r.id, r.queue)]
                first = [Call(None, "SADD", self.keys.queues, *fresh)] if fresh else []
                if index:
                    first.append(Call(None, "HSET", self.keys.where, *index))
                if first:
                    self._wire.run(first)
            replies = self._wire.run(calls)
        except ResponseError as exc:
            if "QUEUEFULL" not in str(exc):
                raise
            raise QueueFull(
                f"a queue of this batch holds {str(exc).split()[-1]} waiting jobs, its limit of "
                f"{max_queue_length}; the jobs before that one are stored"
            ) from None
        except BaseException:
            for queue in fresh:
                self._registered.pop(queue, None)
            raise
        holder_of: dict[str, str | None] = {}
        for batch, reply in zip(by_queue.values(), replies, strict=True):
            for r, holder in zip(batch, reply, strict=True):
                holder_of[r.id] = holder.decode() if holder else None
        return [holder_of[r.id] for r in records]

    def change(
        self,
        job_id: str,
        now: float,
        run_at: float | None = None,
        priority: int | None = None,
        queue: str | None = None,
        payload: bytes | None = None,
    ) -> bool:
        located = self._locate([job_id])
        if not located:
            return False
        (source,) = located
        if queue is not None and queue != source and self.cluster:
            raise ConfigurationError(
                f"moving job {job_id} from queue {source!r} to {queue!r} is not supported on Redis "
                "Cluster: each queue lives in its own hash slot, and no one script may change both "
                "atomically; cancel the job and enqueue it on the other queue"
            )
        target = "" if queue is None or queue == source else queue
        args = [
            self.keys.prefix(source),
            job_id,
            now,
            "" if run_at is None else repr(float(run_at)),
            "" if priority is None else int(priority),
            target,
            self.keys.prefix(target) if target else "",
            payload if target and payload is not None else b"",
            WAKE_TOKENS,
        ]
        (changed,) = self._wire.run([Call("change", self.keys.change(source, self.cluster), args)])
        return bool(changed)

    def sweep(self, now: float, dead_before: float | None, dead_max: int | None, limit: int) -> int:
        queues = self._queues()
        if not queues:
            return 0
        beyond: dict[str, list[str]] = {}
        if dead_max is not None:
            beyond = self._beyond(queues, dead_max, limit)
        calls = [
            Call(
                "sweep",
                self.keys.sweep(q),
                [
                    self.keys.prefix(q),
                    now,
                    limit,
                    EXPIRED,
                    "" if dead_before is None else dead_before,
                    *beyond.get(q, []),
                ],
            )
            for q in queues
        ]
        changed = 0
        gone: list[bytes] = []
        for queue, reply in zip(queues, self._wire.run(calls), strict=True):
            changed += int(reply[0]) + len(reply) - 1
            if queue != DEFAULT:
                gone += reply[1:]
        for i in range(0, len(gone), 1000):
            self.client.hdel(self.keys.where, *gone[i : i + 1000])
        if changed:
            self.forward_batches(queues)  # expired jobs of batches count as cancelled
            # Expired jobs others wait for (what other ends left to tell, recover tells: a
            # read per queue, not repeated here for nothing).
            workflows.advance(self, queues, now)
        return changed

    def _beyond(self, queues: list[str], dead_max: int, limit: int) -> dict[str, list[str]]:
        """The oldest dead and cancelled jobs of the namespace beyond its newest ``dead_max``,
        at most ``limit``, by queue: each queue's oldest read (two round trips), then merged."""
        counts = self._wire.run(
            [
                Call(None, "ZCARD", self.keys.prefix(q) + name)
                for q in queues
                for name in ("dead", "cancelled")
            ]
        )
        excess = min(limit, sum(int(n) for n in counts) - dead_max)
        if excess <= 0:
            return {}
        heads = self._wire.run(
            [
                Call(None, "ZRANGE", self.keys.prefix(q) + name, 0, excess - 1, "WITHSCORES")
                for q in queues
                for name in ("dead", "cancelled")
            ]
        )
        oldest: list[tuple[float, str, str]] = []
        for n, head in enumerate(heads):
            queue = queues[n // 2]
            pairs = head.items() if isinstance(head, dict) else _pairs(head)
            oldest += ((float(score), queue, member.decode()) for member, score in pairs)
        oldest.sort()
        chosen: dict[str, list[str]] = {}
        for _, queue, job_id in oldest[:excess]:
            chosen.setdefault(queue, []).append(job_id)
        return chosen

    def set_progress(self, job_id: str, worker: str, progress: bytes) -> bool:
        located = self._locate([job_id])
        if not located:
            return False
        (queue,) = located
        (stored,) = self._wire.run([Call("progress", self.keys.progress(queue, job_id), [worker, progress])])
        return bool(stored)

    def cancel_requests(self, worker: str, queues: Sequence[str]) -> list[tuple[str, str]]:
        # One small script per queue of the jobs running: their sets hold outstanding
        # requests only, and are empty nearly always.
        names = sorted(set(self._shards(queues, 0)))
        calls = [Call("cancels", self.keys.cancels(q), [self.keys.prefix(q), worker]) for q in names]
        found: list[tuple[str, str]] = []
        for reply in self._wire.run(calls) if calls else []:
            for i in range(0, len(reply), 2):
                found.append((reply[i].decode(), reply[i + 1].decode(errors="replace")))
        return found

    def release(self, ids: Sequence[str], worker: str) -> None:
        if not ids:
            return
        calls: list[Call] = []
        located = self._locate(ids)
        for queue, batch in located.items():
            args = [self.keys.prefix(queue), worker, WAKE_TOKENS, *batch]
            calls.append(Call("release", self.keys.release(queue, worker), args))
        self._wire.run(calls + self._slots_freed(located))
        self._forget(ids)

    def heartbeat(self, info: WorkerInfo, lease: float, now: float) -> None:
        # The queues of the jobs this process holds, and of those it held since the last
        # beat (extend.lua then takes the worker out of their lease index): a worker of 200
        # queues busy in three extends three. Jobs it runs that it did not fetch itself (a
        # store object other than the fetching one) make it look in every queue.
        held = self._held
        queues = set(held.values()) | self._beaten
        if any(i not in held for i in info.running):
            queues |= set(self._queues())
        self._beaten = set(held.values())
        calls = [
            Call("extend", self.keys.extend(q, info.id), [self.keys.prefix(q), info.id, now + lease])
            for q in sorted(queues)
        ]
        body = ""
        if info.alive:
            body = orjson.dumps(
                {
                    "host": info.host,
                    "pid": info.pid,
                    "queues": list(info.queues),
                    "concurrency": info.concurrency,
                    "started_at": info.started_at,
                    "last_seen": now,
                    "running": list(info.running),
                }
            ).decode()
        calls.append(Call("beat", self.keys.beat(), [info.id, body, now]))
        self._wire.run(calls)

    def recover(self, now: float, completed_before: float) -> int:
        minute = int(now // 60) * 60
        queues = self._all_queues()
        limit = prune.PRUNE_BATCH
        deadline = time.monotonic() + prune.PRUNE_BUDGET

        def calls(names: Sequence[str]) -> list[Call]:
            args = [now, completed_before, minute, LOST, now - 86400, now + FAR_FUTURE, BAD_RUN_AT, limit]
            return [Call("recover", self.keys.recover(q), [self.keys.prefix(q), *args]) for q in names]

        forget = Call("forget", self.keys.beat(), [now - WORKER_EXPIRY])
        began = time.monotonic()
        results = self._wire.run([*calls(queues), forget])[:-1]
        recovered, called = 0, queues
        gave_back: list[str] = []
        boxed: dict[str, None] = {}  # queues whose batch outboxes hold moves
        untold: dict[str, None] = {}  # queues with ends whose dependents are to be told
        while True:
            pruned: list[bytes] = []
            full: list[str] = []
            for queue, result in zip(called, results, strict=True):
                recovered += int(result[0])
                if int(result[0]) and queue not in gave_back:
                    gave_back.append(queue)
                more = int(result[1])
                if more & 1:
                    boxed[queue] = None
                if more & 2:
                    untold[queue] = None
                if queue != DEFAULT:  # the default queue's jobs are not in the index
                    pruned += result[2:]
                if len(result) - 2 >= limit:
                    full.append(queue)
            for i in range(0, len(pruned), 1000):
                self.client.hdel(self.keys.where, *pruned[i : i + 1000])
            # Completed jobs past result_ttl, a batch a call: again for the queues that had a
            # whole batch, while the budget lasts (prune.py; each call is about a millisecond
            # of the server's time, never one long script).
            if not full or time.monotonic() >= deadline:
                break
            time.sleep(prune.pause(began))
            began = time.monotonic()
            called, results = full, self._wire.run(calls(full))
        if gave_back and self.cluster:  # jobs wait again there: hinted, after the fact
            self._wire.run(self._hints_of(gave_back))
        # Every bucket may start a job again: the safety net for a freed slot whose
        # acknowledgement did not say so (a lease that expired, a client gone mid-pipeline).
        # A claim drops again, at the cost of one look, those that cannot.
        ready = [Call(None, "ZADD", self.keys.ready(split(q)[0]), 0, q) for q in queues if SEP in q]
        if ready:
            self._wire.run(ready)
        # Batch jobs that ended here, or whose forward a crash cut short (batches.py): the
        # queues whose outboxes recover.lua found with moves (a read per queue and outbox
        # was most of a pass's calls with many queues).
        self.housekeep_batches(list(boxed), now, completed_before)
        # Dependents left untold by a worker that died after ending their dependency, and
        # lost runs (dead, cancelled) others wait for: the queues with ends to tell.
        workflows.advance(self, list(untold), now)
        return recovered

    def wait_and_fetch(
        self, queues: Sequence[str] | None, timeout: float, limit: int, worker: str, lease: float
    ) -> list[JobRecord]:
        """``wait``, then ``fetch``, in one round-trip: the fetch is sent right behind the
        BLPOP on the same connection, so the server runs it the moment the BLPOP returns and
        the job that woke the worker is claimed without another round-trip. The fetch then
        reads the time from the server's clock (in the worker's clock, by an offset measured
        once a minute), since it runs later than it was sent."""
        names = list(queues) if queues is not None else (self._known or [DEFAULT])
        if self.cluster or timeout <= 0.001 or limit <= 0 or not self._limited_now().isdisjoint(names):
            self.wait(queues, timeout)
            return self.fetch(queues, limit, worker, lease, time.time())
        token = os.urandom(8).hex()
        turn = zlib.crc32(token.encode())
        names = self._shards(queues, turn) if queues is not None else self._order(turn)
        fetch = self._fetch_call(names, limit, worker, lease, 0.0, token)
        args = fetch.args[1]
        args[4] = ""  # now: the server's clock
        args[7] = self._clock_offset()
        calls = [Call(None, "BLPOP", *self.keys.wake(names), timeout)]
        if queues is None:
            calls.append(Call(None, "SMEMBERS", self.keys.queues))
        calls.append(fetch)
        try:
            replies = self._wire.run(calls)
        except ResponseError as exc:
            log.debug("wait: %s", exc)
            return self.fetch(queues, limit, worker, lease, time.time())
        # A connection error, past redis-py's retries, is an outage: raised (as
        # StoreUnavailable), for the worker to back off, rather than spending another
        # FETCH_OUTAGE in a fetch that would meet the same closed port.
        flat = replies[-1]
        now = float(flat[0])
        got = claimed(names, flat[1:], worker, now + lease, now, self._held, self._beaten)
        if not got and replies[0] is not None:
            # Woken, yet nothing was due by the server's clock: the job may come from a
            # machine whose clock runs a little ahead. Look again by this one's.
            return self.fetch(queues, limit, worker, lease, time.time())
        if queues is None:
            self._learn(replies[1])
            served = set(names)
            new = [q for q in self._order(turn) if q not in served]
            if new and len(got) < limit:
                call = self._fetch_call(new, limit - len(got), worker, now + lease, now, token)
                flat = self._wire.script("fetch", *call.args)
                got += claimed(new, flat, worker, now + lease, now, self._held, self._beaten)
        return got

    def _clock_offset(self) -> float:
        """This machine's clock minus the Redis server's, in seconds (re-read every minute):
        of five readings, the one with the shortest round-trip, whose midpoint is closest
        to the moment the server read its clock."""
        measured, offset = self._offset
        if time.monotonic() - measured < 60.0:
            return offset
        samples: list[tuple[float, float]] = []
        for _ in range(5):
            before = time.time()
            seconds, micros = self._wire.on_own_connection(lambda conn: Wire.send(conn, [("TIME",)]))[0]
            after = time.time()
            samples.append((after - before, (before + after) / 2 - (int(seconds) + int(micros) / 1e6)))
        offset = min(samples)[1]
        self._offset = (time.monotonic(), offset)
        return offset

    def wait(self, queues: Sequence[str] | None, timeout: float) -> None:
        if timeout <= 0.001:
            return
        turn = next(self._turn)
        names = self._shards(queues, turn) if queues is not None else self._order(turn)
        if self.cluster:
            # BLPOP takes keys of one slot only; block on the first queue, and find jobs of
            # the others at the next fetch, after ``timeout``.
            names = names[:1]
        keys = self.keys.wake(names)
        deadline = time.monotonic() + timeout
        try:
            # BLPOP blocks in the server: an enqueue's token wakes this worker within a
            # round-trip, and an idle worker sends one command per ``timeout``.
            if self.cluster:
                self._block_on_node(keys[0], timeout)
            else:
                self._wire.on_own_connection(lambda conn: Wire.send(conn, [("BLPOP", *keys, timeout)]))
        except (*RETRYABLE, ResponseError) as exc:
            log.debug("wait: %s", exc)
            time.sleep(max(0.0, deadline - time.monotonic()))

    def wait_ended(self, job_id: str, queue: str | None, timeout: float | None) -> JobRecord | None:
        """Block in BLPOP on the job's ``ended`` list, where the script that ends it pushes a
        token once watch.lua has marked it waited for (see keys.py)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        shard, located = queue, False  # the queue is a guess: a partitioned one has shards
        while True:
            if shard is None:
                found = self._locate([job_id])
                if not found:
                    return None
                (shard,), located = found, True
            state = self._wire.script("watch", self.keys.watch(shard), [self.keys.prefix(shard), job_id])
            left = RECHECK if deadline is None else deadline - time.monotonic()
            if state is None:
                if not located:
                    shard = None
                    continue
                # Gone, or moved to another queue as it was looked up: read it as it goes.
                return self._poll_ended(job_id, deadline)
            if state in ENDED or left <= 0:
                return self.get(job_id)
            token = self.keys.ended(shard, job_id)
            if self.client.blpop([token], timeout=max(0.01, min(left, RECHECK))) is not None:
                # Put the token back for anyone else waiting for the same job.
                self._wire.run([Call(None, "LPUSH", token, "1"), Call(None, "EXPIRE", token, 300)])

    def _poll_ended(self, job_id: str, deadline: float | None) -> JobRecord | None:
        """The job once it ended, or as it stands at ``deadline``, read every 0.1 s."""
        while True:
            record = self.get(job_id)
            if record is None or record.state in FINAL_STATES:
                return record
            if deadline is not None and time.monotonic() >= deadline:
                return record
            time.sleep(0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic())))

    def _block_on_node(self, key: str, timeout: float) -> None:
        """Cluster: BLPOP on the master of ``key``'s slot, on this thread's connection to it."""
        conn = self._wire.node_connection(key)
        try:
            Wire.send(conn, [("BLPOP", key, timeout)])
        except BaseException:
            conn.disconnect()  # a reply may be left unread; a moved slot is found again next time
            raise

    def close(self) -> None:
        try:
            self.client.close()
        except RedisError as exc:
            log.debug("close: %s", exc)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(member, score) pairs of a ZRANGE WITHSCORES reply: pairs in RESP3, flat in RESP2 (a
    raw pipeline reply is not parsed into pairs)."""
    if flat and isinstance(flat[0], list | tuple):
        return [(m, sc) for m, sc in flat]
    return list(zip(flat[::2], flat[1::2], strict=True))
