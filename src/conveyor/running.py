"""The running job, as its task sees it: ``current_job()``.

The worker sets a context variable around each run: a sync task's thread and an async task's
own asyncio task each see their job, and nothing else does. Outside a run, ``current_job()``
is None. The same variable puts the job id on every log record a task writes
(``conveyor.logs.JobIdFilter``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import asyncio  # (imported when a run needs it: see conveyor.app on import time)

__all__ = ["PROGRESS_EVERY", "CurrentJob", "current_job"]

log = logging.getLogger("conveyor.worker")

#: Seconds between two progress writes of one job, at least; the last value always lands.
PROGRESS_EVERY = 0.5

#: What writes a job's progress to the store: (job id, encoded progress) -> stored?
Writer = Callable[[str, bytes], bool]


class CurrentJob:
    """What a running task may know about its job, and the two things it may do: report
    progress, and see that it was cancelled. One is made per run (slots, no dataclass: it
    sits on the hot path); the worker's own bookkeeping of the run lives here too."""

    __slots__ = (
        "_app",
        "_finished",
        "_inflight",
        "_loop",
        "_pending",
        "_sent_at",
        "_signalled",
        "_stop",
        "_task",
        "_thread",
        "_writer",
        "attempts",
        "cancel_note",
        "id",
        "max_attempts",
        "meta",
        "queue",
        "task",
    )

    def __init__(
        self,
        job_id: str,
        task: str,
        queue: str,
        attempts: int,
        max_attempts: int,
        meta: dict[str, Any],
        writer: Writer | None = None,
        app: Any = None,
    ) -> None:
        self.id = job_id
        self._app = app
        self.task = task
        self.queue = queue
        #: Runs started so far, this one included (1 on the first run).
        self.attempts = attempts
        self.max_attempts = max_attempts
        #: The job's metadata (``using(meta=...)`` and what middleware added at enqueue);
        #: changes here are seen by middleware of this run, not stored.
        self.meta = meta
        #: Who asked this run to stop (``app.cancel``), once the worker has seen it.
        self.cancel_note: str | None = None
        self._writer = writer
        self._sent_at = 0.0
        self._pending: bytes | None = None
        self._inflight: asyncio.Future[None] | None = None
        # The worker's: the thread or asyncio task running the job, and whether the run is
        # over (a stop request must then not reach the thread).
        self._thread = 0
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished = False
        self._signalled = False
        # How to stop this run if not by its thread or task (--pool process: kill the child).
        self._stop: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"<CurrentJob {self.task} {self.id} attempt {self.attempts}/{self.max_attempts}>"

    @property
    def batch_id(self) -> str | None:
        """For a batch's callback (``app.batch(on_success=...)``): the id of the batch that
        fired it, whose jobs and results ``app.get_batch(id).results()`` reads; else None."""
        value = self.meta.get("conveyor.batch") if self.meta else None
        return value if isinstance(value, str) else None

    @property
    def cancelled(self) -> bool:
        """True once ``app.cancel`` asked this run to stop and the worker saw it (within
        about a second). An async task is cancelled then; a sync one is interrupted the way
        a timeout interrupts it, at its next Python instruction: a long loop in C can check
        this flag and return early."""
        return self.cancel_note is not None

    def dependencies(self) -> list[Any]:
        """Snapshots (``Job``, with ``return_value``) of the jobs this one waited for
        (``using(after=...)``, ``app.chain``), in the order given; a dependency pruned since
        it completed is left out. Empty for a job that waited for nothing. One store read per
        dependency."""
        if self._app is None:
            raise RuntimeError("this run has no app to read its dependencies from")
        jobs: list[Any] = self._app.dependencies(self.id)
        return jobs

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report how far the run got: stored with the job (``app.get_job(id).progress`` is
        ``{"done", "total", "message", "at"}``), shown by the dashboard and ``conveyor
        show``. Cheap to call often: at most one store write every ``PROGRESS_EVERY``
        seconds; the last value reported is always written before the run's outcome."""
        for name, value in (("done", done), ("total", total)):
            if value is not None and (
                type(value) not in (int, float) or not math.isfinite(value) or value < 0
            ):
                raise ValueError(f"progress {name} must be a finite number >= 0, not {value!r}")
        if message is not None and type(message) is not str:
            raise TypeError(f"progress message must be a str, not {type(message).__name__}")
        data = orjson.dumps(
            {
                "done": done,
                "total": total,
                "message": None if message is None else message[:1000],
                "at": time.time(),
            }
        )
        now = time.monotonic()
        if now - self._sent_at < PROGRESS_EVERY:
            self._pending = data
            return
        self._pending = None
        self._sent_at = now
        self._send(data)

    def _send(self, data: bytes) -> None:
        writer = self._writer
        if writer is None:
            return
        if self._loop is None:
            self._write(writer, data)
            return
        # An async task: the store call runs on a thread, never on the event loop; one
        # thread for every async job's writes keeps each job's writes in order.
        self._inflight = self._loop.run_in_executor(_writes(), self._write, writer, data)

    def _write(self, writer: Writer, data: bytes) -> None:
        try:
            writer(self.id, data)
        except Exception as exc:  # progress is advice: a store hiccup must not fail the job
            log.warning("job %s: progress not stored: %s", self.id, exc)

    def _flush(self) -> None:
        """The last progress reported and not yet written (a sync run's end)."""
        if self._pending is not None and self._writer is not None:
            data, self._pending = self._pending, None
            self._write(self._writer, data)

    async def _aflush(self) -> None:
        """An async run's end: the last value reported is written, after every earlier
        write (one thread does them all, in order)."""
        if self._pending is not None and self._writer is not None and self._loop is not None:
            data, self._pending = self._pending, None
            self._inflight = self._loop.run_in_executor(_writes(), self._write, self._writer, data)
        if self._inflight is not None:
            await self._inflight


_writer_thread: ThreadPoolExecutor | None = None
_writer_lock = threading.Lock()


def _writes() -> ThreadPoolExecutor:
    """The one thread that writes async jobs' progress (made on first use)."""
    global _writer_thread
    with _writer_lock:
        if _writer_thread is None:
            _writer_thread = ThreadPoolExecutor(1, thread_name_prefix="conveyor-progress")
        return _writer_thread


_current: ContextVar[CurrentJob | None] = ContextVar("conveyor_current_job", default=None)


def current_job() -> CurrentJob | None:
    """The job this code runs for, inside a task (sync or async); None anywhere else."""
    return _current.get()
