"""The child side of ``--pool process``: load the app, then run the jobs the parent sends.

One message a ``send_bytes``, each a JSON object (orjson; never pickle). The parent sends
``{"id", "task", "args", "kwargs"}`` for a job whose payload it has already decoded and
verified; the child answers ``{"value": ...}``, ``{"not_json": why}`` or ``{"error": {...}}``,
plus its resident memory in ``rss`` when the parent recycles by memory. The task is looked up
by name in the child's own registry, filled by importing the app the way the parent did:
nothing named in a payload is ever imported.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import threading
import traceback
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import Fail, Retry, Snooze
from ..logs import configure
from ..running import CurrentJob, _current
from .outcome import is_json_result

if TYPE_CHECKING:
    from ..app import Conveyor

_PAGE = os.sysconf("SC_PAGE_SIZE")


def main(
    target: str,
    conn: Connection,
    lifeline: Connection,
    log_level: str | None,
    log_format: str,
    measure: bool,
) -> None:
    """The child process: ``target`` is the parent's ``MODULE:APP``; ``lifeline`` a pipe
    that nothing is written to, whose end tells that the worker is gone."""
    # Ctrl-C in a terminal reaches the whole process group, and systemd's stop signal the
    # whole cgroup: the parent decides when a running job stops, so the child ignores both.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_die_with_worker, args=(lifeline,), name="conveyor-lifeline", daemon=True).start()
    if log_level is not None:
        configure(log_level, log_format)
    try:
        from ..locate import load_app

        app = load_app(target)
    except BaseException as exc:  # a bad import is the parent's to report, with the job
        reply = orjson.dumps({"failed": f"{type(exc).__name__}: {exc}"})
        app = None
    else:
        reply = orjson.dumps({"ready": os.getpid()})
    try:
        conn.send_bytes(reply)
        while app is not None:
            conn.send_bytes(_run(app, orjson.loads(conn.recv_bytes()), measure))
    except (EOFError, OSError):
        pass  # the parent closed the pipe: this child was recycled, or the worker is stopping


def _run(app: Conveyor, job: dict[str, Any], measure: bool) -> bytes:
    reply: dict[str, Any]
    task = app.tasks.get(job["task"])
    if task is None:
        reply = {
            "error": {
                "type": "LookupError",
                "message": f"task {job['task']!r} is not registered in the child process "
                "(tasks must be registered when the app's module is imported)",
            }
        }
    else:
        worker = str(job["worker"])

        def write(job_id: str, data: bytes) -> bool:
            # The child's own connection to the store, opened on its first progress report.
            return app.backend.set_progress(job_id, worker, data)

        here = CurrentJob(
            job["id"],
            job["task"],
            job["queue"],
            job["attempts"],
            job["max_attempts"],
            job["meta"] or {},
            write,
            app,
        )
        token = _current.set(here)
        try:
            value = task.fn(*job["args"], **job["kwargs"])
        except BaseException as exc:  # SystemExit too: it fails the job, not the child
            reply = {"error": _error(exc)}
        else:
            problem = is_json_result(value)
            reply = {"value": value} if problem is None else {"not_json": problem}
        finally:
            _current.reset(token)
            if here._pending is not None:
                here._flush()  # the last progress lands before the outcome
    if measure:
        reply["rss"] = _rss()
    return orjson.dumps(reply)


def _error(exc: BaseException) -> dict[str, Any]:
    """What the parent needs to treat ``exc`` as the thread pool would."""
    error: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "type_error": isinstance(exc, TypeError),
    }
    if isinstance(exc, Fail):
        error["fail"] = exc.reason
    elif isinstance(exc, Retry):
        error["retry"] = {"delay": exc.delay, "reason": exc.reason}
    elif isinstance(exc, Snooze):
        error["snooze"] = exc.delay
    return error


def _rss() -> int:
    """Resident memory now, in bytes (the peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _die_with_worker(lifeline: Connection) -> None:
    """Exit as soon as the worker is gone, even killed with -9 mid-job: a child left running
    would run its job a second time beside the one its lease brings back elsewhere. (The
    forkserver, this process's parent, outlives the worker while any child lives, so
    PR_SET_PDEATHSIG would not do.)"""
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv_bytes()
    os._exit(1)
