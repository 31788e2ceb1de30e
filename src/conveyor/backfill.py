"""``conveyor enqueue TASK --from-file jobs.jsonl``: a backfill, one job per line.

Lines are read and checked as the file is read, and stored through ``enqueue_many`` a chunk
at a time: memory stays bounded whatever the file's size, and each chunk is stored whole or
not at all. A bad line stops the run before its chunk is stored and says how many jobs the
earlier chunks stored, so a rerun can skip them (``tail -n +N``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any, BinaryIO

import click
import orjson

from .render import plural

if TYPE_CHECKING:
    from .app import Conveyor
    from .task import BoundTask, JobSpec


def enqueue_file(app: Conveyor, task: BoundTask[Any, Any], file: BinaryIO, chunk: int) -> int:
    """Enqueue a job of ``task`` per line of ``file``; the number enqueued. A progress bar
    (by bytes read) shows on stderr when it is a terminal."""
    total = _size(file)
    progress = None
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(
            TextColumn("[bold]enqueue"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[jobs]:,} jobs"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
    stored = 0
    batch: list[JobSpec] = []
    with progress if progress is not None else contextlib.nullcontext():
        bar = progress.add_task("enqueue", total=total, jobs=0) if progress is not None else None
        for number, line in enumerate(file, 1):
            if line.strip():
                batch.append(_spec(task, line, number, stored))
            if len(batch) >= chunk:
                stored += _store(app, batch, number, stored)
                batch = []
            if progress is not None and bar is not None and (number % 256 == 0 or not batch):
                progress.update(bar, completed=file.tell() if total else 0, jobs=stored)
        if batch:
            stored += _store(app, batch, None, stored)
        if progress is not None and bar is not None:
            progress.update(bar, completed=total or 0, jobs=stored)
    return stored


def _spec(task: BoundTask[Any, Any], line: bytes, number: int, stored: int) -> JobSpec:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise _bad(number, f"not JSON ({exc})", stored) from None
    if isinstance(value, list):
        args, kwargs = value, {}
    elif isinstance(value, dict) and set(value) <= {"args", "kwargs"}:
        args, kwargs = value.get("args", []), value.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise _bad(number, '"args" must be a list and "kwargs" an object', stored)
    else:
        raise _bad(number, 'expected a list of arguments or {"args": [...], "kwargs": {...}}', stored)
    try:
        task.task.check_arguments(args, kwargs)
    except TypeError as exc:
        raise _bad(number, str(exc), stored) from None
    return task.job(*args, **kwargs)


def _store(app: Conveyor, batch: list[JobSpec], number: int | None, stored: int) -> int:
    try:
        app.enqueue_many(batch)
    except TypeError as exc:  # an argument that is not JSON: found before anything is stored
        where = f"the chunk ending at line {number}" if number is not None else "the last chunk"
        raise click.ClickException(f"{where}: {exc}; {_so_far(stored)}") from None
    return len(batch)


def _bad(number: int, problem: str, stored: int) -> click.ClickException:
    return click.ClickException(f"line {number}: {problem}; {_so_far(stored)}")


def _so_far(stored: int) -> str:
    if not stored:
        return "nothing was enqueued"
    return f"{plural(stored, 'job')} before it {'was' if stored == 1 else 'were'} enqueued"


def _size(file: BinaryIO) -> int | None:
    try:
        return os.fstat(file.fileno()).st_size or None
    except (OSError, ValueError, AttributeError):
        return None
