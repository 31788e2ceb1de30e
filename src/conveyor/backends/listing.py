"""Admin listings: pages read through a store's indexes and resumed from a cursor, and a
search that reads a bounded number of jobs and says how many.

A store implements one hook, ``_page(state, queue, limit, after, now)``: the first ``limit``
jobs of one visible state after the cursor ``after``, in that state's listing order, each
with its own cursor. Everything else is built here, once for every store: listings of every
state, the deprecated offsets, and search. A page costs the same wherever it starts (a
keyset, never an OFFSET), so page 10,000 costs what page 1 does.

Listing order per state (what an index gives without a sort; stated in docs/listings.md):

- ``pending``: claim order (priority high to low, then run_at, then id): what runs next first;
- ``active``: newest id first;
- ``completed``, ``dead``, ``cancelled``, ``scheduled``, ``retry``: newest first, by id on
  SQLite and PostgreSQL (their ``jobs_state`` index), by the time kept in the state's sorted
  set on Redis (finished_at for the first three; run_at, soonest first, for the other two).
  SQLite lists ``completed`` by finished_at, newest first (its ``jobs_finished`` index).

A listing of every state goes state by state in ``EVERY_STATE`` order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..job import ACTIVE, CANCELLED, COMPLETED, DEAD, PENDING, RETRY, SCHEDULED, JobRecord

#: The order a listing of every state goes through the states.
EVERY_STATE = (ACTIVE, PENDING, SCHEDULED, RETRY, DEAD, CANCELLED, COMPLETED)
#: Jobs a search reads at most, newest first: a search that matches nothing costs this much,
#: however many jobs are stored.
SEARCH_SCAN = 10_000
#: Jobs read per store call while searching or skipping an offset.
CHUNK = 500
SEPARATOR = "~"


@dataclass(frozen=True)
class Page:
    """One page of a listing. ``next`` resumes it (``after=next``); None: nothing follows.

    With a search, ``scanned`` is how many jobs were read to fill the page, and ``stopped``
    is True when the search gave up at its bound (``scan``) before reaching the end of the
    listing: jobs past ``next`` were not looked at."""

    records: list[JobRecord]
    next: str | None
    scanned: int | None = None
    stopped: bool = False


def make_cursor(state: str, *parts: object) -> str:
    """A cursor: the state and the sort key of the last job listed (the id last)."""
    return SEPARATOR.join((state, *(str(p) for p in parts)))


def cursor_state(cursor: str) -> str:
    """The state a cursor belongs to."""
    return cursor.split(SEPARATOR, 1)[0]


def cursor_parts(cursor: str, state: str, count: int) -> list[str]:
    """The ``count`` key parts of a cursor of ``state`` (the last, an id, may hold anything);
    ``ValueError`` naming the cursor when it is not one."""
    parts = cursor.split(SEPARATOR, count)
    if len(parts) != count + 1 or parts[0] != state or not parts[-1]:
        raise ValueError(f"bad listing cursor {cursor!r}: not one of a {state} listing")
    return parts[1:]


def cursor_float(value: str, cursor: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"bad listing cursor {cursor!r}: {value!r} is not a number") from None
    if number != number:  # NaN compares with nothing
        raise ValueError(f"bad listing cursor {cursor!r}: {value!r} is not a number")
    return number


def cursor_int(value: str, cursor: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"bad listing cursor {cursor!r}: {value!r} is not an integer") from None


class Listings:
    """``list_jobs`` and ``jobs`` of the Backend protocol, built on a store's ``_page``."""

    def _page(
        self, state: str, queue: str | None, limit: int, after: str | None, now: float
    ) -> list[tuple[str, JobRecord]]:
        raise NotImplementedError  # each store's: a keyset read of one state's index

    def _walk(
        self, state: str | None, queue: str | None, after: str | None, now: float, chunk: int
    ) -> Iterator[tuple[str, JobRecord]]:
        """(cursor, record) of every job listed after ``after``, read ``chunk`` at a time
        (lazily: a consumer that stops early reads no further)."""
        states = EVERY_STATE if state is None else (state,)
        if state is not None and state not in EVERY_STATE:
            raise ValueError(f"unknown state {state!r}; expected one of {', '.join(EVERY_STATE)}")
        start = 0
        if after:
            where = cursor_state(after)
            if where not in states:
                raise ValueError(f"bad listing cursor {after!r}: not one of a {state or 'job'} listing")
            start = states.index(where)
        for index, current in enumerate(states[start:]):
            position = after if index == 0 else None
            while True:
                rows = self._page(current, queue, chunk, position, now)
                yield from rows
                if len(rows) < chunk:
                    break
                position = rows[-1][0]

    def list_jobs(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        after: str | None = None,
        now: float | None = None,
        search: str | Sequence[str] | None = None,
        scan: int = SEARCH_SCAN,
    ) -> Page:
        now = time.time() if now is None else now
        if limit < 1:
            return Page([], None)
        needles = [search.encode()] if isinstance(search, str) else [s.encode() for s in search or ()]
        if not any(needles):
            rows = []
            # At most CHUNK jobs a store call, however large the page: no call (a Redis
            # script above all) grows with what the caller asks for.
            for row in self._walk(state, queue, after, now, min(limit + 1, CHUNK)):
                rows.append(row)
                if len(rows) > limit:
                    break
            following = rows[limit - 1][0] if len(rows) > limit else None
            return Page([record for _, record in rows[:limit]], following)
        found: list[JobRecord] = []
        scanned = 0
        for position, record in self._walk(state, queue, after, now, CHUNK):
            scanned += 1
            if all(needle in record.payload for needle in needles):
                found.append(record)
                if len(found) == limit:
                    return Page(found, position, scanned)
            if scanned >= scan:
                return Page(found, position, scanned, stopped=True)
        return Page(found, None, scanned)

    def jobs(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
        now: float | None = None,
        search: str | None = None,
        after: str | None = None,
    ) -> list[JobRecord]:
        now = time.time() if now is None else now
        if search:
            return self.list_jobs(state, queue, offset + limit, after, now, search).records[offset:]
        if offset <= 0:
            return self.list_jobs(state, queue, limit, after, now).records
        # Deprecated: an offset is skipped by reading it, O(offset); ``after`` costs O(page).
        rows: list[JobRecord] = []
        for _, record in self._walk(state, queue, after, now, min(offset + limit, CHUNK)):
            rows.append(record)
            if len(rows) >= offset + limit:
                break
        return rows[offset:]
