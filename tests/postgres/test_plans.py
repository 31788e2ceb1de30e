"""PostgreSQL statements whose plan must not follow statistics that no longer say what the
table holds (session 17): each finds the jobs it was given, or has just found, by key, so
the rows it reads do not grow with the number of jobs stored.

The plans are the ones PostgreSQL runs, statements inside functions and triggers included:
auto_explain reports each as a notice to the session that runs it (the tests' server runs as
a superuser), in a transaction rolled back afterwards. A plan's reads of jobs are the rows
its scans of the table and its indexes returned or passed over."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import pytest

from conveyor import Conveyor
from conveyor.backends.postgres import PostgresBackend, recover_params
from conveyor.backends.postgres_workflows import Statements as WorkflowStatements
from tests.scale.backlog import fill_postgres

from .conftest import AppFactory

NOOP = b'{"t":"noop","a":[],"k":{}}'
STORED = 20_000  # jobs in the table: a whole-table read is 20 times any batch below


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


def _reads(plan: dict[str, Any]) -> int:
    """Rows of jobs the plan's scans returned or filtered out, over all their loops."""
    total = 0
    for node in _nodes(plan):
        on_jobs = node.get("Relation Name") == "jobs" or str(node.get("Index Name", "")).startswith("jobs_")
        if on_jobs and node["Node Type"] != "ModifyTable":
            rows = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
            rows += node.get("Rows Removed by Index Recheck", 0)
            total += int(rows * node["Actual Loops"])
    return total


def _describe(plan: dict[str, Any]) -> str:
    return "; ".join(
        f"{n['Node Type']} {n.get('Index Name') or n.get('Relation Name') or ''}".strip()
        for n in _nodes(plan)
    )


class Plans:
    """Runs statements with auto_explain on; returns the plan of each statement run (the
    statement's own, and those of the functions and triggers it ran), then rolls back."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.notes: list[str] = []
        self.conn.add_notice_handler(lambda d: self.notes.append(d.message_primary or ""))
        for setting in (
            "LOAD 'auto_explain'",
            "SET jit = off",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_analyze = on",
            "SET auto_explain.log_timing = off",
            "SET auto_explain.log_format = json",
            "SET auto_explain.log_nested_statements = on",
        ):
            self.conn.execute(setting)

    def run(self, statement: str, params: dict[str, Any], generic: bool = False) -> list[dict[str, Any]]:
        self.notes.clear()
        conn = self.conn
        conn.execute("SET plan_cache_mode = " + ("force_generic_plan" if generic else "auto"))
        conn.execute("BEGIN")
        try:
            conn.execute("SET LOCAL client_min_messages = log")
            conn.execute(statement.encode(), params, prepare=generic or None)
        finally:
            conn.execute("ROLLBACK")
        plans = []
        for note in self.notes:
            start = note.find("{")
            if note.startswith("duration:") and "plan:" in note and start >= 0:
                plans.append(json.loads(note[start:])["Plan"])
        assert plans, "auto_explain reported no plan"
        return plans

    def worst(self, statement: str, params: dict[str, Any], generic: bool = False) -> tuple[int, str]:
        """The most rows of jobs one of the statements read, and that statement's plan."""
        plans = self.run(statement, params, generic)
        plan = max(plans, key=_reads)
        return _reads(plan), _describe(plan)

    def close(self) -> None:
        self.conn.close()


def _backend(make_app: AppFactory, db_url: str, namespace: str) -> tuple[Conveyor, PostgresBackend]:
    app = make_app(namespace=namespace, lease=3600.0)
    backend = app.backend
    assert isinstance(backend, PostgresBackend)
    fill_postgres(db_url, namespace, STORED, payload=NOOP)  # scheduled, due in an hour; ANALYZE
    return app, backend


