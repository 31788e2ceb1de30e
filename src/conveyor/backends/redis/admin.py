"""The Redis store's admin calls: listings, counts, workers, actions, pauses.

Admin listings (``list_jobs``, ``act`` by state) read one page of each queue's sorted set
of the state from a cursor (``ids.lua``: O(log n + page) per queue) and merge the queues'
pages here: no script reads a whole state, so none blocks the server for long. A store call
of ``CHUNK`` jobs (a page, a stretch of a search) is several scripts of ``STEP`` from the
same cursor, each passing over the jobs of the ones before it, sent in one pipeline: one
round-trip, no script longer than a fraction of a millisecond, and no pipeline holding the
server for more than a few (Redis runs a client's pipelined commands one after the other,
other clients' between pipelines, so a search of 2,000 is two round-trips, not one).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from ...job import (
    ACTIVE,
    CANCELLED,
    CANCELLED_NOTE,
    COMPLETED,
    DEAD,
    PENDING,
    RETRY,
    SCHEDULED,
    WAITING,
    JobRecord,
    Stats,
    WorkerInfo,
)
from ...limits import SEP, split
from ..base import check_action
from ..listing import (
    CHUNK,
    EVERY_STATE,
    STEP,
    Listings,
    cursor_float,
    cursor_int,
    cursor_parts,
    make_cursor,
)
from .keys import Keys
from .records import FIELDS, from_hash
from .wire import Call, Wire

log = logging.getLogger("conveyor.redis")

#: Jobs one act.lua call changes at most: each costs a few commands (about 10 us, twice that
#: with an append-only file), and a script holds the whole server while it runs. The calls
#: of one action still go in one pipeline: one round-trip.
ACT_CHUNK = 50
#: The parts of a cursor of each state (see ids.lua), the id last.
_CURSOR_PARTS = {
    PENDING: 3,
    ACTIVE: 1,
    SCHEDULED: 2,
    RETRY: 2,
    WAITING: 2,
    COMPLETED: 2,
    DEAD: 2,
    CANCELLED: 2,
}
#: States listed newest first (the rest oldest, or next to run, first).
_NEWEST_FIRST = frozenset({ACTIVE, WAITING, COMPLETED, DEAD, CANCELLED})


class Admin(Listings):
    """The admin half of ``RedisBackend`` (its base class), over the same keys and wire."""

    #: A search reads two ``CHUNK`` a call (ten scripts in a pipeline, a few ms of the
    #: server's time), from the first: each call is a round-trip, and on a loaded machine a
    #: round-trip costs more than the scripts (beside 10M jobs, a search of 2,000: 40 ms in
    #: calls of 500, 31 in calls of 1,000, 25 in one of 2,000, which held the server ~6 ms).
    search_chunk = 2 * CHUNK
    search_grows = False

    #: The queues of the listing under way, with its ``now`` (see ``_listed_queues``).
    _queues_of_listing: tuple[float, list[str]] | None = None

    keys: Keys
    client: Any
    _wire: Wire

    def _locate(self, ids: Sequence[str]) -> dict[str, list[str]]:
        raise NotImplementedError  # RedisBackend's: from its fetches, the index, or a search

    def _queues(self) -> list[str]:
        raise NotImplementedError  # RedisBackend's: the registry, default first

    def _all_queues(self) -> list[str]:
        raise NotImplementedError  # RedisBackend's: the registry and every queue's buckets

    def _queues_of(self, queue: str) -> list[str]:
        raise NotImplementedError  # RedisBackend's: a queue and its buckets

    def forward_batches(self, queues: Iterable[str]) -> None:
        raise NotImplementedError  # RedisBackend's (batches.py)

    def get(self, job_id: str) -> JobRecord | None:
        found = self._locate([job_id])
        if not found:
            return None
        (queue,) = found
        values, batch = self._wire.run(
            [
                Call(None, "HMGET", self.keys.job(queue, job_id), *FIELDS),
                Call(None, "HGET", self.keys.prefix(queue) + "bj", job_id),
            ]
        )
        if values[2] is None:
            return None
        record = from_hash(job_id, queue, values)
        if batch is not None:
            record.batch_id = batch.decode() if isinstance(batch, bytes) else str(batch)
        return record

    def _page(
        self,
        state: str,
        queue: str | None,
        limit: int,
        after: str | None,
        now: float,
        needles: Sequence[bytes] = (),
        task: str | None = None,
    ) -> list[tuple[str, JobRecord | None]]:
        if task is not None:
            # No index of task names here (one would cost every enqueue and acknowledgement
            # a write): the name as the payload holds it, a text like any other.
            needles = [*needles, b'"t":' + orjson.dumps(task)]
        listed = self._listed(state, queue, limit, after, now, needles)
        records = self._read([(job_id, where) for _, job_id, where, hit in listed if hit])
        by_id = {r.id: r for r in records}
        # None: not matched, or deleted since listed
        return [(position, by_id.get(job_id)) for position, job_id, _, _ in listed]

    def _listed(
        self,
        state: str,
        queue: str | None,
        limit: int,
        after: str | None,
        now: float,
        needles: Sequence[bytes] = (),
    ) -> list[tuple[str, str, str, bool]]:
        """(cursor, id, queue it is stored under, matched) of the first ``limit`` jobs after
        ``after``: each queue's first ``limit`` (ids.lua), merged. With ``needles``, a job
        that did not match has a cursor only at the end ("" before: a search goes on or
        stops only at a match or the end)."""
        parts = self._cursor(state, after)
        queues = self._listing_queues(queue, now)
        skips = range(0, limit, STEP)
        calls = [
            Call(
                "ids",
                self.keys.ids(q),
                [
                    self.keys.prefix(q),
                    state,
                    now,
                    min(STEP, limit - skip),
                    skip,
                    len(needles),
                    *needles,
                    *parts,
                ],
            )
            for q in queues
            for skip in skips
        ]
        found: list[
            tuple[Any, str, str, str, str, bool]
        ] = []  # sort key, id, score, priority, queue, matched
        seen: set[tuple[str, str]] = set()
        for n, flat in enumerate(self._wire.run(calls) if calls else []):
            q = queues[n // len(skips)]
            for i in range(0, len(flat), 4):
                job_id, score, priority = flat[i].decode(), flat[i + 1].decode(), flat[i + 2].decode()
                if (q, job_id) in seen:
                    continue  # moved between two calls of the pipeline: listed once
                seen.add((q, job_id))
                if state == PENDING:
                    key: Any = (-int(priority), float(score), job_id)
                elif state == ACTIVE:
                    key = job_id
                else:
                    key = (float(score), job_id)
                found.append((key, job_id, score, priority, q, bool(flat[i + 3])))
        found.sort(key=lambda row: row[0], reverse=state in _NEWEST_FIRST)
        found = found[:limit]
        listed: list[tuple[str, str, str, bool]] = []
        for i, (_, job_id, score, priority, q, hit) in enumerate(found):
            if not hit and i != len(found) - 1:
                position = ""
            elif state == PENDING:
                position = make_cursor(state, priority, score, job_id)
            elif state == ACTIVE:
                position = make_cursor(state, job_id)
            else:
                position = make_cursor(state, score, job_id)
            listed.append((position, job_id, q, hit))
        return listed

    def _listing_queues(self, queue: str | None, now: float) -> list[str]:
        """The queues (key prefixes) a listing of ``queue`` reads: that one and its limit
        buckets, or every one."""
        return self._queues_of(queue) if queue is not None else self._listed_queues(now)

    def _listed_queues(self, now: float) -> list[str]:
        """The queues, read once per listing: every store call of one listing or search
        passes the same ``now``, and a search makes many."""
        cached = self._queues_of_listing
        if cached is not None and cached[0] == now:
            return cached[1]
        queues = self._all_queues()
        self._queues_of_listing = (now, queues)
        return queues

    @staticmethod
    def _cursor(state: str, after: str | None) -> list[Any]:
        """The cursor's parts as ids.lua takes them, checked here (a bad one: ValueError)."""
        if state not in _CURSOR_PARTS:
            raise ValueError(f"unknown state {state!r}")
        if not after:
            return []
        parts = cursor_parts(after, state, _CURSOR_PARTS[state])
        if state == PENDING:
            cursor_int(parts[0], after)
        if state != ACTIVE:
            cursor_float(parts[-2], after)
        return parts

    def _read(self, pairs: Sequence[tuple[str, str]]) -> list[JobRecord]:
        if not pairs:
            return []
        calls = [Call(None, "HMGET", self.keys.job(q, i), *FIELDS) for i, q in pairs]
        return [
            from_hash(i, q, values)
            for (i, q), values in zip(pairs, self._wire.run(calls), strict=True)
            if values[2] is not None
        ]

    def stats(self, now: float) -> Stats:
        queues = self._all_queues()
        since = now - 3600
        calls = [Call("stats", self.keys.stats(q), [self.keys.prefix(q), now, since]) for q in queues]
        by_queue: dict[str, dict[str, int]] = {}
        paused: set[str] = set()
        oldest: dict[str, float] = {}
        history: dict[float, list[int]] = {}
        processed = failed = 0
        names = ("pending", "scheduled", "retry", "active", "completed", "dead", "cancelled")
        for q, row in zip(queues, self._wire.run(calls) if calls else [], strict=True):
            if row[0]:
                paused.add(q)
            by_queue[q] = {name: int(n) for name, n in zip(names, row[1:8], strict=True) if int(n)}
            if row[8] is not None:
                oldest[q] = max(0.0, now - float(row[8]))
            processed += int(row[9])
            failed += int(row[10])
            if int(row[11]):
                by_queue[q]["waiting"] = int(row[11])
            for i in range(12, len(row), 3):
                slot = history.setdefault(float(row[i]), [0, 0])
                slot[0] += int(row[i + 1])
                slot[1] += int(row[i + 2])
        return Stats(
            queues=by_queue,
            paused=frozenset(paused),
            processed=processed,
            failed=failed,
            oldest_pending=oldest,
            history=[(minute, p, f) for minute, (p, f) in sorted(history.items())],
        )

    def workers(self) -> list[WorkerInfo]:
        raw = self.client.hgetall(self.keys.workers)
        found: list[WorkerInfo] = []
        for key, body in dict(raw).items():
            try:
                data = orjson.loads(body)
                found.append(
                    WorkerInfo(
                        id=key.decode(),
                        host=str(data["host"]),
                        pid=int(data["pid"]),
                        queues=tuple(data["queues"]),
                        concurrency=int(data["concurrency"]),
                        started_at=float(data["started_at"]),
                        last_seen=float(data["last_seen"]),
                        running=tuple(data["running"]),
                    )
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("ignoring a malformed worker entry %r", key)
        found.sort(key=lambda w: w.started_at)
        return found

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
        check_action(action)
        if ids is not None:
            by_queue = self._locate(ids)
            only = ""
        else:
            # Where each job is stored (a partitioned queue's partition), as listed.
            by_queue = {}
            taken = 0
            for current in EVERY_STATE if state is None else (state,):
                after: str | None = None
                while not limit or taken < limit:
                    size = self.chunk if not limit else min(self.chunk, limit - taken)
                    listed = self._listed(current, queue, size, after, now)
                    for _, job_id, where, _ in listed:
                        by_queue.setdefault(where, []).append(job_id)
                    taken += len(listed)
                    if len(listed) < size:
                        break
                    after = listed[-1][0]
            only = state or ""
        calls: list[Call] = []
        for q, batch in by_queue.items():
            for i in range(0, len(batch), ACT_CHUNK):
                calls.append(
                    Call(
                        "act",
                        self.keys.act(q),
                        [
                            self.keys.prefix(q),
                            action,
                            now,
                            only,
                            note or CANCELLED_NOTE,
                            *batch[i : i + ACT_CHUNK],
                        ],
                    )
                )
        if not calls:
            return 0
        changed = 0
        follow: list[Call] = []
        for result in self._wire.run(calls):
            changed += int(result[0])
            if len(result) > 1:
                follow.append(Call(None, "HDEL", self.keys.where, *result[1:]))
        if action == "retry":
            # A bucket whose jobs had all ended may have left its queue's ready set: back.
            follow += [Call(None, "ZADD", self.keys.ready(split(q)[0]), 0, q) for q in by_queue if SEP in q]
        if follow:
            self._wire.run(follow)
        self.forward_batches(list(by_queue))  # batch jobs that ended or came back (batches.py)
        if action != "retry":  # cancelled or deleted jobs others wait for
            from .workflows import advance

            advance(self, list(by_queue), now)  # type: ignore[arg-type]
        return changed

    def set_paused(self, queue: str, paused: bool) -> None:
        key = self.keys.paused(queue)
        # Registry first: a client dying in between leaves a registered queue, not a paused
        # queue no listing knows about.
        self.client.sadd(self.keys.queues, queue)
        if paused:
            self.client.set(key, "1")
        else:
            self.client.delete(key)
