"""The Redis store's admin calls: listings, counts, workers, actions, pauses.

Admin listings (``jobs``, ``act`` by state) read every id of the state and sort them in
Python: O(jobs in that state), kept off the hot path on purpose (no per-job index writes
just for listings).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson

from ...job import CANCELLED_NOTE, JobRecord, Stats, WorkerInfo
from ...limits import SEP, split
from ..base import check_action
from .keys import Keys
from .records import FIELDS, from_hash
from .wire import Call, Wire

log = logging.getLogger("conveyor.redis")


class Admin:
    """The admin half of ``RedisBackend`` (its base class), over the same keys and wire."""

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

    def get(self, job_id: str) -> JobRecord | None:
        found = self._locate([job_id])
        if not found:
            return None
        (queue,) = found
        values = self.client.hmget(self.keys.job(queue, job_id), FIELDS)
        if values[2] is None:
            return None
        return from_hash(job_id, queue, values)

    def _ids(self, state: str | None, queue: str | None, now: float, limit: int = 0) -> list[tuple[str, str]]:
        """(id, queue) of every job in ``state`` (and ``queue``), newest first; with a
        ``limit``, at most that many per queue (any of them)."""
        queues = self._queues_of(queue) if queue is not None else self._all_queues()
        if not queues:
            return []
        calls = [
            Call("ids", self.keys.ids(q), [self.keys.prefix(q), state or "", now, limit]) for q in queues
        ]
        found: list[tuple[str, str]] = []
        for q, ids in zip(queues, self._wire.run(calls), strict=True):
            found += ((i.decode(), q) for i in ids)
        found.sort(reverse=True)
        return found

    def _read(self, pairs: Sequence[tuple[str, str]]) -> list[JobRecord]:
        if not pairs:
            return []
        calls = [Call(None, "HMGET", self.keys.job(q, i), *FIELDS) for i, q in pairs]
        return [
            from_hash(i, q, values)
            for (i, q), values in zip(pairs, self._wire.run(calls), strict=True)
            if values[2] is not None
        ]

    def jobs(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
        now: float | None = None,
        search: str | None = None,
    ) -> list[JobRecord]:
        # Admin listings read every id in the state and sort them here: O(jobs in the state),
        # kept off the hot path (no per-job index writes just for listings).
        now = time.time() if now is None else now
        pairs = self._ids(state, queue, now)
        if not search:
            return self._read(pairs[offset : offset + limit])
        needle = search.encode()
        matched: list[JobRecord] = []
        for start in range(0, len(pairs), 500):
            for r in self._read(pairs[start : start + 500]):
                if needle in r.payload:
                    matched.append(r)
            if len(matched) >= offset + limit:
                break
        return matched[offset : offset + limit]

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
            for i in range(11, len(row), 3):
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
            by_queue = {}
            found = self._ids(state, queue, now, limit or 0)
            for job_id, q in found[:limit] if limit else found:
                by_queue.setdefault(q, []).append(job_id)
            only = state or ""
        calls: list[Call] = []
        for q, batch in by_queue.items():
            for i in range(0, len(batch), 1000):
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
                            *batch[i : i + 1000],
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
