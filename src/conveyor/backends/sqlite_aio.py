"""The async client API on SQLite: the sync store's calls on one thread of their own.

SQLite has no async driver; its calls are short, and one thread keeps them in order on one
connection (the store keeps a connection per thread) while the event loop runs on. Waiting
for a job is polling, with backoff: SQLite has nothing to wake a reader in another process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..job import JobRecord
from .aio import poll_ended
from .sqlite import SQLiteBackend

T = TypeVar("T")
#: Rows the thread inserts between two chances for the event loop's thread to take the GIL.
SLICE_ROWS = 100


class AsyncSQLiteStore:
    def __init__(self, backend: SQLiteBackend) -> None:
        self.backend = backend
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="conveyor-sqlite-async")

    async def _call(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    async def enqueue(self, records: Sequence[JobRecord], max_queue_length: int | None = None) -> None:
        await self._call(lambda: self.backend.enqueue(records, max_queue_length, slice_rows=SLICE_ROWS))

    async def get(self, job_id: str) -> JobRecord | None:
        return await self._call(lambda: self.backend.get(job_id))

    async def wait_ended(self, job_id: str, queue: str | None, timeout: float | None) -> JobRecord | None:
        return await poll_ended(self, job_id, timeout)

    async def close(self) -> None:
        self._thread.shutdown(wait=False)
