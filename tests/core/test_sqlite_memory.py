"""SQLite: a worker's memory does not grow with the batch sizes its acknowledgements and
claims happen to take (issue 19: worker RSS within 20% over a 10M drain).

sqlite3 keeps the last 128 statements prepared per connection, each length of an
``IN (?, …)`` list is a statement of its own, and a long one holds several hundred bytes
of SQLite's memory per id: acknowledgements of every size from 1 to 500 filled a worker's
acker connection with 8.8 MB of statements, evicted and prepared anew all along a drain.
SQLite's own count of its memory (``sqlite3_status64``) shows it without a long drain."""

from __future__ import annotations

import ctypes
import time
from pathlib import Path

import pytest

from conveyor.backends.sqlite import SQLiteBackend
from conveyor.backends.sqlite_lists import in_list as _in_list

MEMORY_USED = 0  # SQLITE_STATUS_MEMORY_USED


def _sqlite_memory() -> int:
    """Bytes SQLite's library holds in this process now."""
    import _sqlite3

    try:
        status = ctypes.CDLL(_sqlite3.__file__).sqlite3_status64
    except (OSError, AttributeError):  # an SQLite linked in without its symbols
        pytest.skip("sqlite3_status64 is not reachable from this Python's sqlite3 module")
    current, highest = ctypes.c_int64(), ctypes.c_int64()
    status(MEMORY_USED, ctypes.byref(current), ctypes.byref(highest), 0)
    return current.value


def test_in_lists_are_padded_to_a_power_of_two_with_the_last_id() -> None:
    assert _in_list(["a"]) == ("?", ["a"])
    assert _in_list(["a", "b", "c"]) == ("?,?,?,?", ["a", "b", "c", "c"])
    marks, ids = _in_list([str(n) for n in range(300)])
    assert marks.count("?") == len(ids) == 512
    assert ids[299:] == ["299"] * 213


def test_acknowledgements_of_every_batch_size_keep_sqlite_memory_flat(tmp_path: Path) -> None:
    backend = SQLiteBackend(f"sqlite:///{tmp_path}/jobs.db", "conveyor")
    try:
        now = time.time()
        # Ids of no job: each call still prepares (and sqlite3 keeps) its statements, both of
        # them (the first takes fewer rows than it was given); nothing else is read.
        backend.complete([("warm", None)], "w", now)
        before = _sqlite_memory()
        for size in range(1, 201):
            backend.complete([(f"j{size}-{n}", None) for n in range(size)], "w", now)
        grown = _sqlite_memory() - before
    finally:
        backend.close()
    # One statement per length, 128 kept per connection: 9.9 MB here for lengths 137-200 of
    # both statements. Padded to 9 lengths (1 to 256): 1.0 MB.
    assert grown < 3_000_000, f"SQLite's memory grew by {grown / 1e6:.1f} MB"
