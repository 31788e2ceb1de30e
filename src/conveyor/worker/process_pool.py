"""``--pool process``: sync tasks run in child processes, one job at a time each.

The parent keeps what the thread pool does — decoding and verifying the payload, middleware
hooks, the log line, turning an exception into a retry or ``dead`` — and a child only calls
the task function. So a timeout can be a hard stop: the child is killed (SIGKILL), whatever
it was doing (a C call, a socket read without a timeout). A child that dies (a segfault, the
OOM killer) fails only its job, with the signal as the reason, and is replaced; children are
also replaced after ``max_tasks`` jobs, or once their resident memory passes ``max_memory``
after a job, as Celery's prefork pool does for leaky tasks.

Children start from the ``forkserver`` (never a fork of this threaded process) and import
the app by its ``MODULE:APP``; messages are JSON (see ``process_child``).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import Fail, JobTimeout, Retry, Snooze
from ..job import Failure, JobRecord
from ..logs import JsonFormatter
from ..redaction import MAX_TRACEBACK_LENGTH, redact
from ..running import CurrentJob, _current
from . import process_child
from .executor import Prepared, Runner, ThreadExecutor
from .outcome import Outcome

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext
    from multiprocessing.process import BaseProcess

    from ..app import Conveyor

log = logging.getLogger("conveyor.worker")

#: Seconds a new child may take to import the app before its job fails.
START_TIMEOUT = 60.0


class ChildDied(Exception):
    """The child process running a job died (a signal, or an exit) before answering."""


class ChildError(Exception):
    """An exception raised by a task in a child process, as the parent sees it."""

    def __init__(self, message: str, reply: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        #: The child's whole answer, when this carries it through around_run middleware.
        self.reply = reply


class Child:
    """One child process and its end of the pipe."""

    def __init__(self, context: ForkServerContext, target: str, measure: bool) -> None:
        self.conn, child_end = context.Pipe()
        # Never written to: the child exits when it reads the end (this process is gone).
        lifeline, self._lifeline = context.Pipe(duplex=False)
        level, fmt = _log_setup()
        self.process: BaseProcess = context.Process(
            target=process_child.main,
            args=(target, child_end, lifeline, level, fmt, measure),
            name="conveyor-child",
            # Not a daemon: a daemonic process may not start processes of its own, and a
            # task may well use multiprocessing. The pool stops its children itself.
            daemon=False,
        )
        self.process.start()
        child_end.close()
        lifeline.close()
        self.ready = False
        self.jobs = 0
        self.rss = 0  # bytes, after its last job (measured only when recycling by memory)

    def wait_ready(self) -> str | None:
        """None once the child has loaded the app, else why it could not."""
        if self.ready:
            return None
        try:
            if not self.conn.poll(START_TIMEOUT):
                self.kill()
                return f"the child process did not load the app within {START_TIMEOUT:g} s"
            reply = orjson.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            return f"the child process could not start: {self.death()}"
        if "failed" in reply:
            self.close()
            return f"the child process could not load the app: {reply['failed']}"
        self.ready = True
        return None

    def call(self, message: bytes, timeout: float | None) -> dict[str, Any] | None:
        """The child's answer to ``message``; None if none came within ``timeout``.
        Raises ``ChildDied`` if the child died first."""
        try:
            self.conn.send_bytes(message)
            if not self.conn.poll(timeout):
                return None
            reply: dict[str, Any] = orjson.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            raise ChildDied(self.death()) from None
        self.jobs += 1
        return reply

    def death(self) -> str:
        """How the child ended, for a job's error: the signal that killed it, or its exit code."""
        self.process.join(5.0)
        code = self.process.exitcode
        self.conn.close()
        self._lifeline.close()
        if code is None:
            self.kill()
            return "the child process closed its pipe and was killed"
        if code < 0:
            return f"the child process running it was killed by {_signal_name(-code)}"
        return f"the child process running it exited with code {code}"

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()
        self._lifeline.close()

    def close(self) -> None:
        """Let the child exit (it reads the closed pipe as the end), killing it if it does not."""
        self.conn.close()
        self.process.join(2.0)
        if self.process.exitcode is None:
            self.kill()
        self._lifeline.close()


