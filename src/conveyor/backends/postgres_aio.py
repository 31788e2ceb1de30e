"""The async client API on PostgreSQL: psycopg's ``AsyncConnection``, the sync store's
statements.

Connections are kept in a small free list of this event loop's own rather than an
``AsyncConnectionPool``, whose background tasks would outlive a loop that closes (each
``asyncio.run`` of a test suite is a new loop). A job is waited for with ``LISTEN``: see
``wait_ended``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any, TypeVar

import psycopg

from ..errors import QueueFull
from ..job import ACTIVE, JobRecord
from ..limits import split
from .base import unavailable
from .postgres import (
    _COPY_TYPES,
    CALLER_RETRY_FOR,
    COPY_FROM,
    RECHECK,
    PostgresBackend,
    _advisory_key,
    _record,
)

T = TypeVar("T")
AsyncConn = psycopg.AsyncConnection[Any]


class AsyncPostgresStore:
    def __init__(self, backend: PostgresBackend) -> None:
        self.backend = backend
        self.sql = backend.sql
        self._idle: list[AsyncConn] = []

    # -- connections ----------------------------------------------------------------------
    async def _connect(self) -> AsyncConn:
        conn = await psycopg.AsyncConnection.connect(self.backend.conninfo, autocommit=True)
        await conn.execute("SET jit = off")  # as the sync store's pool does: see _configure
        return conn

    async def _run(self, work: Callable[[AsyncConn], Awaitable[T]]) -> T:
        """``work`` on an idle connection (or a new one); on a lost connection, again on a
        fresh one for up to ``CALLER_RETRY_FOR`` seconds (every ``work`` is idempotent),
        then ``StoreUnavailable``."""
        deadline = time.monotonic() + CALLER_RETRY_FOR
        pause = 0.05
        while True:
            conn: AsyncConn | None = None
            try:
                conn = self._idle.pop() if self._idle else await self._connect()
                result = await work(conn)
            except psycopg.OperationalError as exc:
                if conn is not None:
                    with suppress(Exception):
                        await conn.close()
                if time.monotonic() + pause > deadline:
                    raise unavailable("PostgreSQL", self.backend.url, exc) from exc
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            except BaseException:
                if conn is not None:  # a statement error or a cancel: not reused mid-exchange
                    with suppress(Exception):
                        await conn.close()
                raise
            if len(self._idle) < self.backend.max_size:
                self._idle.append(conn)
            else:
                await conn.close()
            return result

    # -- calls ----------------------------------------------------------------------------
    async def enqueue(self, records: Sequence[JobRecord], max_queue_length: int | None = None) -> None:
        if not records:
            return
        backend = self.backend
        large = len(records) >= COPY_FROM
        # A large batch goes by COPY, as in the sync store: its parameters are then never
        # dumped as arrays (in Python, ~10 µs a value, all of it inside one step of the loop).
        queues = sorted({r.queue for r in records})
        params = {"queues": queues, "channel": backend.channel} if large else backend._enqueue_params(records)
        known = backend._known_queues.issuperset(queues)
        statement = self.sql.enqueue[len(records) == 1, known]
        tries = 0

        async def insert(conn: AsyncConn) -> None:
            nonlocal tries
            tries += 1
            if not large and max_queue_length is None:
                await conn.execute(statement, params)  # idempotent: ON CONFLICT DO NOTHING
                return
            if tries > 1 and await (await conn.execute(self.sql.exists, {"id": records[0].id})).fetchone():
                return  # the previous try committed (all or none) and lost its answer
            async with conn.transaction():
                if max_queue_length is not None:
                    await self._check_length(conn, records, max_queue_length, queues)
                if large:
                    await self._copy(conn, records)
                    await conn.execute(self.sql.enqueue_queues, params)
                else:
                    await conn.execute(statement, params)

        await self._run(insert)
        if not known:
            backend._known_queues.update(queues)

    async def _copy(self, conn: AsyncConn, records: Sequence[JobRecord]) -> None:
        async with conn.cursor().copy(self.sql.copy_jobs) as copy:
            copy.set_types(_COPY_TYPES)
            for n, r in enumerate(records):
                if n and not n % COPY_FROM:
                    await asyncio.sleep(0)  # let the loop run between slices of rows
                await copy.write_row(
                    (
                        r.id,
                        r.queue,
                        r.payload,
                        r.priority,
                        r.state,
                        r.run_at,
                        r.max_attempts,
                        r.timeout,
                        r.created_at,
                        r.task,
                    )
                )

    async def _check_length(
        self, conn: AsyncConn, records: Sequence[JobRecord], limit: int, queues: list[str]
    ) -> None:
        """``PostgresBackend._check_length`` on an async connection."""
        for queue in queues:
            await conn.execute(self.sql.lock, {"key": _advisory_key(f"conveyor.{self.backend.ns}.{queue}")})
        cursor = await conn.execute(self.sql.waiting_counts, {"queues": queues})
        waiting = dict(await cursor.fetchall())
        for queue in queues:
            adding = sum(1 for r in records if r.queue == queue)
            have = int(waiting.get(queue, 0))
            if have + adding > limit:
                raise QueueFull(
                    f"queue {queue!r} holds {have} waiting jobs; adding {adding} "
                    f"would pass its limit of {limit}"
                )

    async def get(self, job_id: str) -> JobRecord | None:
        async def read(conn: AsyncConn) -> JobRecord | None:
            row = await (await conn.execute(self.sql.get, {"id": job_id})).fetchone()
            return None if row is None else _record(row)

        return await self._run(read)

    async def wait_ended(self, job_id: str, queue: str | None, timeout: float | None) -> JobRecord | None:
        """``PostgresBackend.wait_ended`` on an async connection: LISTEN, mark the job
        waited for, and wait for its trigger's notification."""
        deadline = None if timeout is None else time.monotonic() + timeout
        waits = self.backend.waits

        async def wait(conn: AsyncConn) -> JobRecord | None:
            await conn.execute(waits.listen)
            try:
                while (
                    marked := await (await conn.execute(waits.watch, {"id": job_id})).fetchone()
                ) is not None:
                    if marked[0] != ACTIVE:  # see postgres.Waits
                        # The queue workers serve: a limited job's bucket is not one.
                        await conn.execute(
                            self.sql.notify, {"channel": self.backend.channel, "queue": split(marked[1])[0]}
                        )
                    left = RECHECK if deadline is None else deadline - time.monotonic()
                    if left <= 0:
                        break
                    async for note in conn.notifies(timeout=min(left, RECHECK)):
                        if note.payload == job_id:
                            break
            finally:
                await conn.execute(waits.unlisten)
            row = await (await conn.execute(self.sql.get, {"id": job_id})).fetchone()
            return None if row is None else _record(row)

        return await self._run(wait)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(Exception):
                await conn.close()
