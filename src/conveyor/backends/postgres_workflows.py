"""Dependencies on PostgreSQL (``using(after=...)``, ``app.chain``): the enqueue of jobs that
wait for others. Release and cancellation are triggers of migration 0011, fired only on
jobs whose ``dependents`` flag is set, so the statements that complete, fail and cancel jobs
are the same for every job (see docs/workflows.md).

An enqueue locks the dependencies it names (``FOR UPDATE``, in id order, so two enqueues
never deadlock) before it reads their states and writes its edges: a dependency completing
at that moment either committed first (it is seen completed) or waits for the enqueue to
commit, and its trigger then finds the new edges. Either way each edge is counted once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import UnknownDependency
from ..job import CANCELLED, COMPLETED, DEAD, PENDING, SCHEDULED, WAITING, JobRecord, dependency_note, id_time

if TYPE_CHECKING:
    from .postgres import Conn, PostgresBackend

#: Parents left over from a deep cascade that one housekeeping call finishes, at most.
CASCADE_BUDGET = 1000


class Statements:
    """The statements of dependencies, with the schema filled in."""

    def __init__(self, s: str) -> None:
        self.lock = f"SELECT id, state FROM {s}.jobs WHERE id = ANY(%(ids)s::text[]) ORDER BY id FOR UPDATE"
        # The batch from marked() (migration 21), estimated at one row: one jobs_pkey lookup
        # per id. From unnest(), 500 dependents among 20,000 jobs were hash-joined with a scan
        # of every job.
        self.mark = (
            f"UPDATE {s}.jobs AS t SET waiting_on = d.n, last_error = d.e, finished_at = d.f"
            f" FROM {s}.marked(%(ids)s::text[], %(n)s::int[], %(e)s::text[], %(f)s::float8[]) AS d"
            f" WHERE t.id = d.id"
        )
        self.edges = (
            f"INSERT INTO {s}.deps (parent, child, position)"
            f" SELECT * FROM unnest(%(parents)s::text[], %(children)s::text[], %(positions)s::int[])"
            f" ON CONFLICT DO NOTHING"
        )
        self.flag = (
            f"UPDATE {s}.jobs SET dependents = true WHERE id = ANY(%(ids)s::text[]) AND NOT dependents"
        )
        self.dependencies = f"SELECT parent FROM {s}.deps WHERE child = %(id)s ORDER BY position"
        self.dependents = f"SELECT child FROM {s}.deps WHERE parent = %(id)s ORDER BY child LIMIT %(limit)s"
        self.cascade = f"SELECT {s}.cascade_dependents(%(budget)s, %(now)s)"


def plan(
    records: Sequence[JobRecord],
    after: dict[str, tuple[str, ...]],
    stored: dict[str, str],
    now: float,
    pruned_before: float,
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Decide each dependent's state from its dependencies' (``stored``: those outside the
    call, locked; the call's own as decided here, in order), set it on the record, and
    return the parameters of ``mark`` and ``edges`` and the parents to flag."""
    states: dict[str, str] = dict(stored)
    mark: dict[str, Any] = {"ids": [], "n": [], "e": [], "f": []}
    edges: dict[str, Any] = {"parents": [], "children": [], "positions": []}
    flag: list[str] = []
    for r in records:
        deps = after.get(r.id)
        if deps is None:
            states[r.id] = r.state
            continue
        outstanding: list[str] = []
        failed: str | None = None
        for n, dep in enumerate(deps):
            edges["parents"].append(dep)
            edges["children"].append(r.id)
            edges["positions"].append(n)
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
        if failed is not None:
            r.state = CANCELLED
        elif outstanding:
            r.state = WAITING
            flag += outstanding
        else:
            r.state = SCHEDULED if r.run_at > now else PENDING
        states[r.id] = r.state
        mark["ids"].append(r.id)
        mark["n"].append(len(outstanding) if failed is None else 0)
        mark["e"].append(failed)
        mark["f"].append(now if failed is not None else None)
    return mark, edges, list(dict.fromkeys(flag))


def enqueue_after(
    store: PostgresBackend,
    records: Sequence[JobRecord],
    after: dict[str, tuple[str, ...]],
    now: float,
    pruned_before: float,
    max_queue_length: int | None,
    caller_retry_for: float,
    connection: Conn | None = None,
) -> None:
    ours = {r.id for r in records}
    outside = sorted({dep for deps in after.values() for dep in deps} - ours)
    tries = 0

    def store_jobs(conn: Conn) -> None:
        nonlocal tries
        tries += 1
        if tries > 1 and conn.execute(store.sql.exists, {"id": records[0].id}).fetchone():
            return  # the previous try committed and lost its answer
        with conn.transaction():
            link(store, conn, records, after, outside, now, pruned_before, max_queue_length)

    if connection is not None:
        # The caller's transaction, not committed here (as enqueue_in: psycopg's
        # transaction() would commit one it began), no retry (a lost connection is the
        # caller's to handle: its transaction is gone with it). The dependencies' rows stay
        # locked until the caller commits or rolls back: a worker completing one of them
        # meanwhile waits, then finds the edges (or, after a rollback, none).
        link(store, connection, records, after, outside, now, pruned_before, max_queue_length)
        return
    store._run(store_jobs, retry_for=caller_retry_for)


def link(
    store: PostgresBackend,
    conn: Conn,
    records: Sequence[JobRecord],
    after: dict[str, tuple[str, ...]],
    outside: list[str],
    now: float,
    pruned_before: float,
    max_queue_length: int | None,
) -> None:
    """Lock the dependencies outside the call, read their states, store the jobs and their
    edges, in the transaction ``conn`` is in."""
    sql = store.workflow_sql
    stored = {str(i): str(s) for i, s in conn.execute(sql.lock, {"ids": outside}).fetchall()}
    mark, edges, flag = plan(records, after, stored, now, pruned_before)
    params = store._enqueue_params(records)
    if max_queue_length is not None:
        store._check_length(conn, records, max_queue_length, params["queues"])
    store._insert(conn, records, params)
    expiring = [(r.expires_at, r.id) for r in records if r.expires_at is not None]
    if expiring:  # rare: after= with expires
        with conn.cursor() as cur:
            cur.executemany(f"UPDATE {store.schema}.jobs SET expires_at = %s WHERE id = %s", expiring)
    conn.execute(sql.mark, mark)
    conn.execute(sql.edges, edges)
    if flag:
        conn.execute(sql.flag, {"ids": flag})


def dependencies(store: PostgresBackend, job_id: str) -> list[str]:
    statement = store.workflow_sql.dependencies
    rows = store._run(lambda conn: conn.execute(statement, {"id": job_id}).fetchall())
    return [str(row[0]) for row in rows]


def dependents(store: PostgresBackend, job_id: str, limit: int) -> list[str]:
    statement = store.workflow_sql.dependents
    rows = store._run(lambda conn: conn.execute(statement, {"id": job_id, "limit": limit}).fetchall())
    return [str(row[0]) for row in rows]


def cascade(conn: Conn, sql: Statements, now: float) -> int:
    """Housekeeping's step of a cascade deeper than the triggers go (usually nothing)."""
    row = conn.execute(sql.cascade, {"budget": CASCADE_BUDGET, "now": now}).fetchone()
    return int(row[0]) if row and row[0] is not None else 0
