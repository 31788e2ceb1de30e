"""Admin listings: pages read through a store's indexes and resumed from a cursor, and a
search that reads a bounded number of jobs and says how many.

A store implements one hook, ``_page(state, queue, limit, after, now, needles, task)``: the
first ``limit`` jobs of one visible state after the cursor ``after``, in that state's listing
order, each with its own cursor. With ``needles`` or ``task`` (a search) the store reads only
each job's sort key and whether it matches (its payload holds every needle; it is a job of
that task), and the whole record only of those that do (None for the rest): a search reads
thousands of index entries, not thousands of jobs into Python. A store that keeps the task
name in an index (SQLite and PostgreSQL) lists a task's jobs of a state from that index,
newest id first, reading only that task's jobs; one that does not (Redis) looks for the
task's name in each payload, as for a text. Everything else is built here, once for every
store: listings of every state, the deprecated offsets, and search. A page costs the same
wherever it starts (a keyset, never an OFFSET), so page 10,000 costs what page 1 does.

Listing order per state (what an index gives without a sort; stated in docs/listings.md):

- ``pending``: claim order (priority high to low, then run_at, then id): what runs next first;
- ``active``: newest id first;
- ``waiting`` (held by its dependencies): newest first (by id; on Redis by enqueue time);
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

from ..job import ACTIVE, CANCELLED, COMPLETED, DEAD, PENDING, RETRY, SCHEDULED, WAITING, JobRecord

#: The order a listing of every state goes through the states.
EVERY_STATE = (ACTIVE, PENDING, SCHEDULED, RETRY, WAITING, DEAD, CANCELLED, COMPLETED)
#: Jobs a search reads at most by default, newest first: a search that matches nothing costs
#: this much, however many jobs are stored (figures in docs/listings.md).
SEARCH_SCAN = 2_000
#: Jobs read at most per store call (a page, a stretch of a search, an offset skipped).
CHUNK = 500
#: Jobs one step inside the store reads at most where a step holds the whole store while it
#: runs (a Redis script): a store call of ``CHUNK`` jobs is that many steps, sent together.
#: Every 50 scripts Redis also runs a step of Lua's garbage collector inside the next one,
#: in proportion to what the scripts before it left: 100 keeps both a fraction of a ms.
STEP = 100
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

    #: Jobs read at most per ``_page`` call, and per call of a search.
    chunk = CHUNK
    search_chunk = CHUNK
    #: Whether a search's first store call reads only the page's size, the next ones four
    #: times more up to ``search_chunk`` (a SQL store reads its rows whole: a search whose
    #: jobs mostly match reads no more than it shows); else ``search_chunk`` each (Redis:
    #: each call is a round-trip).
    search_grows = True
    #: Jobs a search reads at most when the caller does not say.
    search_scan = SEARCH_SCAN

    def _page(
        self,
        state: str,
        queue: str | None,
        limit: int,
        after: str | None,
        now: float,
        needles: Sequence[bytes] = (),
        task: str | None = None,
    ) -> list[tuple[str, JobRecord | None]]:
        raise NotImplementedError  # each store's: a keyset read of one state's index

    def _walk(
        self,
        state: str | None,
        queue: str | None,
        after: str | None,
        now: float,
        chunk: int,
        needles: Sequence[bytes] = (),
        budget: int | None = None,
        task: str | None = None,
        most: int | None = None,
    ) -> Iterator[tuple[str, JobRecord | None]]:
        """(cursor, record) of every job listed after ``after``, read ``chunk`` at a time
        (lazily: a consumer that stops early reads no further), ``budget`` jobs at most.
        The record is None for a job that does not match (its payload lacks one of the
        ``needles``, it is not a job of ``task``), or one
        deleted between a store's two reads; with ``needles``, such a job has a cursor (""
        otherwise) only when it ends a store call: the walk stops or goes on only there.
        With ``most``, each store call reads four times what the one before it did, from
        ``chunk`` up to ``most`` (a search: as few jobs as fill the page when most match,
        few calls when few do)."""
        states = EVERY_STATE if state is None else (state,)
        if state is not None and state not in EVERY_STATE:
            raise ValueError(f"unknown state {state!r}; expected one of {', '.join(EVERY_STATE)}")
        start = 0
        if after:
            where = cursor_state(after)
            if where not in states:
                raise ValueError(f"bad listing cursor {after!r}: not one of a {state or 'job'} listing")
            start = states.index(where)
        left = budget
        for index, current in enumerate(states[start:]):
            position = after if index == 0 else None
            while left is None or left > 0:
                size = chunk if left is None else min(chunk, left)
                rows = self._page(current, queue, size, position, now, needles, task)
                yield from rows
                if left is not None:
                    left -= len(rows)
                if len(rows) < size:
                    break
                position = rows[-1][0]
                if most is not None:
                    chunk = min(4 * chunk, most)

    def list_jobs(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        after: str | None = None,
        now: float | None = None,
        search: str | Sequence[str] | None = None,
        scan: int | None = None,
        task: str | None = None,
    ) -> Page:
        now = time.time() if now is None else now
        scan = self.search_scan if scan is None else scan
        if limit < 1:
            return Page([], None)
        needles = [search.encode()] if isinstance(search, str) else [s.encode() for s in search or ()]
        needles = [needle for needle in needles if needle]
        if not needles and task is None:
            rows = []
            # At most ``chunk`` jobs a store call, however large the page: no call (a Redis
            # script above all) grows with what the caller asks for.
            for position, record in self._walk(state, queue, after, now, min(limit + 1, self.chunk)):
                if record is None:
                    continue  # deleted between the store's two reads (Redis)
                rows.append((position, record))
                if len(rows) > limit:
                    break
            following = rows[limit - 1][0] if len(rows) > limit else None
            return Page([record for _, record in rows[:limit]], following)
        found: list[JobRecord] = []
        scanned = 0
        for position, record in self._walk(
            state,
            queue,
            after,
            now,
            min(limit + 1, self.search_chunk) if self.search_grows else self.search_chunk,
            needles,
            max(scan, 1),
            task,
            self.search_chunk if self.search_grows else None,
        ):
            scanned += 1
            if record is not None:
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
        for _, record in self._walk(state, queue, after, now, min(offset + limit, self.chunk)):
            if record is not None:
                rows.append(record)
            if len(rows) >= offset + limit:
                break
        return rows[offset:]
