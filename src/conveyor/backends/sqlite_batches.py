"""Batches on SQLite (``conveyor.batch``): tables, triggers and the store's batch calls.

The counters of a batch move in triggers on the jobs table, in the transaction that changes
the job, whichever call changes it (complete, fail, recover, sweep, an admin action). The same
trigger decides the callbacks and inserts each due one, marking it fired: SQLite's write lock
makes that one step, so however the last jobs race to end, exactly one transaction sees a
callback due and not yet fired.

Jobs outside batches run no trigger of this module on their claim and acknowledgement. SQLite
runs a row trigger's program, WHEN clause and all, for every row a statement changes if the
statement writes a column the trigger names (``UPDATE OF``), whatever the row holds: a
trigger on ``state`` ran on every claim and acknowledgement of every job. So the trigger is
on ``last_error``, which every statement that moves a job into or out of an end writes
(fail, recover, expiry, cancel, cascade, retry, the acknowledgement of a job of a workflow)
and the claim never does; the plain acknowledgement (``SQLiteBackend.complete``) leaves it
out and takes only jobs outside workflows with no last error to clear.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..batch import BatchRecord
from ..errors import BatchClosed
from ..job import JobRecord

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

#: A batch that has finished: it counts jobs, and every one of them ended (its callbacks were
#: inserted by the same transaction). The predicate of the index housekeeping prunes by,
#: spelt the same in the query, which is how SQLite knows the index serves it (written
#: "... >= total", SQLite takes the term for a constraint on ``total`` and no longer matches
#: it against the index's: the query scans).
FINISHED = "total > 0 AND completed + dead + cancelled - total >= 0"
#: Finished batches housekeeping deletes per call, at most.
PRUNE_BATCHES = 1000


def _ended(row: str) -> str:
    """Whether ``row``'s job has ended, in comparisons: an IN list of three values in a
    trigger builds a temporary table at each run of the trigger."""
    return f"({row}.state = 'completed' OR {row}.state = 'dead' OR {row}.state = 'cancelled')"


def _moved(ns: str, row: str, batch: str, at: str, deltas: tuple[str, str, str]) -> str:
    """The statement a batch job's move runs: the counters move by ``deltas`` (completed,
    dead, cancelled), and ``due`` says, from the same values, whether a callback not yet
    fired is due now. SET reads the row as it was, so the new counts are spelt out."""
    c, d, x = deltas
    return f"""UPDATE {ns}_batches SET completed = completed + {c}, dead = dead + {d},
            cancelled = cancelled + {x}, at = {at},
            due = (cb_death AND dead + {d} > 0)
                OR (cb_complete AND completed + dead + cancelled + {c} + {d} + {x} >= total)
                OR (cb_success AND completed + {c} >= total)
            WHERE id = {row}.{batch};"""


def batch_schema(ns: str) -> list[str]:
    """Tables, index and triggers of batches, made by CREATE IF NOT EXISTS on every open
    (after the upgrade that gives the jobs table its ``batch_id`` column).

    A batch job's move into or out of an end runs one UPDATE of its batch's row (the trigger
    on jobs); only when that UPDATE finds a callback due does the trigger on batches run,
    which inserts the due callbacks' jobs and marks them fired. (It updates its own row in
    turn, which does not fire it again: SQLite's recursive triggers are off.)"""
    now = "((julianday('now') - 2440587.5) * 86400.0)"
    due = (
        "((c.kind = 'death' AND NEW.dead > 0)"
        " OR (c.kind = 'complete' AND NEW.completed + NEW.dead + NEW.cancelled >= NEW.total)"
        " OR (c.kind = 'success' AND NEW.completed >= NEW.total))"
    )
    due_now = f"c.batch_id = NEW.id AND c.fired IS NULL AND {due}"
    return [
        # cb_*: the callback exists and has not fired; due: one of them is due (see _moved);
        # at: when the last move happened (a callback due then runs from then).
        f"""CREATE TABLE IF NOT EXISTS {ns}_batches (
            id TEXT PRIMARY KEY, parent TEXT, total INTEGER NOT NULL,
            completed INTEGER NOT NULL DEFAULT 0, dead INTEGER NOT NULL DEFAULT 0,
            cancelled INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
            cb_success INTEGER NOT NULL DEFAULT 0, cb_complete INTEGER NOT NULL DEFAULT 0,
            cb_death INTEGER NOT NULL DEFAULT 0, due INTEGER NOT NULL DEFAULT 0, at REAL)
            WITHOUT ROWID""",
        # A callback's job, built and signed by the app at app.batch, stored here until due.
        f"""CREATE TABLE IF NOT EXISTS {ns}_batch_callbacks (
            batch_id TEXT NOT NULL, kind TEXT NOT NULL, job_id TEXT NOT NULL, queue TEXT NOT NULL,
            payload BLOB NOT NULL, priority INTEGER NOT NULL, max_attempts INTEGER NOT NULL,
            timeout REAL, fired REAL, PRIMARY KEY (batch_id, kind)) WITHOUT ROWID""",
        # A batch's jobs by id (its pages); jobs outside batches have no entry.
        f"""CREATE INDEX IF NOT EXISTS {ns}_jobs_batch ON {ns}_jobs (batch_id, id)
            WHERE batch_id IS NOT NULL""",
        # Finished batches by when they finished (``at``: the last move, the one that
        # finished it), for housekeeping; open batches have no entry.
        f"CREATE INDEX IF NOT EXISTS {ns}_batches_finished ON {ns}_batches (at) WHERE {FINISHED}",
        # On last_error, not state: see the module's docstring (schema version 7).
        f"""CREATE TRIGGER IF NOT EXISTS {ns}_jobs_batch_moved AFTER UPDATE OF last_error ON {ns}_jobs
            WHEN NEW.batch_id IS NOT NULL AND OLD.state IS NOT NEW.state
                AND ({_ended("OLD")} OR {_ended("NEW")}) BEGIN
            {
            _moved(
                ns,
                "NEW",
                "batch_id",
                f"coalesce(NEW.finished_at, {now})",
                (
                    "(NEW.state = 'completed') - (OLD.state = 'completed')",
                    "(NEW.state = 'dead') - (OLD.state = 'dead')",
                    "(NEW.state = 'cancelled') - (OLD.state = 'cancelled')",
                ),
            )
        }
        END""",
        # A job deleted before it ended counts as cancelled: its batch must still finish.
        f"""CREATE TRIGGER IF NOT EXISTS {ns}_jobs_batch_deleted AFTER DELETE ON {ns}_jobs
            WHEN OLD.batch_id IS NOT NULL AND NOT {_ended("OLD")} BEGIN
            {_moved(ns, "OLD", "batch_id", now, ("0", "0", "1"))}
        END""",
        # The decision: each due callback's job inserted (a nested batch's into its parent,
        # whose count its on_success and on_death join now), then marked fired.
        f"""CREATE TRIGGER IF NOT EXISTS {ns}_batches_due AFTER UPDATE OF due ON {ns}_batches
            WHEN NEW.due BEGIN
            INSERT INTO {ns}_jobs (id, queue, payload, priority, state, run_at, max_attempts,
                    timeout, created_at, batch_id)
                SELECT c.job_id, c.queue, c.payload, c.priority, 'pending', NEW.at, c.max_attempts,
                    c.timeout, NEW.at, NEW.parent
                FROM {ns}_batch_callbacks c WHERE {due_now};
            UPDATE {ns}_batches SET total = total + (SELECT count(*) FROM {ns}_batch_callbacks c
                    WHERE {due_now} AND c.kind <> 'complete')
                WHERE id = NEW.parent;
            UPDATE {ns}_batch_callbacks SET fired = NEW.at WHERE {due_now.replace("c.", "")};
            UPDATE {ns}_batches SET due = 0,
                cb_death = cb_death AND NOT dead > 0,
                cb_complete = cb_complete AND NOT completed + dead + cancelled >= total,
                cb_success = cb_success AND NOT completed >= total
                WHERE id = NEW.id;
        END""",
    ]


