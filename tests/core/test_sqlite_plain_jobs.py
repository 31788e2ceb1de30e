"""SQLite: jobs outside workflows pay nothing for them (issue 17), and what schema version 7
changed for that reaches files made before it.

Cost is counted, not timed: SQLite calls the trace callback once per statement run and once
more per row trigger program it runs (WHEN clause false or not), so the trace of a plain
job's enqueue, claim and acknowledgement is the same with the workflow triggers as without
them exactly when none of them runs."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.backends.sqlite import _LISTED, _LISTED_STATES, SCHEMA_VERSION, SQLiteBackend
from conveyor.job import STATES, Failure

WORKFLOW_TRIGGERS = ("jobs_batch_moved", "jobs_batch_deleted", "deps_ended", "deps_gone")


def test_the_listing_indexes_hold_the_listed_states_and_no_other() -> None:
    with closing(sqlite3.connect(":memory:")) as conn:
        test = f"SELECT {_LISTED} FROM (SELECT ? AS state)"
        held = {state for state in STATES if conn.execute(test, (state,)).fetchone()[0]}
    assert held == set(_LISTED_STATES)
    assert " IN " not in _LISTED.upper()  # see _LISTED: an IN list costs every change of state


def _trace(path: Path, drop: tuple[str, ...], now: float) -> list[str]:
    """The statements a plain job's enqueue, claim and acknowledgement ran, one line per run
    and per trigger program run (SQLite's trace)."""
    app = Conveyor(f"sqlite:///{path}", namespace="plain")

    @app.task(name="noop")
    def noop(n: int) -> int:
        return n

    backend = app.backend
    assert isinstance(backend, SQLiteBackend)
    conn = backend._conn()
    for name in drop:
        conn.execute(f"DROP TRIGGER plain_{name}")
    traced: list[str] = []
    conn.set_trace_callback(traced.append)
    try:
        app.enqueue_many([noop.job(n) for n in range(6)])
        noop.enqueue(6)
        claimed = backend.fetch(None, 10, "w", 30.0, now)
        assert len(claimed) == 7
        results = [(r.id, None if n % 2 else b"1") for n, r in enumerate(claimed)]
        backend.complete(results, "w", now)
        assert app.stats().queues["default"] == {"completed": 7}
    finally:
        conn.set_trace_callback(None)
        app.close()
    # The ids and times differ between the two runs; the statements and their count do not.
    return [line.split(" VALUES ")[0].split(" WHERE ")[0] for line in traced]


def test_plain_jobs_run_no_workflow_trigger(tmp_path: Path) -> None:
    now = round(time.time())  # the same figure in both traces
    plain = _trace(tmp_path / "with.db", (), now)
    bare = _trace(tmp_path / "without.db", WORKFLOW_TRIGGERS, now)
    assert len(plain) == len(bare) and plain == bare
    # The trace does see row triggers: the counts' runs once per job claimed (as does the
    # claim's RETURNING, which SQLite runs as a trigger too).
    claims = [line for line in plain if line.startswith("UPDATE plain_jobs SET state = 'active'")]
    assert len(claims) >= 1 + 7 * 2


def test_a_version_6_file_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "six.db"
    app = Conveyor(f"sqlite:///{path}", namespace="six")

    @app.task(name="noop")
    def noop() -> None: ...

    first = noop.enqueue()
    waiting = noop.using(after=[first]).enqueue()
    app.close()
    # What version 6 had: the batch trigger on state, waiting jobs' own indexes, IN lists.
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("UPDATE six_meta SET value = '6' WHERE key = 'schema_version'")
        (batch_sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'six_jobs_batch_moved'"
        ).fetchone()
        conn.execute("DROP TRIGGER six_jobs_batch_moved")
        conn.execute(batch_sql.replace("UPDATE OF last_error", "UPDATE OF state"))
        conn.execute("DROP TRIGGER six_jobs_batch_deleted")
        conn.execute(
            "CREATE TRIGGER six_jobs_batch_deleted AFTER DELETE ON six_jobs WHEN OLD.batch_id"
            " IS NOT NULL AND OLD.state NOT IN ('completed','dead','cancelled') BEGIN"
            " SELECT 1; END"
        )
        for name, columns in (("state", "state, queue, id"), ("listed", "state, id")):
            conn.execute(f"DROP INDEX six_jobs_{name}")
            conn.execute(
                f"CREATE INDEX six_jobs_{name} ON six_jobs ({columns})"
                " WHERE state IN ('dead','cancelled','retry','scheduled')"
            )
        conn.execute("CREATE INDEX six_jobs_waiting ON six_jobs (id) WHERE state = 'waiting'")
        conn.execute("CREATE INDEX six_jobs_waiting_q ON six_jobs (queue, id) WHERE state = 'waiting'")
    app = Conveyor(f"sqlite:///{path}", namespace="six")
    try:
        assert [job.id for job in app.jobs(state="waiting")] == [waiting.id]
        assert [job.id for job in app.jobs(state="waiting", queue="default")] == [waiting.id]
        with closing(sqlite3.connect(path)) as conn:
            sql = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE name LIKE 'six_%'").fetchall())
            (version,) = conn.execute("SELECT value FROM six_meta WHERE key = 'schema_version'").fetchone()
        assert version == str(SCHEMA_VERSION) == "7"
        assert "UPDATE OF last_error" in sql["six_jobs_batch_moved"]
        assert " IN (" not in sql["six_jobs_batch_moved"] + sql["six_jobs_batch_deleted"]
        assert "six_jobs_waiting" not in sql and "six_jobs_waiting_q" not in sql
        assert _LISTED in sql["six_jobs_state"] and _LISTED in sql["six_jobs_listed"]
    finally:
        app.close()


@pytest.mark.parametrize("flow_first", [False, True])
def test_an_acknowledgement_ends_every_job_whichever_statement_goes_first(
    tmp_path: Path, flow_first: bool
) -> None:
    app = Conveyor(f"sqlite:///{tmp_path}/order.db", namespace="order")

    @app.task(name="noop")
    def noop(n: int) -> int:
        return n

    backend = app.backend
    assert isinstance(backend, SQLiteBackend)
    try:
        plain = [noop.enqueue(n) for n in range(3)]
        parent = noop.enqueue(3)
        batch = app.batch([noop.job(4), noop.job(5)])
        failed = noop.enqueue(6)
        backend.fetch(None, 10, "w", 30.0, time.time())
        backend.fail([Failure(failed.id, "boom", retry_at=time.time() - 1)], "w", time.time())
        assert [r.id for r in backend.fetch(None, 10, "w", 30.0, time.time())] == [failed.id]
        child = noop.using(after=[parent]).enqueue(7)
        jobs = [*plain, parent, *batch.jobs, failed]
        backend._flow_first = flow_first
        backend.complete([(j.id, None if n % 2 else b"1") for n, j in enumerate(jobs)], "w", time.time())
        for job in jobs:
            found = app.get_job(job.id)
            assert found is not None and found.state == "completed" and found.last_error is None
        assert app.get_job(child.id).state == "pending"  # type: ignore[union-attr]
        assert batch.status()["completed"] == 2
        assert app.stats().processed == len(jobs) + 1  # and the failed run
        # Four of the seven were jobs of workflows: their statement goes first next time.
        assert backend._flow_first is True
    finally:
        app.close()
