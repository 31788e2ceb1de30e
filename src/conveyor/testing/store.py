"""Pointing an app at a store of its own for the length of a test."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app import Conveyor


@contextmanager
def temporary_store(app: Conveyor, url: str | None = None) -> Iterator[Conveyor]:
    """``app`` itself, with its tasks and settings, on another store for the block: ``url``,
    or a fresh SQLite file in a temporary directory. Its own store is put back afterwards,
    untouched (its connections kept), and so is its clock. For tests of an application whose
    app object is made at import time (``app = Conveyor(...)`` in ``myproject/tasks.py``)."""
    saved = (app.url, app._backend, app.clock, app._async_stores)
    with tempfile.TemporaryDirectory(prefix="conveyor-test-") as directory:
        app.url = url or f"sqlite:///{Path(directory) / 'jobs.db'}"
        app._backend = None
        app.clock = time.time
        app._async_stores = {}
        try:
            yield app
        finally:
            try:
                app.close()
            finally:
                app.url, app._backend, app.clock, app._async_stores = saved
