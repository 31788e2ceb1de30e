"""Batches on PostgreSQL (``conveyor.batch``): the store's batch calls.

The counters move, and the callbacks fire, in row triggers of the jobs table (migration
``*_batches.sql``): in the transaction that ends the job, whichever statement ends it. The
batch's row lock orders the transactions that end its last jobs, so exactly one of them sees
a callback due and not yet fired. A job outside batches never calls the trigger function: its
WHEN clause tests ``batch_id`` first, in C.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..batch import BatchRecord
from ..errors import BatchClosed
from ..job import CANCELLED, WAITING, JobRecord
from ..limits import split

if TYPE_CHECKING:
    from psycopg import Connection

    Conn = Connection[Any]

_T = TypeVar("_T")
#: Finished batches housekeeping deletes per call, at most.
PRUNE_BATCHES = 1000
#: Finished batches that finished before %(before)s, oldest first, through the index of
#: finished batches (migration 0012; its predicate, spelt the same here), with their
#: callbacks. A batch re-opened meanwhile (a retry in another transaction) is skipped: FOR
#: UPDATE re-reads a row changed concurrently against the predicate.
PRUNE_SQL = """WITH gone AS (
    DELETE FROM {s}.batches WHERE id IN (
        SELECT id FROM {s}.batches
        WHERE total > 0 AND completed + dead + cancelled - total >= 0 AND at < %(before)s
        ORDER BY at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING id)
DELETE FROM {s}.batch_callbacks WHERE batch_id IN (SELECT id FROM gone)"""
_COPY_TYPES = ["text", "text", "bytea", "int4", "text", "float8", "int4", "float8", "float8", "text"]


class PostgresBatches:
    """The batch calls of ``PostgresBackend`` (``conveyor.batch.StoresBatches``)."""

    schema: str
    channel: str

    if TYPE_CHECKING:

        def _run(self, work: Callable[[Conn], _T], retry: bool = True, retry_for: float = ...) -> _T: ...

    def prune_batches(self, conn: Conn, before: float) -> None:
        """Delete batches that finished before ``before`` (``result_ttl`` ago), at most
        ``PRUNE_BATCHES`` per call (housekeeping). A job of a pruned batch that moves later
        (a dead one retried) finds no row to move: it runs as a job of no batch."""
        conn.execute(PRUNE_SQL.format(s=self.schema), {"before": before, "limit": PRUNE_BATCHES})

    def _store_batch_jobs(
        self,
        conn: Conn,
        records: Sequence[JobRecord],
        after: Mapping[str, tuple[str, ...]] | None,
        now: float,
        pruned_before: float,
    ) -> None:
        """Insert a batch's jobs; those that wait for others (``after``) with their edges,
        as ``enqueue_after`` stores them (their dependencies locked first). One a dependency
        cancels at once is inserted ``waiting`` and then cancelled by an UPDATE, which the
        batch's statement trigger counts (it counts moves, and an INSERT is none)."""
        if not after:
            self._insert_batch_jobs(conn, records)
            return
        from . import postgres_workflows as workflows

        ours = {r.id for r in records}
        outside = sorted({dep for deps in after.values() for dep in deps} - ours)
        sql = self.workflow_sql  # type: ignore[attr-defined]
        stored = {str(i): str(st) for i, st in conn.execute(sql.lock, {"ids": outside}).fetchall()}
        mark, edges, flag = workflows.plan(records, dict(after), stored, now, pruned_before)
        cancelled = [r.id for r in records if r.id in after and r.state == CANCELLED]
        for r in records:
            if r.id in cancelled:
                r.state = WAITING
        self._insert_batch_jobs(conn, records)
        conn.execute(sql.mark, mark)
        conn.execute(sql.edges, edges)
        if flag:
            conn.execute(sql.flag, {"ids": flag})
        if cancelled:
            conn.execute(
                f"UPDATE {self.schema}.jobs SET state = 'cancelled' WHERE id = ANY(%(ids)s::text[])",
                {"ids": cancelled},
            )
            for r in records:
                if r.id in cancelled:
                    r.state = CANCELLED

    def _insert_batch_jobs(self, conn: Conn, records: Sequence[JobRecord]) -> None:
        s = self.schema
        with conn.cursor().copy(
            f"COPY {s}.jobs (id, queue, payload, priority, state, run_at, max_attempts, timeout,"
            " created_at, task, batch_id) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types([*_COPY_TYPES, "text"])  # the jobs' columns, then batch_id
            for r in records:
                copy.write_row(
                    (r.id, r.queue, r.payload, r.priority, r.state, r.run_at, r.max_attempts,
                     r.timeout, r.created_at, r.task, r.batch_id)
                )  # fmt: skip
        self._register(conn, [r.queue for r in records], wake=True)

    def _register(self, conn: Conn, queues: Sequence[str], wake: bool) -> None:
        names = sorted({split(q)[0] for q in queues})
        if not names:
            return
        conn.execute(
            f"INSERT INTO {self.schema}.queues (name) SELECT unnest(%(q)s::text[]) ON CONFLICT DO NOTHING",
            {"q": names},
        )
        if wake:
            conn.execute(
                "SELECT pg_notify(%(channel)s, q) FROM unnest(%(q)s::text[]) AS q",
                {"q": names, "channel": self.channel},
            )

    def _grow(self, conn: Conn, batch_id: str, count: int) -> bool:
        """Count ``count`` more jobs in the batch if it is open; whether it was."""
        cur = conn.execute(
            f"UPDATE {self.schema}.batches SET total = total + %(n)s WHERE id = %(id)s"
            " AND (completed + dead + cancelled < total OR total = 0)",
            {"n": count, "id": batch_id},
        )
        return cur.rowcount > 0

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
        s = self.schema
        tries = 0

        def create(conn: Conn) -> None:
            nonlocal tries
            tries += 1
            with conn.transaction():
                if (
                    tries > 1
                    and conn.execute(
                        f"SELECT 1 FROM {s}.batches WHERE id = %(id)s", {"id": batch.id}
                    ).fetchone()
                ):
                    return  # the previous try committed and lost its answer
                if batch.parent is not None and not self._grow(conn, batch.parent, 1):
                    raise BatchClosed(f"batch {batch.parent} is not open: it cannot take a nested batch")
                kinds = {kind for kind, _ in callbacks}
                conn.execute(
                    f"INSERT INTO {s}.batches (id, parent, total, created_at, cb_success, cb_complete,"
                    " cb_death) VALUES (%(id)s, %(parent)s, %(total)s, %(at)s, %(s)s, %(c)s, %(d)s)",
                    {
                        "id": batch.id,
                        "parent": batch.parent,
                        "total": batch.total,
                        "at": batch.created_at,
                        "s": "success" in kinds,
                        "c": "complete" in kinds,
                        "d": "death" in kinds,
                    },
                )
                for kind, r in callbacks:
                    conn.execute(
                        f"INSERT INTO {s}.batch_callbacks (batch_id, kind, job_id, queue, payload,"
                        " priority, max_attempts, timeout) VALUES (%(b)s, %(k)s, %(id)s, %(q)s,"
                        " %(p)s, %(pr)s, %(ma)s, %(t)s::float8)",
                        {
                            "b": batch.id, "k": kind, "id": r.id, "q": r.queue, "p": r.payload,
                            "pr": r.priority, "ma": r.max_attempts, "t": r.timeout,
                        },
                    )  # fmt: skip
                self._register(conn, [r.queue for _, r in callbacks], wake=False)
                if records:
                    self._store_batch_jobs(conn, records, after, now, pruned_before)

        self._run(create)

    def add_to_batch(
        self,
        batch_id: str,
        records: Sequence[JobRecord],
        now: float,
        *,
        after: Mapping[str, tuple[str, ...]] | None = None,
        pruned_before: float = 0.0,
    ) -> bool:
        s = self.schema
        tries = 0

        def add(conn: Conn) -> bool:
            nonlocal tries
            tries += 1
            with conn.transaction():
                if (
                    tries > 1
                    and conn.execute(
                        f"SELECT 1 FROM {s}.jobs WHERE id = %(id)s", {"id": records[0].id}
                    ).fetchone()
                ):
                    return True
                if not self._grow(conn, batch_id, len(records)):
                    return False
                self._store_batch_jobs(conn, records, after, now, pruned_before)
                return True

        return self._run(add)

    def get_batch(self, batch_id: str) -> BatchRecord | None:
        s = self.schema

        def read(conn: Conn) -> BatchRecord | None:
            row = conn.execute(
                f"SELECT id, total, completed, dead, cancelled, created_at, parent FROM {s}.batches"
                " WHERE id = %(id)s",
                {"id": batch_id},
            ).fetchone()
            if row is None:
                return None
            callbacks = {
                str(kind): (str(job_id), fired)
                for kind, job_id, fired in conn.execute(
                    f"SELECT kind, job_id, fired FROM {s}.batch_callbacks WHERE batch_id = %(id)s",
                    {"id": batch_id},
                )
            }
            batch, total, completed, dead, cancelled, created_at, parent = row
            return BatchRecord(
                batch, int(total), int(completed), int(dead), int(cancelled), created_at, parent, callbacks
            )

        return self._run(read)

    def batch_jobs(self, batch_id: str, after: str | None, limit: int) -> list[JobRecord]:
        from .postgres import _COLUMNS

        def read(conn: Conn) -> list[JobRecord]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM {self.schema}.jobs WHERE batch_id = %(id)s AND id > %(after)s"
                " ORDER BY id LIMIT %(limit)s",
                {"id": batch_id, "after": after or "", "limit": limit},
            )
            return [JobRecord(*row) for row in rows]

        return self._run(read)
