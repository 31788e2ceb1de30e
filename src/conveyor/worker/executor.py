"""Running jobs: sync tasks on a pool of threads, async tasks on one event loop.

Both report each finished run as an outcome to ``done``; neither touches the store.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from ..codec import BadPayload, Payload
from ..errors import Fail, JobCancelled, JobTimeout
from ..job import EXPIRED, Failure, JobRecord
from ..logs import duration_text, job_line, job_log
from ..middleware import overriding
from ..render import plural
from ..running import CurrentJob, _current
from .outcome import Outcome, dead, describe, failure, is_json_result

if TYPE_CHECKING:
    # asyncio is imported by the code that runs async tasks: a worker without any starts
    # sooner (it is ~40% of conveyor's import time).
    import asyncio

    from ..app import Conveyor
    from ..task import Task

log = logging.getLogger("conveyor.worker")


class Prepared(NamedTuple):
    record: JobRecord
    task: Task[Any, Any]
    payload: Payload


@dataclass(eq=False)
class RunningJob:
    job_id: str
    thread_id: int
    deadline: float
    timeout: float
    retry: bool
    fired: bool = False
    finished: bool = False
    abandoned: bool = False


def _raise_in_thread(thread_id: int, exc: type[BaseException] | None) -> None:
    # PyThreadState_SetAsyncExc raises ``exc`` in the thread at its next bytecode; with
    # NULL it withdraws an exception that has not been raised yet. (ctypes is imported
    # here, when a timeout fires: 1-2 ms of every worker's start otherwise.)
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else ctypes.c_void_p(0)
    )


class Watchdog:
    """Stops sync runs that outlive their timeout by raising ``JobTimeout`` in their thread.

    A thread stuck in C code (a blocking call that never returns to Python) cannot be
    interrupted; after ``stuck_after`` more seconds its job is recorded as timed out anyway
    and ``on_stuck`` is told, so a supervised worker process can be replaced.
    """

    def __init__(self, on_stuck: Callable[[RunningJob], None], stuck_after: float = 5.0) -> None:
        self._entries: dict[int, RunningJob] = {}
        self._lock = threading.Condition()
        self._on_stuck = on_stuck
        self._stuck_after = stuck_after
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="conveyor-watchdog", daemon=True)
        self._thread.start()

    def start(self, record: JobRecord, timeout: float) -> RunningJob:
        entry = RunningJob(
            record.id,
            threading.get_ident(),
            time.monotonic() + timeout,
            timeout,
            retry=record.attempts < record.max_attempts,
        )
        with self._lock:
            self._entries[id(entry)] = entry
            self._lock.notify()
        return entry

    def finish(self, entry: RunningJob) -> None:
        with self._lock:
            if entry.finished:
                return
            entry.finished = True
            self._entries.pop(id(entry), None)
            if entry.fired:
                _raise_in_thread(entry.thread_id, None)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify()

    def _loop(self) -> None:
        with self._lock:
            while not self._stopped:
                now = time.monotonic()
                wake = now + 3600.0
                for entry in list(self._entries.values()):
                    if not entry.fired and now >= entry.deadline:
                        entry.fired = True
                        _raise_in_thread(entry.thread_id, JobTimeout)
                    if entry.fired and not entry.abandoned:
                        if now >= entry.deadline + self._stuck_after:
                            entry.abandoned = True
                            self._entries.pop(id(entry), None)
                            self._on_stuck(entry)
                        else:
                            wake = min(wake, entry.deadline + self._stuck_after)
                    elif not entry.fired:
                        wake = min(wake, entry.deadline)
                self._lock.wait(max(0.001, wake - now))


class Runner:
    """Turns a fetched record into an outcome: decode, find the task, run it, classify."""

    def __init__(self, app: Conveyor, watchdog: Watchdog, worker_id: str) -> None:
        self.app = app
        self.worker_id = worker_id
        #: The runs in progress, by job id: what the canceller looks at.
        self.running: dict[str, CurrentJob] = {}
        # Orders a stop request against the end of a run: once a run is over, no
        # JobCancelled may be raised into its thread (it would hit the next job).
        self._stop_lock = threading.Lock()
        self.codec = app.codec
        self.tasks = app.tasks
        self.middleware = app.middleware
        # Only middleware that wrap a run are called around it; none, and a run is one call.
        self.around = overriding(app.middleware, "around_run")
        self.around_async = overriding(app.middleware, "around_run_async")
        self.watchdog = watchdog
        # Read once: with INFO off, a finished job costs no logging call at all.
        self.log_done = job_log.isEnabledFor(logging.INFO)
        # Bound once: a bound method made per run is an allocation per job.
        self._writer = self._write_progress

    def prepare(self, record: JobRecord) -> Prepared | Failure:
        try:
            payload = self.codec.decode_payload(record.id, record.queue, record.max_attempts, record.payload)
        except BadPayload as exc:
            return self._unrunnable(record, "?", f"bad payload: {exc}")
        if payload.expires is not None and payload.expires <= self.app.clock():
            return self._expired(record, payload.task)
        task = self.tasks.get(payload.task)
        if task is None:
            return self._unrunnable(
                record,
                payload.task,
                f"unknown task {payload.task!r}: not registered on the app this worker runs "
                "(a worker runs registered tasks only)",
            )
        # tuple.__new__ straight: a NamedTuple's own __new__ is a Python call per job.
        return tuple.__new__(Prepared, (record, task, payload))

    def _expired(self, record: JobRecord, task: str) -> Failure:
        """A job fetched after its ``expires`` time: cancelled, never run."""
        job_line(
            logging.WARNING,
            "%s %s cancelled: expired before it started",
            (task, record.id),
            {"job_id": record.id, "task": task, "outcome": "cancelled", "error": EXPIRED},
        )
        return Failure(record.id, EXPIRED, None, None, cancelled=True)

    def _unrunnable(self, record: JobRecord, task: str, reason: str) -> Failure:
        result = dead(record, reason)
        job_line(
            logging.ERROR,
            "%s %s dead: %s",
            (task, record.id, result.error),
            {"job_id": record.id, "task": task, "outcome": "dead", "error": result.error},
        )
        return result

    def run_sync(self, job: Prepared) -> Outcome | None:
        """Run a sync task in the calling thread; None if the watchdog gave up on it.

        Per job, so ``_here``, ``_ended`` and the plain case of ``_succeeded`` are written
        out here: a Python call each saved."""
        record, task, payload = job
        meta = payload.meta
        here = CurrentJob(
            record.id,
            task.name,
            record.queue,
            record.attempts,
            record.max_attempts,
            {} if meta is None else meta,
            self._writer,
            self.app,
        )
        here._thread = threading.get_ident()
        running = _current.set(here)
        self.running[record.id] = here
        try:
            if self.middleware:
                self._before(job)
            started = time.perf_counter()
            entry = None if record.timeout is None else self.watchdog.start(record, record.timeout)
            try:
                try:
                    if self.around:
                        value = self._wrapped(here, job)
                    else:
                        value = task.fn(*payload.args, **payload.kwargs)
                finally:
                    if entry is not None:
                        self.watchdog.finish(entry)
                    with self._stop_lock:  # self._ended(here)
                        here._finished = True
                        if here._signalled:
                            _raise_in_thread(here._thread, None)
            except JobTimeout as exc:
                if entry is not None and entry.abandoned:
                    return None
                return self._failed(job, exc, started, f"timed out after {record.timeout:g} s")
            except JobCancelled:
                return self._cancelled(job, here, started)
            except Exception as exc:
                if here.cancel_note is not None:  # the task saw .cancelled and raised
                    return self._cancelled(job, here, started)
                return self._failed(job, exc, started)
            if value is None and not self.middleware and not self.log_done:
                return (record.id, None)  # what _succeeded returns for it
            return self._succeeded(job, value, started)
        finally:
            self.running.pop(record.id, None)
            _current.reset(running)
            if here._pending is not None:
                here._flush()

    def _here(self, job: Prepared) -> CurrentJob:
        record, task, payload = job
        meta = payload.meta
        return CurrentJob(
            record.id,
            task.name,
            record.queue,
            record.attempts,
            record.max_attempts,
            {} if meta is None else meta,
            self._writer,
            self.app,
        )

    def _write_progress(self, job_id: str, data: bytes) -> bool:
        return self.app.backend.set_progress(job_id, self.worker_id, data)

    def _ended(self, here: CurrentJob) -> None:
        """The run is over: a stop request that arrives now is too late, and one raised into
        the thread but not delivered yet is withdrawn."""
        with self._stop_lock:
            here._finished = True
            if here._signalled:
                _raise_in_thread(here._thread, None)

    def stop_run(self, here: CurrentJob) -> None:
        """Stop a run that ``app.cancel`` asked to stop (``here.cancel_note`` is set)."""
        with self._stop_lock:
            if here._finished or here._signalled:
                return
            here._signalled = True
            if here._stop is not None:
                here._stop()
            elif here._task is not None and here._loop is not None:
                here._loop.call_soon_threadsafe(here._task.cancel)
            elif here._thread:
                _raise_in_thread(here._thread, JobCancelled)

    def _cancelled(self, job: Prepared, here: CurrentJob, started: float) -> Failure:
        record = job.record
        note = here.cancel_note or "cancelled"
        if self.middleware:
            self._after(job, started, JobCancelled(note), None)
        duration = time.perf_counter() - started
        job_line(
            logging.WARNING,
            "%s %s cancelled in %s: %s",
            (job.task.name, record.id, duration_text(duration), note),
            {
                "job_id": record.id,
                "task": job.task.name,
                "outcome": "cancelled",
                "duration": duration,
                "error": note,
            },
        )
        return Failure(record.id, note, None, None, cancelled=True)

    def _wrapped(self, here: CurrentJob, job: Prepared) -> Any:
        """The task called through every ``around_run``, the first registered outermost."""
        fn, args, kwargs = job.task.fn, job.payload.args, job.payload.kwargs
        return self.wrap(here, lambda: fn(*args, **kwargs))

    def wrap(self, here: CurrentJob, innermost: Callable[[], Any]) -> Any:
        """``innermost()`` called through every ``around_run`` (the process pool wraps its
        wait for the child with it)."""

        def call(index: int) -> Any:
            if index == len(self.around):
                return innermost()
            return self.around[index].around_run(here, lambda: call(index + 1))

        return call(0)

    async def _wrapped_async(self, here: CurrentJob, job: Prepared) -> Any:
        fn, args, kwargs = job.task.fn, job.payload.args, job.payload.kwargs

        async def call(index: int) -> Any:
            if index == len(self.around_async):
                return await fn(*args, **kwargs)
            return await self.around_async[index].around_run_async(here, lambda: call(index + 1))

        return await call(0)

    async def run_async(self, job: Prepared) -> Outcome:
        import asyncio

        record = job.record
        here = self._here(job)
        here._task = asyncio.current_task()
        here._loop = asyncio.get_running_loop()
        # Each job runs in its own asyncio task, whose context this changes alone.
        _current.set(here)
        self.running[record.id] = here
        try:
            outcome = await self._run_async(job, here)
        finally:
            self.running.pop(record.id, None)
            with self._stop_lock:
                here._finished = True
        if here._pending is not None or here._inflight is not None:
            await here._aflush()
        return outcome

    async def _run_async(self, job: Prepared, here: CurrentJob) -> Outcome:
        import asyncio

        record, task, payload = job
        if self.middleware:
            self._before(job)
        started = time.perf_counter()
        try:
            if self.around_async:
                call = self._wrapped_async(here, job)
            else:
                call = task.fn(*payload.args, **payload.kwargs)
            if record.timeout is None:
                value = await call
            else:
                limit = asyncio.timeout(record.timeout)
                try:
                    async with limit:
                        value = await call
                except TimeoutError as exc:
                    if limit.expired():
                        return self._failed(job, exc, started, f"timed out after {record.timeout:g} s")
                    raise
        except asyncio.CancelledError:
            if here.cancel_note is None:
                raise  # the worker is shutting down: the job goes back to the store
            return self._cancelled(job, here, started)
        except Exception as exc:
            if here.cancel_note is not None:
                return self._cancelled(job, here, started)
            return self._failed(job, exc, started)
        return self._succeeded(job, value, started)

    def _succeeded(self, job: Prepared, value: Any, started: float) -> Outcome:
        if value is None:
            encoded = None
        else:
            problem = is_json_result(value)
            if problem is not None:
                return self._failed(
                    job,
                    TypeError(problem),
                    started,
                    f"task {job.task.name!r} returned a value that is not JSON: {problem}",
                    permanent=True,
                )
            encoded = self.codec.encode_result(value, job.record.id)
        if self.middleware:
            self._after(job, started, None, value)
        if self.log_done:
            job_id = job.record.id
            duration = time.perf_counter() - started
            name = job.task.name
            job_line(
                logging.INFO,
                "%s %s completed in %s",
                (name, job_id, duration_text(duration)),
                {"job_id": job_id, "task": name, "outcome": "completed", "duration": duration},
            )
        return (job.record.id, encoded)

    def _failed(
        self,
        job: Prepared,
        exc: BaseException,
        started: float,
        error: str | None = None,
        *,
        permanent: bool = False,
    ) -> Failure:
        record, task, payload = job
        if isinstance(exc, TypeError) and error is None:
            try:
                task.signature.bind(*payload.args, **payload.kwargs)
            except TypeError as mismatch:
                # Arguments that do not fit will not fit next time either.
                result = dead(record, f"wrong arguments for task {task.name!r}: {mismatch}")
                self._log_failure(job, result, started, final=True)
                return result
        if self.middleware:
            self._after(job, started, exc, None)
        backoff = payload.backoff if payload.backoff is not None else task.options.backoff
        if permanent:
            result = dead(record, error or describe(exc))
        else:
            result = failure(record, exc, backoff, self.app.clock(), error=error)
        self._log_failure(job, result, started, final=permanent or isinstance(exc, Fail))
        return result

    def _log_failure(self, job: Prepared, result: Failure, started: float, *, final: bool) -> None:
        """The line for a failed run: a retry (WARNING) with its delay, or a dead job (ERROR);
        ``final`` for a job that was never going to be retried (``Fail``, bad arguments), whose
        attempt count means nothing."""
        record, name = job.record, job.task.name
        duration = time.perf_counter() - started
        took = duration_text(duration)
        fields: dict[str, Any] = {
            "job_id": record.id,
            "task": name,
            "duration": duration,
            "error": result.error,
            "attempt": record.attempts,
            "max_attempts": record.max_attempts,
        }
        if result.snoozed and result.retry_at is not None:
            delay = max(0.0, result.retry_at - self.app.clock())
            fields.update(outcome="snoozed", retry_in=delay)
            job_line(
                logging.INFO,
                "%s %s snoozed in %s, again in %s",
                (name, record.id, took, duration_text(delay)),
                fields,
            )
        elif result.retry_at is not None:
            delay = max(0.0, result.retry_at - self.app.clock())
            fields.update(outcome="retry", retry_in=delay)
            job_line(
                logging.WARNING,
                "%s %s failed in %s (attempt %d of %d), retrying in %s: %s",
                (
                    name,
                    record.id,
                    took,
                    record.attempts,
                    record.max_attempts,
                    duration_text(delay),
                    result.error,
                ),
                fields,
            )
        elif final:
            fields["outcome"] = "dead"
            job_line(logging.ERROR, "%s %s dead in %s: %s", (name, record.id, took, result.error), fields)
        else:
            fields["outcome"] = "dead"
            job_line(
                logging.ERROR,
                "%s %s dead in %s after %s: %s",
                (name, record.id, took, plural(record.attempts, "attempt"), result.error),
                fields,
            )

    def _before(self, job: Prepared) -> None:
        for mw in self.middleware:
            try:
                mw.before_run(job.record.id, job.task.name)
            except Exception:
                log.exception("middleware %r failed in before_run", mw)

    def _after(self, job: Prepared, started: float, exc: BaseException | None, value: Any) -> None:
        duration = time.perf_counter() - started
        for mw in self.middleware:
            try:
                mw.after_run(job.record.id, job.task.name, duration, exc, value)
            except Exception:
                log.exception("middleware %r failed in after_run", mw)


class ThreadExecutor:
    """``size`` threads taking jobs from one inbox: decoded ones, or fetched records that the
    thread hands to ``route`` itself (off the fetching thread, which can then claim the next
    batch sooner), running the sync jobs."""

    def __init__(
        self,
        runner: Runner,
        size: int,
        done: Callable[[str, Outcome | None], None],
        route: Callable[[JobRecord], Prepared | None],
    ) -> None:
        self._runner = runner
        self._done = done
        self._route = route
        self._inbox: queue.SimpleQueue[JobRecord | Prepared | None] = queue.SimpleQueue()
        # Daemon threads: after the grace period the process may exit with a job still
        # running; its lease, handed back, brings the job back.
        self._threads = [
            threading.Thread(target=self._loop, name=f"conveyor-thread-{i}", daemon=True) for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: JobRecord | Prepared) -> None:
        self._inbox.put(job)

    def take_unstarted(self) -> list[str]:
        """Ids of the jobs still waiting for a thread, removed from the inbox (shutdown)."""
        taken: list[str] = []
        while True:
            try:
                job = self._inbox.get_nowait()
            except queue.Empty:
                return taken
            if isinstance(job, Prepared):
                taken.append(job.record.id)
            elif job is not None:
                taken.append(job.id)

    def stop(self) -> None:
        for _ in self._threads:
            self._inbox.put(None)

    def _loop(self) -> None:
        route, run, done, inbox = self._route, self._runner.run_sync, self._done, self._inbox
        while True:
            try:
                item = inbox.get()
                if item is None:
                    return
                job = item if isinstance(item, Prepared) else route(item)
                if job is not None:
                    done(job.record.id, run(job))
            except JobTimeout:
                # A timeout that arrived just after its job finished; that job's outcome
                # has been reported, so there is nothing left to stop.
                continue


class AsyncExecutor:
    """One event loop in its own thread, running async tasks concurrently."""

    def __init__(self, runner: Runner, done: Callable[[str, Outcome | None], None]) -> None:
        import asyncio

        self._runner = runner
        self._done = done
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, name="conveyor-asyncio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import asyncio

        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def submit(self, job: Prepared) -> None:
        self._loop.call_soon_threadsafe(self._start, job)

    def _start(self, job: Prepared) -> None:
        task = self._loop.create_task(self._one(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _one(self, job: Prepared) -> None:
        try:
            outcome: Outcome | None = await self._runner.run_async(job)
        except BaseException as exc:  # CancelledError at shutdown: hand the job back
            log.debug("async job %s stopped: %s", job.record.id, describe(exc))
            outcome = None
        self._done(job.record.id, outcome)

    def stop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