def test_the_promotion_looks_the_due_jobs_up_by_primary_key(make_app: AppFactory, db_url: str) -> None:
    """2,000 of 20,000 jobs due: the UPDATE of promote_due() that makes them pending read
    every job (a hash join over a scan of the table)."""
    _, backend = _backend(make_app, db_url, "promo")
    plans = Plans(db_url)
    try:
        read, plan = plans.worst(backend.sql.promote_due, {"now": time.time() + 10**5})  # all due
    finally:
        plans.close()
    assert read <= 3 * 2000, plan  # the due index's 2,000 entries, then 2,000 ids


def test_the_limited_claim_promotes_by_primary_key(make_app: AppFactory, db_url: str) -> None:
    """The limited claim promotes its queue's and its buckets' due jobs itself, with the same
    UPDATE as promote_due()."""
    app, backend = _backend(make_app, db_url, "limpromo")

    @app.task(name="capped", concurrency=50)
    def capped() -> None: ...

    capped.enqueue()  # the task's limit is stored with its first job
    limits = backend._limits_now()["default"]
    later = time.time() + 10**5  # every job due
    plans = Plans(db_url)
    try:
        plans.conn.execute("BEGIN")
        try:
            plans.conn.execute("SET LOCAL client_min_messages = log")
            params = {"limit": 10, "worker": "w1", "until": later + 30, "now": later}
            assert len(backend._claim_limited(plans.conn, "default", limits, params)) == 10
        finally:
            plans.conn.execute("ROLLBACK")
        found = [json.loads(n[n.find("{") :])["Plan"] for n in plans.notes if "plan:" in n]
    finally:
        plans.close()
    worst = max(found, key=_reads)
    assert _reads(worst) <= 3 * 2000, _describe(worst)


