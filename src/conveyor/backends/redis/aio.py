"""The async client API on Redis: ``redis.asyncio`` (its Cluster client on Cluster), sending
the sync store's own calls: ``RedisBackend.plan_enqueue`` builds an enqueue as calls of the
same scripts (``wire.SCRIPTS``, by SHA), and they go out here in one pipeline per step.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from ...job import JobRecord
from ...redaction import redact, redact_url
from ..aio import poll_ended
from ..base import unavailable
from .connect import RETRYABLE, UNAVAILABLE, RedisUnavailable, connect, explain, unreachable
from .keys import DEFAULT
from .records import FIELDS, from_hash, groups
from .store import ENDED, RECHECK, RedisBackend
from .wire import Call, _pack

#: Arguments from which a Cluster batch is sent node by node rather than by redis-py's pipeline.
_DIRECT_FROM = 1000
#: Arguments packed, or jobs planned, in one step of the event loop at most: a batch of 2,000
#: jobs is one enqueue.lua call of 4,000 arguments, which hiredis packs in 0.8-1.9 ms and
#: ``plan_enqueue`` plans in 0.8-2.6 ms (thread CPU at load 2-3), each in one step of the
#: loop before; at load 6 the loop lagged 5.1-5.3 ms once, past the 5 ms that
#: ``test_an_enqueue_never_blocks_the_event_loop_for_more_than_5_ms`` allows.
_STEP = 1000


class AsyncRedisStore:
    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.keys = backend.keys
        # Durable writes (replicas=N: WAIT on the connection that wrote) go through the sync
        # store, on a thread: its WAIT logic per node is not repeated here.
        self.durable = backend._wire.replicas > 0
        connected = connect(backend.url, aio=True)
        self.client, self.cluster = connected.client, connected.cluster
        self._wire = backend._wire

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        """``Wire.run`` on the async client: one pipeline (a round-trip per node), scripts
        by SHA, a NOSCRIPT call run again once its script is loaded."""
        # Cluster: each call that makes a job wait is followed by its queue's hint (Wire.run).
        extra = self._wire.hints(calls) if self._wire.hints is not None else []
        try:
            results = (await self._pipeline([*calls, *extra]))[: len(calls)]
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:
                for name in {calls[i].script for i in missing}:
                    if name is not None:
                        await self.client.script_load(self._wire.source(name))
                again = await self._pipeline([calls[i] for i in missing] + extra)
                for i, result in zip(missing, again, strict=False):
                    results[i] = result
        except UNAVAILABLE as exc:
            self._explain(exc)
            if not unreachable(exc):
                raise
            raise unavailable("Redis", self.backend.url, exc, RedisUnavailable) from exc
        for result in results:
            if isinstance(result, Exception):
                self._explain(result)
                raise result
        return results

    def _explain(self, exc: BaseException) -> None:
        """Raise what the sync store raises for an error whose cause it can name (a full
        store, a wrong password, a read-only replica...), as ``translate_errors`` does."""
        explained = explain(self.backend, exc)
        if explained is not None:
            kind, text = explained
            raise kind(f"Redis at {redact_url(self.backend.url)}: {redact(text)}") from exc

    async def _pipeline(self, calls: Sequence[Call]) -> list[Any]:
        commands = self._wire.commands(calls)
        if self.cluster:
            if sum(len(command) for command in commands) >= _DIRECT_FROM:
                return await self._send_by_node(commands)
            return await self._cluster_pipeline(commands)
        pool = self.client.connection_pool
        try:
            return await self._send(pool.get_connection, pool.release, commands)
        except RETRYABLE:
            return await self._send(pool.get_connection, pool.release, commands)  # safe to repeat

    async def _cluster_pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        pipe = self.client.pipeline()
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))

    async def _send_by_node(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """A large batch on Cluster: each command written to the node of its slot as
        ``_send`` writes it (redis-py's cluster pipeline packs in Python, 2.5 µs a job of a
        batch, inside one step of the loop). A command the node refuses as not its slot's
        (a resharding moved it) goes again through redis-py's pipeline, which follows the
        redirection."""
        await self.client.initialize()
        by_node: dict[Any, list[int]] = {}
        for n, command in enumerate(commands):
            key = command[3] if command[0] == "EVALSHA" else command[1]
            by_node.setdefault(self.client.get_node_from_key(key), []).append(n)
        results: list[Any] = [None] * len(commands)

        async def one(node: Any, positions: list[int]) -> None:
            async def acquire() -> Any:
                return node.acquire_connection()

            replies = await self._send(acquire, node.release, [commands[n] for n in positions])
            for n, reply in zip(positions, replies, strict=True):
                results[n] = reply

        await asyncio.gather(*(one(node, positions) for node, positions in by_node.items()))
        moved = [
            n
            for n, r in enumerate(results)
            if isinstance(r, ResponseError) and str(r).startswith(("MOVED", "ASK"))
        ]
        if moved:
            again = await self._cluster_pipeline([commands[n] for n in moved])
            for n, reply in zip(moved, again, strict=True):
                results[n] = reply
        return results

    async def _send(
        self,
        acquire: Callable[[], Awaitable[Any]],
        release: Callable[[Any], Any],
        commands: Sequence[tuple[Any, ...]],
    ) -> list[Any]:
        """``commands`` written on one connection at once, packed by hiredis (in C) where it
        is installed: redis-py packs each argument in Python, 1.2 µs a job of a batch, which
        for 10,000 jobs would hold the event loop for 12 ms."""
        packed = None if _pack is None else await _packed(commands)
        conn = await acquire()
        try:
            await conn.send_packed_command(conn.pack_commands(commands) if packed is None else packed)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:  # an error reply; the rest still has to be read
                    replies.append(exc)
            return replies
        except BaseException:
            # Replies may be left unread (a cancelled await): never reuse it as it is.
            await conn.disconnect()
            raise
        finally:
            released = release(conn)
            if inspect.isawaitable(released):
                await released

    async def enqueue(self, records: Sequence[JobRecord], max_queue_length: int | None = None) -> None:
        if not records:
            return
        if self.durable:
            await asyncio.to_thread(self.backend.enqueue, records, max_queue_length)
            return
        grouped: dict[str, list[Any]] | None = None
        by_queue = None
        if len(records) > _STEP:
            # A large batch is planned a step at a time (the sync store plans it at once).
            by_queue = self.backend._split(records)
            grouped = {}
            for queue, batch in by_queue.items():
                args: list[Any] = []
                for i in range(0, len(batch), _STEP // 2):  # (two arguments a job)
                    await asyncio.sleep(0)
                    args += groups(batch[i : i + _STEP // 2])
                grouped[queue] = args
        plan = self.backend.plan_enqueue(records, max_queue_length, by_queue, grouped)
        try:
            replies = await self.run(plan.first) if plan.first else []
            results = await self.run(plan.scripts)
        except BaseException:
            plan.forget(self.backend._registered)
            raise
        results = self.backend.enqueued(plan, replies, results)
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
        shard, located = queue, False  # the queue is a guess: a partitioned one has shards
        while True:
            if shard is None:
                shard, located = await self._queue_of(job_id), True
                if shard is None:
                    return None
            (state,) = await self.run(
                [Call("watch", self.keys.watch(shard), [self.keys.prefix(shard), job_id])]
            )
            left = RECHECK if deadline is None else deadline - time.monotonic()
            if state is None:
                if not located:
                    shard = None
                    continue
                # Gone, or moved to another queue as it was looked up: read it as it goes.
                return await poll_ended(self, job_id, None if deadline is None else max(0.0, left))
            if state in ENDED or left <= 0:
                return await self.get(job_id)
            token = self.keys.ended(shard, job_id)
            try:
                woken = await self.client.blpop([token], timeout=max(0.01, min(left, RECHECK)))
            except UNAVAILABLE as exc:
                raise unavailable("Redis", self.backend.url, exc, RedisUnavailable) from exc
            if woken is not None:
                # Put the token back for anyone else waiting for the same job.
                await self.run([Call(None, "LPUSH", token, "1"), Call(None, "EXPIRE", token, 300)])

    async def close(self) -> None:
        await self.client.aclose()


async def _packed(commands: Sequence[tuple[Any, ...]]) -> list[bytes]:
    """``commands`` packed by hiredis, ``_STEP`` arguments a step of the event loop: a long
    command is packed in slices, each slice's own header (``*<count>``) left off behind the
    whole command's."""
    assert _pack is not None
    pack = _pack
    out: list[bytes] = []
    done = 0  # arguments packed in this step
    for command in commands:
        if done + len(command) <= _STEP:
            out.append(pack(command))
            done += len(command)
            continue
        parts = [b"*%d\r\n" % len(command)]
        for i in range(0, len(command), _STEP):
            if done:
                await asyncio.sleep(0)
            piece = pack(command[i : i + _STEP])
            parts.append(piece[piece.index(b"\r\n") + 2 :])
            done = min(_STEP, len(command) - i)
        out.append(b"".join(parts))
    return out
