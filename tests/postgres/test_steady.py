"""PostgreSQL under a long drain (issue 19 §3): the claim's plan does not follow what ANALYZE
last saw, and a heartbeat rewrites leases as HOT updates (no index touched, nothing for
vacuum to clean in any index)."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from conveyor.backends.postgres import PostgresBackend, recover_params
from conveyor.job import WorkerInfo
from tests.scale.backlog import fill_postgres

from .conftest import AppFactory

NOOP = b'{"t":"noop","a":[],"k":{}}'


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


def _line(node: dict[str, Any]) -> str:
    return f"{node['Node Type']} {node.get('Index Name') or node.get('Relation Name') or ''}".strip()


def _on_jobs(line: str) -> bool:
    return line.endswith(("jobs", "jobs_ready", "jobs_due", "jobs_pkey"))


def _claim_plan(
    conn: psycopg.Connection[Any], backend: PostgresBackend, queues: list[str] | None
) -> list[str]:
    """The claim's plan, one line per node (its type and the index or table it reads); a
    sort of jobs shows as "Sort of jobs" (one of the small queues table is harmless)."""
    now = time.time()
    params = {"queues": queues, "limit": 10, "worker": "w1", "until": now + 30, "now": now}
    statement = backend.sql.fetch_every if queues is None else backend.sql.fetch_given
    conn.execute("BEGIN")
    try:
        row = conn.execute(f"EXPLAIN (FORMAT JSON) {statement}".encode(), params).fetchone()
    finally:
        conn.execute("ROLLBACK")
    assert row is not None
    lines = []
    for node in _nodes(row[0][0]["Plan"]):
        line = _line(node)
        if line == "Sort" and any(_on_jobs(_line(n)) for n in _nodes(node)):
            line = "Sort of jobs"
        lines.append(line)
    return lines


@pytest.mark.parametrize("queues", [None, ["default", "mail"]])
def test_the_busy_claim_walks_the_ready_index_whatever_analyze_saw(
    make_app: AppFactory, db_url: str, queues: list[str] | None
) -> None:
    app = make_app(namespace="steady")
    backend = app.backend
    assert isinstance(backend, PostgresBackend)
    fill_postgres(db_url, "steady", 20_000, payload=NOOP)  # then ANALYZE: "every job is scheduled"

    @app.task(name="noop")
    def noop() -> None: ...

    app.enqueue_many([noop.job() for _ in range(3000)])  # the claim now has work, unseen by ANALYZE
    plans = []
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET jit = off")
        plans.append(_claim_plan(conn, backend, queues))
        conn.execute("ANALYZE steady.jobs")  # and as it is seen once autoanalyze ran
        plans.append(_claim_plan(conn, backend, queues))
    for plan in plans:
        assert "Index Scan jobs_ready" in plan, "; ".join(plan)
        # No scan of the table, no bitmap over a queue's range (the plan of 157 ms a claim);
        # the claimed ids are then looked up by primary key, a bitmap of at most LIMIT rows.
        assert "Seq Scan jobs" not in plan, "; ".join(plan)
        assert not {"Bitmap Index Scan jobs_ready", "Bitmap Index Scan jobs_due"} & set(plan), "; ".join(plan)
        assert "Sort of jobs" not in plan, plan  # the index gives the order; the LIMIT stops the walk
    walks = [[line for line in plan if "jobs_ready" in line or "jobs_due" in line] for plan in plans]
    assert walks[0] == walks[1]


@pytest.mark.parametrize("stored", [20_000, 200_000])
def test_acknowledgements_find_their_jobs_by_primary_key_whatever_analyze_saw(
    make_app: AppFactory, db_url: str, stored: int
) -> None:
    """An ANALYZE that sampled no active job estimates one row for "this worker's active
    jobs": the acknowledgements, the hand-back and the snooze must still look their ids up by
    primary key, not walk jobs_active by worker (in a long drain, over every dead entry the
    worker's finished jobs left there: 0.14 s an acknowledgement for a minute of a 10M drain),
    nor read the whole table and compare each job with each id of the batch (a small table:
    63 ms instead of 5 for 500 ids among 20,000 jobs)."""
    app = make_app(namespace="acks")
    backend = app.backend
    assert isinstance(backend, PostgresBackend)
    fill_postgres(db_url, "acks", stored, state="completed", payload=NOOP)  # then ANALYZE: none active

    @app.task(name="noop")
    def noop() -> None: ...

    app.enqueue_many([noop.job() for _ in range(600)])
    ids = [r.id for r in backend.fetch(["default"], 500, "w1", 30.0, time.time())]
    assert len(ids) == 500
    now = time.time()
    n = len(ids)
    statements: dict[str, tuple[str, dict[str, Any]]] = {
        "complete": (backend.sql.complete, {"ids": ids, "results": [b"null"] * n}),
        "fail": (
            backend.sql.fail,
            {
                "ids": ids,
                "states": ["dead"] * n,
                "retry_at": [None] * n,
                "errors": ["e"] * n,
                "tracebacks": [None] * n,
            },
        ),
        "release": (backend.sql.release, {"ids": ids}),
        "snooze": (backend.sql.snooze, {"ids": ids, "run_at": [now + 60] * n}),
    }
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET jit = off")
        for name, (statement, params) in statements.items():
            conn.execute("BEGIN")
            try:
                row = conn.execute(
                    f"EXPLAIN (FORMAT JSON) {statement}".encode(),
                    {**params, "worker": "w1", "now": now, "minute": int(now // 60)},
                ).fetchone()
            finally:
                conn.execute("ROLLBACK")
            assert row is not None
            plan = [_line(node) for node in _nodes(row[0][0]["Plan"])]
            assert not any("jobs_active" in line or line == "Seq Scan jobs" for line in plan), (
                f"{name}: {'; '.join(plan)}"
            )
            assert any("jobs_pkey" in line for line in plan), f"{name}: {'; '.join(plan)}"


def test_a_heartbeat_extends_leases_as_hot_updates(make_app: AppFactory, db_url: str) -> None:
    app = make_app(namespace="hot")
    backend = app.backend
    assert isinstance(backend, PostgresBackend)

    @app.task(name="noop")
    def noop() -> None: ...

    # Few enough that every row version fits on the first page: HOT needs room there.
    app.enqueue_many([noop.job() for _ in range(10)])
    held = backend.fetch(None, 10, "w1", 30.0, time.time())
    assert len(held) == 10
    now = time.time()
    info = WorkerInfo("w1", "h", 1, ("default",), 10, now, running=tuple(r.id for r in held))
    params = {
        "id": info.id,
        "until": now + 30,
        "host": info.host,
        "pid": info.pid,
        "queues": '["default"]',
        "concurrency": info.concurrency,
        "started_at": info.started_at,
        "now": now,
        "running": "[]",
    }

    def updates(conn: psycopg.Connection[Any]) -> tuple[int, int]:
        row = conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
            " WHERE schemaname = 'hot' AND relname = 'jobs'"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT pg_stat_clear_snapshot()")
        before = updates(conn)
        conn.execute(backend.sql.heartbeat.encode(), params)  # the store's own statement
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT pg_stat_clear_snapshot()")
        after = updates(conn)
    assert after[0] - before[0] == 10
    assert after[1] - before[1] == 10, "every lease extension a HOT update"


def test_recover_passes_over_a_lease_an_ack_is_writing(make_app: AppFactory, db_url: str) -> None:
    """Recover locks the expired leases in id order and skips a row locked now (an ack of
    its late worker being written): it never waits, so it cannot deadlock with acks."""
    app = make_app(namespace="late")
    backend = app.backend
    assert isinstance(backend, PostgresBackend)

    @app.task(name="noop")
    def noop() -> None: ...

    app.enqueue_many([noop.job() for _ in range(3)])
    now = time.time()
    held = sorted(r.id for r in backend.fetch(None, 3, "w1", 1.0, now))
    assert len(held) == 3
    recovered: list[int] = []
    with psycopg.connect(db_url) as acking:  # a transaction holding one row, as an ack does
        acking.execute("SELECT 1 FROM late.jobs WHERE id = %s FOR UPDATE", (held[1],))
        thread = threading.Thread(target=lambda: recovered.append(backend.recover(now + 5, 0)))
        thread.start()
        thread.join(30)  # a recover that waited for the row would wait for ever: fail instead
        waited = thread.is_alive()
        acking.rollback()
        thread.join()
    assert not waited, "recover waited for a row an ack held"
    assert recovered == [2]  # the locked row left for its ack
    states = {job_id: app.get_job(job_id).state for job_id in held}  # type: ignore[union-attr]
    assert states == {held[0]: "retry", held[1]: "active", held[2]: "retry"}
    backend.complete([(held[1], None)], "w1", now + 6)  # the late ack still lands
    assert app.get_job(held[1]).state == "completed"  # type: ignore[union-attr]


def test_recover_reads_the_active_index_and_the_primary_key(make_app: AppFactory, db_url: str) -> None:
    app = make_app(namespace="recovering")
    backend = app.backend
    assert isinstance(backend, PostgresBackend)
    fill_postgres(db_url, "recovering", 20_000, payload=NOOP)
    now = time.time()
    params = recover_params(now, now - 3600)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET jit = off")
        conn.execute("BEGIN")
        try:
            row = conn.execute(f"EXPLAIN (FORMAT JSON) {backend.sql.recover}".encode(), params).fetchone()
        finally:
            conn.execute("ROLLBACK")
    assert row is not None
    plan = [_line(node) for node in _nodes(row[0][0]["Plan"])]
    assert "Seq Scan jobs" not in plan, "; ".join(plan)
    # The expired leases: found through jobs_active, locked in id order (LockRows over a
    # sort of those few rows), updated by primary key.
    assert "Index Scan jobs_active" in plan or "Bitmap Index Scan jobs_active" in plan, "; ".join(plan)
    assert "LockRows" in plan, "; ".join(plan)