class SQLiteBatches:
    """The batch calls of ``SQLiteBackend`` (``conveyor.batch.StoresBatches``)."""

    ns: str
    t: str
    _registered: set[str]

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _conn(self) -> sqlite3.Connection: ...

    def _insert_batch_jobs(self, conn: sqlite3.Connection, records: Sequence[JobRecord]) -> None:
        conn.executemany(
            f"INSERT INTO {self.t} (id, queue, payload, priority, state, run_at, max_attempts,"
            " timeout, created_at, batch_id, task) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (r.id, r.queue, r.payload, r.priority, r.state, r.run_at, r.max_attempts, r.timeout,
                 r.created_at, r.batch_id, r.task)
                for r in records
            ],
        )  # fmt: skip
        self._register(conn, [r.queue for r in records])

    def _register(self, conn: sqlite3.Connection, queues: Sequence[str]) -> None:
        from ..limits import split

        fresh = {split(q)[0] for q in queues} - self._registered
        if fresh:
            conn.executemany(
                f"INSERT OR IGNORE INTO {self.ns}_queues (name) VALUES (?)", [(q,) for q in fresh]
            )
            self._registered |= fresh

    def create_batch(
        self,
        batch: BatchRecord,
        records: Sequence[JobRecord],
        callbacks: Sequence[tuple[str, JobRecord]],
        now: float,
        *,
        after: Mapping[str, tuple[str, ...]] | None = None,
        pruned_before: float = 0.0,
    ) -> None:
        with self._write() as conn:
            if batch.parent is not None and not _grow(conn, self.ns, batch.parent, 1):
                raise BatchClosed(f"batch {batch.parent} is not open: it cannot take a nested batch")
            kinds = {kind for kind, _ in callbacks}
            conn.execute(
                f"INSERT INTO {self.ns}_batches (id, parent, total, created_at, cb_success,"
                " cb_complete, cb_death) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    batch.id,
                    batch.parent,
                    batch.total,
                    batch.created_at,
                    "success" in kinds,
                    "complete" in kinds,
                    "death" in kinds,
                ),
            )
            conn.executemany(
                f"INSERT INTO {self.ns}_batch_callbacks (batch_id, kind, job_id, queue, payload,"
                " priority, max_attempts, timeout) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (batch.id, kind, r.id, r.queue, r.payload, r.priority, r.max_attempts, r.timeout)
                    for kind, r in callbacks
                ],
            )
            # The callbacks' queues are known to workers before any callback is due.
            self._register(conn, [r.queue for _, r in callbacks])
            self._insert_batch_jobs(conn, records)
            if after:
                _link(conn, self.ns, records, after, now, pruned_before)

    def add_to_batch(
        self,
        batch_id: str,
        records: Sequence[JobRecord],
        now: float,
        *,
        after: Mapping[str, tuple[str, ...]] | None = None,
        pruned_before: float = 0.0,
    ) -> bool:
        with self._write() as conn:
            if not _grow(conn, self.ns, batch_id, len(records)):
                return False
            self._insert_batch_jobs(conn, records)
            if after:
                _link(conn, self.ns, records, after, now, pruned_before)
        return True

    def get_batch(self, batch_id: str) -> BatchRecord | None:
        conn = self._conn()
        row = conn.execute(
            f"SELECT id, total, completed, dead, cancelled, created_at, parent FROM {self.ns}_batches"
            " WHERE id = ?",
            (batch_id,),
        ).fetchone()
        if row is None:
            return None
        callbacks = {
            str(kind): (str(job_id), None if fired is None else float(fired))
            for kind, job_id, fired in conn.execute(
                f"SELECT kind, job_id, fired FROM {self.ns}_batch_callbacks WHERE batch_id = ?",
                (batch_id,),
            )
        }
        return _batch_record(row, callbacks)

    def batch_jobs(self, batch_id: str, after: str | None, limit: int) -> list[JobRecord]:
        from .sqlite import _COLUMNS

        rows = self._conn().execute(
            f"SELECT {_COLUMNS} FROM {self.t} WHERE batch_id = ? AND id > ? ORDER BY id LIMIT ?",
            (batch_id, after or "", limit),
        )
        return [JobRecord(*row) for row in rows]