class ProcessPool(ThreadExecutor):
    """``size`` children, each fed by one thread of this process (the thread pool's inbox,
    submit and shutdown), which waits for its child's answer for at most the job's timeout."""

    def __init__(
        self,
        runner: Runner,
        size: int,
        done: Callable[[str, Outcome | None], None],
        route: Callable[[JobRecord], Prepared | None],
        target: str,
        *,
        max_tasks: int | None = None,
        max_memory: int | None = None,
    ) -> None:
        # Set before the threads start: the base class starts them.
        self._target = target
        self._max_tasks = max_tasks
        self._max_memory = max_memory
        self._stopping = False
        self._busy: dict[int, Child] = {}
        self._context = multiprocessing.get_context("forkserver")
        # Children fork from a server that has conveyor imported already; the app itself is
        # imported by each child, so nothing it opens at import is shared between children.
        self._context.set_forkserver_preload([process_child.__name__])
        super().__init__(runner, size, done, route)

    def stop(self) -> None:
        """Stop the children: idle ones exit, busy ones (past the grace period) are killed."""
        self._stopping = True
        super().stop()
        for child in list(self._busy.values()):
            child.process.kill()
        deadline = time.monotonic() + 5.0
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        route, done, inbox = self._route, self._done, self._inbox
        # Started before the first job comes, so that it finds the app loaded.
        child: Child | None = self._start()
        try:
            while True:
                item = inbox.get()
                if item is None:
                    return
                job = item if isinstance(item, Prepared) else route(item)
                if job is None:
                    continue
                if child is None:
                    child = self._start()
                outcome, child = self._run(child, job)
                done(job.record.id, outcome)
                if child is None or self._due(child):
                    if child is not None:
                        child.close()
                    # Started now, so it loads the app while this thread waits for a job.
                    child = None if self._stopping else self._start()
        finally:
            if child is not None:
                child.close()

    def _start(self) -> Child:
        return Child(self._context, self._target, self._max_memory is not None)

    def _due(self, child: Child) -> bool:
        """True if ``child`` has done its share: recycle it before its next job."""
        if self._max_tasks is not None and child.jobs >= self._max_tasks:
            return True
        return self._max_memory is not None and child.rss > self._max_memory

    def _run(self, child: Child, job: Prepared) -> tuple[Outcome | None, Child | None]:
        """Run ``job`` in ``child``: the outcome, and the child if it can take another job."""
        record, task, payload = job
        runner = self._runner
        problem = child.wait_ready()
        if problem is not None:
            log.error("%s", problem)
            return runner._failed(job, ChildDied(problem), time.perf_counter(), problem), None
        message = orjson.dumps(
            {
                "id": record.id,
                "task": task.name,
                "args": payload.args,
                "kwargs": payload.kwargs,
                "queue": record.queue,
                "attempts": record.attempts,
                "max_attempts": record.max_attempts,
                "meta": payload.meta,
                "worker": runner.worker_id,
            }
        )
        # Middleware and the parent's log lines see the job, as in a pool thread; a cancel
        # stops the run by killing its child.
        here = runner._here(job)
        here._stop = child.process.kill
        running = _current.set(here)
        runner.running[record.id] = here
        try:
            return self._call(child, job, message, here)
        finally:
            runner.running.pop(record.id, None)
            _current.reset(running)

    def _call(
        self, child: Child, job: Prepared, message: bytes, here: CurrentJob
    ) -> tuple[Outcome | None, Child | None]:
        record, task, _ = job
        runner = self._runner
        if runner.middleware:
            runner._before(job)
        started = time.perf_counter()
        ident = threading.get_ident()
        self._busy[ident] = child
        try:
            try:
                if runner.around:
                    # around_run middleware (tracing) wraps the parent's wait for the child; an
                    # error the task raised there comes through call_next as ChildError.
                    reply = self._wrapped(here, lambda: child.call(message, record.timeout))
                else:
                    reply = child.call(message, record.timeout)
            finally:
                runner._ended(here)  # from now on a cancel must not kill this child
        except ChildDied as died:
            if self._stopping:
                return None, None  # killed at shutdown: the job was handed back
            if here.cancel_note is not None:
                return runner._cancelled(job, here, started), None
            reason = str(died)
            log.error("job %s: %s; starting a new one", record.id, reason)
            return runner._failed(job, died, started, reason), None
        finally:
            del self._busy[ident]
        if reply is None:
            child.kill()
            error = f"timed out after {record.timeout:g} s (child process killed)"
            return runner._failed(job, JobTimeout(), started, error), None
        child.rss = reply.get("rss", 0)
        if "value" in reply:
            return runner._succeeded(job, reply["value"], started), child
        if "not_json" in reply:
            problem = reply["not_json"]
            error = f"task {task.name!r} returned a value that is not JSON: {problem}"
            return runner._failed(job, TypeError(problem), started, error, permanent=True), child
        return _from_child(runner, job, reply["error"], started), child

    def _wrapped(self, here: CurrentJob, call: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        """The child's answer, through every ``around_run``: an error the task raised comes
        through them as ``ChildError``, then back out as the answer."""

        def innermost() -> dict[str, Any] | None:
            reply = call()
            if reply is not None and "error" in reply:
                raise ChildError(_error_text(reply["error"]), reply)
            return reply

        try:
            answer: dict[str, Any] | None = self._runner.wrap(here, innermost)
        except ChildError as exc:
            if exc.reply is None:
                raise
            return exc.reply
        return answer


def _error_text(error: dict[str, Any]) -> str:
    return f"{error['type']}: {error['message']}" if error.get("message") else str(error.get("type"))


def _from_child(runner: Runner, job: Prepared, error: dict[str, Any], started: float) -> Outcome:
    """The failure the thread pool would record for the exception the child describes."""
    exc: BaseException
    text: str | None = None
    if "fail" in error:
        exc = Fail(error["fail"])
    elif "retry" in error:
        exc = Retry(error["retry"]["delay"], error["retry"]["reason"])
    elif "snooze" in error:
        exc = Snooze(error["snooze"])
    elif error["type_error"]:
        exc = TypeError(error["message"])  # so that wrong arguments are told apart
    else:
        exc = ChildError(error["message"])
        text = f"{error['type']}: {error['message']}" if error["message"] else error["type"]
    result = runner._failed(job, exc, started, text)
    if "traceback" in error and isinstance(result, Failure):
        result = replace(result, traceback=redact(error["traceback"], MAX_TRACEBACK_LENGTH))
    return result


def find_target(app: Conveyor) -> str:
    """The ``MODULE:APP`` under which ``app`` can be imported, for children to load it: a
    module that has it as a global, preferably one that defines its tasks (other modules
    may have imported it too)."""
    homes = {task.fn.__module__ for task in app.tasks.values()}
    found: list[tuple[bool, str]] = []
    for name, module in list(sys.modules.items()):
        if name in ("__main__", "__mp_main__") or module is None:
            continue
        for attribute, value in list(vars(module).items()):
            if value is app:
                found.append((name not in homes, f"{name}:{attribute}"))
    if found:
        return min(found)[1]
    raise ValueError(
        "the process pool's children import the app by name, and no imported module has it "
        "as a global: give app.worker(app_target='module:app')"
    )


def _log_setup() -> tuple[str | None, str]:
    """The parent's logging, for a child to set up the same way (none if the parent has none)."""
    root = logging.getLogger()
    if not root.handlers:
        return None, "text"
    json = any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    return logging.getLevelName(root.level), "json" if json else "text"


def _signal_name(number: int) -> str:
    """``SIGSEGV (signal 11)``; SIGKILL says who sends it uninvited."""
    hint = ": the OOM killer, or kill -9" if number == signal.SIGKILL else ""
    try:
        return f"{signal.Signals(number).name} (signal {number}{hint})"
    except ValueError:
        return f"signal {number}"
