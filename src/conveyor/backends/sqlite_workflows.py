"""Dependencies on SQLite (``using(after=...)``, ``app.chain``): tables, triggers and the
steps that release or cancel the jobs waiting for others.

Two columns of the jobs table carry it, so that jobs outside workflows take exactly the old
paths: ``dependents`` (1 on a job some job waits for) and ``waiting_on`` (on a job enqueued
with ``after``: how many of its dependencies have not completed yet; NULL for the others).
``{ns}_deps`` holds the edges (parent, child, position in the child's list).

- A parent that completes releases its waiting children in the same statement, by a trigger
  whose WHEN clause (``NEW.dependents = 1``) is all a job without dependents pays: each
  child's count goes down by one, and the child whose count reaches 0 becomes pending (or
  scheduled, if its run_at is still ahead). The statement that completes the parent holds
  SQLite's write lock, so however many workers complete the last dependencies at once, each
  edge is counted once and the child released once.
- A parent that ends dead or cancelled (or is deleted before it completed) gets a row in
  ``{ns}_deps_todo`` from a trigger; ``cascade`` (run by the same write transaction of
  fail, cancel, delete, recover and sweep) cancels its waiting children, whose own rows
  follow, a bounded number per call: housekeeping finishes a graph larger than that.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ..errors import UnknownDependency
from ..job import CANCELLED, COMPLETED, DEAD, JobRecord, dependency_note, id_time
from .sqlite_lists import in_chunks

#: Ended parents whose children ``cascade`` cancels per call, at most (the rest: next call,
#: or housekeeping).
CASCADE_BUDGET = 1000


def columns_upgrade(ns: str) -> list[str]:
    """The columns schema version 4 adds to the jobs table."""
    return [
        f"ALTER TABLE {ns}_jobs ADD COLUMN dependents INTEGER NOT NULL DEFAULT 0",
        f"ALTER TABLE {ns}_jobs ADD COLUMN waiting_on INTEGER",
    ]


def schema(ns: str) -> list[str]:
    """Tables, indexes and triggers of dependencies (after the version-4 columns exist)."""
    t = f"{ns}_jobs"
    return [
        f"""CREATE TABLE IF NOT EXISTS {ns}_deps (
            parent TEXT NOT NULL, child TEXT NOT NULL, position INTEGER NOT NULL,
            PRIMARY KEY (parent, child)) WITHOUT ROWID""",
        f"CREATE INDEX IF NOT EXISTS {ns}_deps_child ON {ns}_deps (child, position)",
        f"""CREATE TABLE IF NOT EXISTS {ns}_deps_todo (
            parent TEXT PRIMARY KEY, note TEXT NOT NULL) WITHOUT ROWID""",
        # (Waiting jobs are listed through the listing indexes of sqlite.py, since schema
        # version 7: indexes of their own cost every plain job's insert and change of state
        # an evaluation each.)
        # One trigger per kind of change, not one per case: SQLite runs a row trigger's
        # program (its WHEN clause included) for every row a matching statement changes, flag
        # or not. So it is on last_error, which every statement that ends a job writes
        # (fail, cancel, recover, expiry and cascade() set it; the acknowledgement of a job
        # with dependents clears it) and the claim does not. The plain acknowledgement leaves
        # last_error out and takes only jobs with dependents = 0 (SQLiteBackend.complete):
        # neither it nor the claim runs a trigger of this module.
        # A parent's state changed. Completed: each waiting child counts one dependency less,
        # the last one releases it (SET reads the old waiting_on throughout: > 1 means others
        # are still to come). Dead or cancelled: cascade() cancels its children, in the same
        # transaction.
        f"""CREATE TRIGGER IF NOT EXISTS {ns}_deps_ended AFTER UPDATE OF last_error ON {t}
            WHEN NEW.dependents = 1 AND OLD.state IS NOT NEW.state BEGIN
            UPDATE {t} SET waiting_on = waiting_on - 1,
                state = CASE WHEN waiting_on > 1 THEN 'waiting'
                    WHEN run_at > NEW.finished_at THEN 'scheduled' ELSE 'pending' END
                WHERE NEW.state = 'completed' AND state = 'waiting'
                    AND id IN (SELECT child FROM {ns}_deps WHERE parent = NEW.id);
            INSERT OR REPLACE INTO {ns}_deps_todo (parent, note)
                SELECT NEW.id, 'dependency ' || NEW.id || ' ended ' || NEW.state
                WHERE NEW.state IN ('dead', 'cancelled') AND OLD.state NOT IN ('dead', 'cancelled');
        END""",
        # A job deleted. A parent that had not ended: its children can never be released
        # (cascade() cancels them). One that had: nothing left to tell. A dependent: its edges.
        f"""CREATE TRIGGER IF NOT EXISTS {ns}_deps_gone AFTER DELETE ON {t}
            WHEN OLD.dependents = 1 OR OLD.waiting_on IS NOT NULL BEGIN
            INSERT OR REPLACE INTO {ns}_deps_todo (parent, note)
                SELECT OLD.id, 'dependency ' || OLD.id || ' ended deleted'
                WHERE OLD.dependents = 1 AND OLD.state NOT IN ('completed', 'dead', 'cancelled');
            DELETE FROM {ns}_deps WHERE OLD.dependents = 1
                AND OLD.state IN ('completed', 'dead', 'cancelled') AND parent = OLD.id;
            DELETE FROM {ns}_deps WHERE OLD.waiting_on IS NOT NULL AND child = OLD.id;
        END""",
    ]


def link(
    conn: sqlite3.Connection,
    ns: str,
    records: Sequence[JobRecord],
    after: dict[str, tuple[str, ...]],
    now: float,
    pruned_before: float,
) -> None:
    """Record the dependencies of jobs just inserted (as ``waiting``) in the caller's write
    transaction, in order, so a job of the call may wait for one before it; each job is then
    left waiting, released at once, or cancelled."""
    t = f"{ns}_jobs"
    for r in records:
        deps = after.get(r.id)
        if not deps:
            continue
        states: dict[str, str] = {}
        for marks, chunk in in_chunks(deps):
            states.update(conn.execute(f"SELECT id, state FROM {t} WHERE id IN ({marks})", chunk).fetchall())
        outstanding: list[str] = []
        failed: str | None = None
        for dep in deps:
            state = states.get(dep)
            if state is None:
                made = id_time(dep)
                if made is None or made >= pruned_before:
                    raise UnknownDependency(r.id, dep)
                continue  # pruned after it completed (see docs/workflows.md)
            if state in (DEAD, CANCELLED):
                failed = failed or dependency_note(dep, state)
            elif state != COMPLETED:
                outstanding.append(dep)
        conn.executemany(
            f"INSERT OR IGNORE INTO {ns}_deps (parent, child, position) VALUES (?, ?, ?)",
            [(dep, r.id, n) for n, dep in enumerate(deps)],
        )
        if failed is not None:
            conn.execute(
                f"UPDATE {t} SET state = 'cancelled', finished_at = ?, last_error = ?, waiting_on = 0"
                " WHERE id = ?",
                (now, failed, r.id),
            )
        elif not outstanding:
            conn.execute(
                f"UPDATE {t} SET state = CASE WHEN run_at > ? THEN 'scheduled' ELSE 'pending' END,"
                " waiting_on = 0 WHERE id = ?",
                (now, r.id),
            )
        else:
            conn.execute(f"UPDATE {t} SET waiting_on = ? WHERE id = ?", (len(outstanding), r.id))
            for marks, chunk in in_chunks(outstanding):
                conn.execute(f"UPDATE {t} SET dependents = 1 WHERE id IN ({marks}) AND dependents = 0", chunk)


def cascade(conn: sqlite3.Connection, ns: str, now: float, budget: int = CASCADE_BUDGET) -> int:
    """Cancel the waiting children of parents that ended dead or cancelled (or were deleted),
    level by level (a cancelled child with children of its own adds its row), at most
    ``budget`` parents; returns how many jobs were cancelled. One indexed read when there is
    nothing to do."""
    t = f"{ns}_jobs"
    cancelled = 0
    while budget > 0:
        rows = conn.execute(
            f"SELECT parent, note FROM {ns}_deps_todo LIMIT ?", (min(budget, 100),)
        ).fetchall()
        if not rows:
            break
        budget -= len(rows)
        for parent, note in rows:
            cancelled += conn.execute(
                f"UPDATE {t} SET state = 'cancelled', finished_at = ?, last_error = ?"
                f" WHERE id IN (SELECT child FROM {ns}_deps WHERE parent = ?) AND state = 'waiting'",
                (now, note, parent),
            ).rowcount
            conn.execute(f"DELETE FROM {ns}_deps_todo WHERE parent = ?", (parent,))
            if conn.execute(f"SELECT 1 FROM {t} WHERE id = ?", (parent,)).fetchone() is None:
                conn.execute(f"DELETE FROM {ns}_deps WHERE parent = ?", (parent,))
    return cancelled


def dependencies(conn: sqlite3.Connection, ns: str, job_id: str) -> list[str]:
    return [
        str(parent)
        for (parent,) in conn.execute(
            f"SELECT parent FROM {ns}_deps WHERE child = ? ORDER BY position", (job_id,)
        )
    ]


def dependents(conn: sqlite3.Connection, ns: str, job_id: str, limit: int) -> list[str]:
    return [
        str(child)
        for (child,) in conn.execute(
            f"SELECT child FROM {ns}_deps WHERE parent = ? ORDER BY child LIMIT ?", (job_id, limit)
        )
    ]
