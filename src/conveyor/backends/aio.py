"""The async client API's side of a store: the few calls an ``await``-ing app makes (enqueue,
read a job, wait for one to end), with each store's native async driver.

A store's ``AsyncStore`` is built on its sync ``Backend``, which states the store's layout
once (its statements, keys, scripts and schema): the async store sends the same statements
and scripts over ``redis.asyncio`` or psycopg's ``AsyncConnection``; SQLite, which has no
async driver, runs the sync store's calls on one thread of its own.

An async store belongs to one event loop (the drivers' connections do), so an app keeps one
per loop, opened by the first ``await`` on that loop: an app that never awaits pays nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..errors import ConfigurationError
from ..job import FINAL_STATES, JobRecord
from .base import Backend

#: Seconds between two reads of a job that a store cannot be woken for, at most.
POLL_MAX = 0.1


class AsyncStore(Protocol):
    async def enqueue(self, records: Sequence[JobRecord], max_queue_length: int | None = None) -> None:
        """``Backend.enqueue``, without blocking the event loop."""

    async def get(self, job_id: str) -> JobRecord | None:
        """``Backend.get``, without blocking the event loop."""

    async def wait_ended(self, job_id: str, queue: str | None, timeout: float | None) -> JobRecord | None:
        """The job's record once it ended (completed, dead or cancelled), else as it stands
        after ``timeout`` seconds (``None``: no limit); None if there is no such job.
        ``queue`` is the job's queue when the caller knows it (a store may find the job
        faster)."""

    async def close(self) -> None: ...


async def poll_ended(store: AsyncStore, job_id: str, timeout: float | None) -> JobRecord | None:
    """``wait_ended`` by reading the job again and again, from every 2 ms to every
    ``POLL_MAX`` seconds: for a store that cannot wake a waiter."""
    import asyncio

    deadline = None if timeout is None else time.monotonic() + timeout
    pause = 0.002
    while True:
        record = await store.get(job_id)
        if record is None or record.state in FINAL_STATES:
            return record
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return record
        await asyncio.sleep(pause if left is None else min(pause, left))
        pause = min(pause * 1.5, POLL_MAX)


@runtime_checkable
class OpensAsync(Protocol):
    """A store with an async client (every store of conveyor has one)."""

    def open_async(self) -> AsyncStore:
        """The async store over this one, for the running event loop: built on it, since
        the drivers bind their connections to the loop that made them."""


def open_async_store(backend: Backend) -> AsyncStore:
    if not isinstance(backend, OpensAsync):
        raise ConfigurationError(f"the store {type(backend).__name__} has no async client")
    return backend.open_async()
