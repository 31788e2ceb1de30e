"""The async client API on Redis: ``redis.asyncio`` (its Cluster client on Cluster), sending
the sync store's own calls: ``RedisBackend.plan_enqueue`` builds an enqueue as calls of the
same scripts (``wire.SCRIPTS``, by SHA), and they go out here in one pipeline per step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from ...job import FINAL_STATES, JobRecord
from ..base import unavailable
from .connect import UNAVAILABLE, RedisUnavailable, connect, unreachable
from .keys import DEFAULT
from .records import FIELDS, from_hash
from .store import ENDED, RECHECK, RedisBackend
from .wire import Call


class AsyncRedisStore:
    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.keys = backend.keys
        self.client, self.cluster = connect(backend.url, aio=True)
        self._wire = backend._wire

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        """``Wire.run`` on the async client: one pipeline (a round-trip per node), scripts
        by SHA, a NOSCRIPT call run again once its script is loaded."""
        try:
            results = await self._pipeline(calls)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:
                for name in {calls[i].script for i in missing}:
                    if name is not None:
                        await self.client.script_load(self._wire.source(name))
                again = await self._pipeline([calls[i] for i in missing])
                for i, result in zip(missing, again, strict=True):
                    results[i] = result
        except UNAVAILABLE as exc:
            if not unreachable(exc):
                raise
            raise unavailable("Redis", self.backend.url, exc, RedisUnavailable) from exc
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    async def _pipeline(self, calls: Sequence[Call]) -> list[Any]:
        pipe = self.client.pipeline() if self.cluster else self.client.pipeline(transaction=False)
        for command in self._wire.commands(calls):
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))

    async def enqueue(self, records: Sequence[JobRecord], max_queue_length: int | None = None) -> None:
        if not records:
            return
        plan = self.backend.plan_enqueue(records, max_queue_length)
        try:
            if plan.first:
                await self.run(plan.first)
            results = await self.run(plan.scripts)
        except BaseException:
            plan.forget(self.backend._registered)
            raise
        full = plan.full(results)
        if full:
            await self.run(self.backend.undo_calls(plan.by_queue, full))
            raise plan.queue_full(full, results, max_queue_length)

    async def _queue_of(self, job_id: str) -> str | None:
        """The queue holding the job: the id index, else the default queue (asked together);
        a lost index entry is searched for and repaired by the sync store, on a thread."""
        where, in_default = await self.run(
            [
                Call(None, "HGET", self.keys.where, job_id),
                Call(None, "EXISTS", self.keys.job(DEFAULT, job_id)),
            ]
        )
        if where is not None:
            return str(where.decode())
        if in_default:
            return DEFAULT
        found = await asyncio.to_thread(self.backend._search, [job_id])
        return found.get(job_id)

    async def get(self, job_id: str) -> JobRecord | None:
        queue = await self._queue_of(job_id)
        if queue is None:
            return None
        (values,) = await self.run([Call(None, "HMGET", self.keys.job(queue, job_id), *FIELDS)])
        return None if values[2] is None else from_hash(job_id, queue, values)

    async def wait_ended(self, job_id: str, queue: str | None, timeout: float | None) -> JobRecord | None:
        """``RedisBackend.wait_ended`` on the async client: BLPOP on the job's ``ended``
        list, which the script that ends a watched job pushes to."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if queue is None:
                record = await self.get(job_id)
                if record is None or record.state in FINAL_STATES:
                    return record
                queue = record.queue
            (state,) = await self.run(
                [Call("watch", self.keys.watch(queue), [self.keys.prefix(queue), job_id])]
            )
            left = RECHECK if deadline is None else deadline - time.monotonic()
            if state is None:
                queue = None  # gone, or moved to another queue: look it up again
                continue
            if state in ENDED or left <= 0:
                return await self.get(job_id)
            token = self.keys.ended(queue, job_id)
            try:
                woken = await self.client.blpop([token], timeout=max(0.01, min(left, RECHECK)))
            except UNAVAILABLE as exc:
                raise unavailable("Redis", self.backend.url, exc, RedisUnavailable) from exc
            if woken is not None:
                # Put the token back for anyone else waiting for the same job.
                await self.run([Call(None, "LPUSH", token, "1"), Call(None, "EXPIRE", token, 300)])

    async def close(self) -> None:
        await self.client.aclose()
