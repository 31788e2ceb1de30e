"""SQLite's ``IN (?, …)`` lists: padded to a few lengths, and cut into chunks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

#: The most ids one ``IN (?, …)`` list takes: a power of two, so that a full chunk needs no
#: padding (see in_list).
IN_CHUNK = 512


def in_list(ids: Sequence[str]) -> tuple[str, list[str]]:
    """``?,?,…`` for ``ids`` (not empty) padded to the next power of two with copies of the
    last one (an IN list ignores them), and the padded ids.

    Each length of an IN list is a statement of its own, and sqlite3 keeps the last 128 per
    connection prepared: an acknowledgement of 1 to 500 jobs made a new one for most batch
    sizes, several hundred bytes of SQLite's memory per id, so a worker's acker connection
    held 8.8 MB of statements after a million jobs (issue 19: the worker's RSS grew all
    along a 10M drain, 37 -> 67 MB), evicted and prepared anew all the time. Padded, a
    connection has at most 10 lengths of each statement."""
    size = 1 << (len(ids) - 1).bit_length()
    return ",".join("?" * size), [*ids, *[ids[-1]] * (size - len(ids))]


def in_chunks(ids: Sequence[str]) -> Iterator[tuple[str, list[str]]]:
    """``in_list`` of each chunk of at most IN_CHUNK ids: any number of ids, within SQLite's
    limit on a statement's parameters."""
    for start in range(0, len(ids), IN_CHUNK):
        yield in_list(ids[start : start + IN_CHUNK])