@pytest.mark.parametrize("outcome", ["completed", "dead"])
def test_a_parent_finds_its_children_by_primary_key(make_app: AppFactory, db_url: str, outcome: str) -> None:
    """A parent of 500 waiting children ends among 40,000 jobs, 20,000 of them waiting for
    other jobs since the last ANALYZE. release_dependents() and cancel_dependents() walked the
    whole of jobs_pkey, merged with the sorted edges; the release of migration 20 reads the
    children through jobs_state, every waiting job."""
    app, backend = _backend(make_app, db_url, "deps")

    @app.task(name="noop")
    def noop() -> None: ...

    parent = noop.enqueue()
    app.enqueue_many([noop.using(after=[parent.id]).job() for _ in range(500)])
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("ANALYZE deps.jobs")  # as autoanalyze does after such an enqueue
        conn.execute("ANALYZE deps.deps")
        # Then another graph's 20,000 waiting jobs, not yet seen by ANALYZE.
        conn.execute(
            "INSERT INTO deps.jobs (id, queue, payload, state, run_at, created_at, waiting_on)"
            " SELECT 'wa' || lpad(i::text, 12, '0'), 'default', '', 'waiting', 0, 0, 1"
            " FROM generate_series(1, 20000) AS i"
        )
    now = time.time()
    assert [r.id for r in backend.fetch(["default"], 1, "w1", 60.0, now)] == [parent.id]
    if outcome == "completed":
        statement = backend.sql.complete
        params: dict[str, Any] = {"ids": [parent.id], "results": [b"null"]}
    else:
        statement = backend.sql.fail
        params = {
            "ids": [parent.id],
            "states": ["dead"],
            "retry_at": [None],
            "errors": ["e"],
            "tracebacks": [None],
        }
    plans = Plans(db_url)
    try:
        read, plan = plans.worst(statement, {**params, "worker": "w1", "now": now, "minute": int(now // 60)})
    finally:
        plans.close()
    assert read <= 2 * 500, plan


def test_an_enqueue_marks_its_dependents_by_primary_key(make_app: AppFactory, db_url: str) -> None:
    """The mark of 500 dependent jobs (their count of dependencies) among 20,000 jobs: from
    unnest(), a hash join over a scan of every job."""
    app, backend = _backend(make_app, db_url, "marks")

    @app.task(name="noop")
    def noop() -> None: ...

    ids = [r.id for r in app.enqueue_many([noop.job() for _ in range(500)])]
    n = len(ids)
    plans = Plans(db_url)
    try:
        read, plan = plans.worst(
            WorkflowStatements(backend.schema).mark,
            {"ids": ids, "n": [1] * n, "e": [None] * n, "f": [None] * n},
        )
    finally:
        plans.close()
    assert read <= 2 * n, plan
    assert "jobs_pkey" in plan, plan


def test_jobs_taken_ahead_are_settled_by_primary_key(make_app: AppFactory, db_url: str) -> None:
    """settle_ahead with 500 jobs among 20,000: from unnest(), a hash join over a scan of
    every job."""
    app, backend = _backend(make_app, db_url, "settle")

    @app.task(name="noop")
    def noop() -> None: ...

    app.enqueue_many([noop.job() for _ in range(500)])
    now = time.time()
    ids = [r.id for r in backend.fetch(["default"], 500, "w1", 60.0, now)]
    n = len(ids)
    assert n == 500
    params = {"buckets": ["default\x1fx"] * n, "ids": ids, "starts": [now + 1] * n, "claims": [now] * n}
    plans = Plans(db_url)
    try:
        read, plan = plans.worst(backend.sql.settle_ahead, params)
    finally:
        plans.close()
    assert read <= 2 * n, plan
    assert "jobs_pkey" in plan, plan


def test_progress_is_written_by_primary_key(make_app: AppFactory, db_url: str) -> None:
    """A worker holding 1,000 jobs reports one's progress: with "state = 'active'" the
    statement walked jobs_active through all 1,000 (and any dead entries) for one row."""
    app, backend = _backend(make_app, db_url, "progress")

    @app.task(name="noop")
    def noop() -> None: ...

    app.enqueue_many([noop.job() for _ in range(1000)])
    ids = [r.id for r in backend.fetch(["default"], 1000, "w1", 60.0, time.time())]
    assert len(ids) == 1000
    plans = Plans(db_url)
    try:
        for generic in (False, True):
            params = {"id": ids[500], "worker": "w1", "progress": b"0.5"}
            read, plan = plans.worst(backend.sql.set_progress, params, generic)
            assert read <= 1, plan
    finally:
        plans.close()


def test_recover_buries_by_primary_key_with_a_generic_plan(make_app: AppFactory, db_url: str) -> None:
    """recover() is prepared (run every few seconds): its generic plan buried a job with an
    impossible run_at through a hash join over a scan of every job."""
    _, backend = _backend(make_app, db_url, "bury")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO bury.jobs (id, queue, payload, state, run_at, created_at)"
            " VALUES ('bad', 'default', '', 'scheduled', 'NaN', 0)"
        )
    now = time.time()
    params = recover_params(now, now - 3600)
    plans = Plans(db_url)
    try:
        for generic in (False, True):
            read, plan = plans.worst(backend.sql.recover, params, generic)
            assert read <= 10, plan
    finally:
        plans.close()


def test_the_rows_of_jobs_taken_ahead_look_their_jobs_up_by_primary_key(
    make_app: AppFactory, db_url: str
) -> None:
    """500 rows of limit_ahead naming jobs from all over a table of 20,000: as joins, a merge
    join walked jobs_pkey from the least id named to the greatest."""
    _, backend = _backend(make_app, db_url, "ahead")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ahead.limit_ahead (bucket, id, worker, after, attempt, claimed)"
            " SELECT 'default' || chr(31) || 'k', id, 'w1', id, 1, 0"
            " FROM (SELECT id FROM ahead.jobs ORDER BY id) j WHERE right(id, 3)::int % 40 = 0"
        )
        conn.execute("ANALYZE ahead.limit_ahead")
    plans = Plans(db_url)
    try:
        for generic in (False, True):
            read, plan = plans.worst(
                backend.sql.ahead_rows, {"low": "default\x1f", "high": "default\x20"}, generic
            )
            assert read <= 2 * 500, plan
    finally:
        plans.close()