def _link(
    conn: sqlite3.Connection,
    ns: str,
    records: Sequence[JobRecord],
    after: Mapping[str, tuple[str, ...]],
    now: float,
    pruned_before: float,
) -> None:
    """Jobs of the batch that wait for others, inserted ``waiting`` by this transaction:
    their edges, in the same transaction (sqlite_workflows.link); one a dependency cancels at
    once moves out of ``waiting`` by an UPDATE, which the batch's trigger counts."""
    from . import sqlite_workflows

    sqlite_workflows.link(conn, ns, records, dict(after), now, pruned_before)


def prune_batches(conn: sqlite3.Connection, ns: str, before: float) -> int:
    """Delete batches that finished before ``before`` (``result_ttl`` ago), oldest first, at
    most ``PRUNE_BATCHES``, through the index of finished batches: the cost does not depend
    on how many batches or jobs are stored. Open batches are never in that index. A job of a
    pruned batch that moves later (a dead one retried) finds no row to move: it runs as a
    job of no batch. Returns how many were deleted."""
    ids = [
        row[0]
        for row in conn.execute(
            f"SELECT id FROM {ns}_batches WHERE {FINISHED} AND at < ? ORDER BY at LIMIT ?",
            (before, PRUNE_BATCHES),
        )
    ]
    if ids:
        conn.executemany(f"DELETE FROM {ns}_batch_callbacks WHERE batch_id = ?", [(i,) for i in ids])
        conn.executemany(f"DELETE FROM {ns}_batches WHERE id = ?", [(i,) for i in ids])
    return len(ids)


def _grow(conn: sqlite3.Connection, ns: str, batch_id: str, count: int) -> bool:
    """Count ``count`` more jobs in the batch if it is open; whether it was."""
    return bool(
        conn.execute(
            f"UPDATE {ns}_batches SET total = total + ? WHERE id = ?"
            " AND (completed + dead + cancelled < total OR total = 0)",
            (count, batch_id),
        ).rowcount
    )


def _batch_record(row: Sequence[Any], callbacks: dict[str, tuple[str, float | None]]) -> BatchRecord:
    batch_id, total, completed, dead, cancelled, created_at, parent = row
    return BatchRecord(
        str(batch_id),
        int(total),
        int(completed),
        int(dead),
        int(cancelled),
        float(created_at),
        None if parent is None else str(parent),
        callbacks,
    )
