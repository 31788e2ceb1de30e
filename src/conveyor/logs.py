"""The worker's log: one line per finished job, as text for people or JSON lines for shippers.

Every record logged while a job runs (the task's own ``logging`` calls included) carries
that job's id: the worker sets a context variable around each run, and ``JobIdFilter`` on a
handler copies it onto the record. ``configure`` installs both on the root logger, as
``conveyor worker`` does; an application with its own logging setup adds ``JobIdFilter()``
to its handlers and reads ``record.job_id``.

Lines cost little: the text form is built with %-formatting and a timestamp cached per
second, the JSON form with orjson (see ``scripts/log_cost.py`` for the figures).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import IO, Any

import orjson

from .running import _current

#: The logger of the one-line-per-job records (``extra``: job_id, task, outcome, duration).
job_log = logging.getLogger("conveyor.job")

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")

_COLOURS = {
    logging.DEBUG: "\x1b[2m",
    logging.INFO: "\x1b[32m",
    logging.WARNING: "\x1b[33m",
    logging.ERROR: "\x1b[31m",
    logging.CRITICAL: "\x1b[1;31m",
}
_RESET = "\x1b[0m"


class JobIdFilter(logging.Filter):
    """Puts the running job's id on each record as ``record.job_id`` (None outside a job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            job = _current.get()
            record.job_id = None if job is None else job.id
        return True


class _Clock:
    """A timestamp's whole seconds as text (``2026-11-27 10:20:31``), formatted once per
    second: strftime is a third of a line's formatting otherwise."""

    __slots__ = ("_convert", "_pattern", "_second", "_text")

    def __init__(self, pattern: str = "%Y-%m-%d %H:%M:%S", utc: bool = False) -> None:
        self._pattern = pattern
        self._convert = time.gmtime if utc else time.localtime
        self._second = -1
        self._text = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._text = time.strftime(self._pattern, self._convert(second))
            self._second = second
        return self._text


class TextFormatter(logging.Formatter):
    """``2026-11-27 10:20:31.042 INFO conveyor.job: add 01… completed in 1.2 ms``; a task's
    own records get ``[job <id>]`` after the logger name. ``colour`` colours the level."""

    def __init__(self, colour: bool = False) -> None:
        super().__init__()
        self.colour = colour
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        level = record.levelname
        if self.colour:
            level = f"{_COLOURS.get(record.levelno, '')}{level}{_RESET}"
        job_id = getattr(record, "job_id", None)
        where = record.name
        if job_id is not None and record.name != "conveyor.job":
            where = f"{where} [job {job_id}]"
        ms = int((record.created % 1) * 1000)
        line = f"{self._clock(record.created)}.{ms:03d} {level} {where}: {message}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        elif record.exc_text:
            line = f"{line}\n{record.exc_text}"
        return line


_JSON_FIELDS = ("job_id", "task", "outcome", "duration", "error", "attempt", "max_attempts", "retry_in")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, pid, and the
    job's fields when there are any (job_id, task, outcome, duration in seconds, error)."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock("%Y-%m-%dT%H:%M:%S", utc=True)

    def format(self, record: logging.LogRecord) -> str:
        created = record.created
        entry: dict[str, Any] = {
            "time": f"{self._clock(created)}.{int((created % 1) * 1e6):06d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for name in _JSON_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def job_line(level: int, message: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
    """Log one job's outcome on ``conveyor.job``, ``fields`` (job_id, task, outcome, …) set on
    the record.

    The record is a copy of one made by ``LogRecord`` with the per-line attributes replaced:
    ``Logger.info(extra=...)`` walks the stack for the caller and checks each extra key, and
    ``LogRecord()`` splits its path and looks up process names, together two thirds of a
    line's cost. (A record factory set with ``logging.setLogRecordFactory`` is bypassed.)"""
    if not job_log.isEnabledFor(level):
        return
    now = time.time()
    attributes = _template().copy()
    attributes.update(fields)
    attributes.update(
        msg=message,
        args=args,
        levelno=level,
        levelname=logging.getLevelName(level),
        created=now,
        msecs=(now % 1) * 1000,
        relativeCreated=(now - _STARTED) * 1000,
        thread=threading.get_ident(),
        process=os.getpid(),
    )
    if logging.logThreads:
        attributes["threadName"] = threading.current_thread().name
    record = logging.LogRecord.__new__(logging.LogRecord)
    record.__dict__ = attributes
    job_log.handle(record)


#: When logging was imported: what LogRecord.relativeCreated counts from.
_STARTED: float = getattr(logging, "_startTime", time.time())
_TEMPLATE: dict[str, Any] = {}


def _template() -> dict[str, Any]:
    """The attributes of a job line's record but the per-line ones, made once."""
    if not _TEMPLATE:
        made = logging.LogRecord("conveyor.job", logging.INFO, __file__, 0, "", (), None, "job_line")
        _TEMPLATE.update(made.__dict__)
    return _TEMPLATE


class BufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that does not flush after every INFO record, unless the stream is a
    terminal: a write call per line is a third of a line's cost, and a busy worker writes
    thousands a second. A background thread flushes within ``delay`` seconds; records at
    WARNING and above flush at once, and so does ``close`` at exit."""

    def __init__(self, stream: IO[str], delay: float = 0.1) -> None:
        super().__init__(stream)
        self._eager = _is_terminal(stream)
        self._delay = delay
        self._pending = threading.Event()
        self._closed = False
        if not self._eager:
            threading.Thread(target=self._flusher, name="conveyor-log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            if self._eager or record.levelno >= logging.WARNING:
                self.flush()
            elif not self._pending.is_set():
                self._pending.set()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _flusher(self) -> None:
        while not self._closed:
            self._pending.wait()
            time.sleep(self._delay)
            self._pending.clear()
            try:
                self.flush()
            except (OSError, ValueError):  # the stream was closed under us: nothing to do
                return

    def close(self) -> None:
        self._closed = True
        self._pending.set()
        with contextlib.suppress(OSError, ValueError):
            self.flush()
        super().close()


def configure(level: str = "INFO", fmt: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """Log to ``stream`` (stderr) at ``level`` in ``fmt`` (text, coloured on a terminal, or
    json), with job ids on records; replaces the root logger's handlers. Returns the handler.

    Not on a terminal, INFO lines reach the stream up to 0.1 s late (see ``BufferedHandler``);
    stderr is then written through a buffer of its own, since Python's stderr writes each
    line at once."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if stream is None:
        stream = sys.stderr
        if not _is_terminal(stream):
            stream = _buffered(stream)
    handler = BufferedHandler(stream)
    colour = fmt == "text" and _is_terminal(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(colour=colour))
    handler.addFilter(JobIdFilter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        if isinstance(old, BufferedHandler):
            old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The worker's records need neither the thread nor the multiprocessing names; each
    # costs a lookup per record.
    logging.logThreads = False
    logging.logMultiprocessing = False
    if hasattr(logging, "logAsyncioTasks"):
        logging.logAsyncioTasks = False
    return handler


def _buffered(stream: IO[str]) -> IO[str]:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream
    encoding = getattr(stream, "encoding", None) or "utf-8"
    return open(fd, "w", buffering=1 << 16, encoding=encoding, errors="backslashreplace", closefd=False)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def duration_text(seconds: float) -> str:
    """``0.4 ms``, ``12 ms``, ``3.2 s``, ``4 min 5 s``."""
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
