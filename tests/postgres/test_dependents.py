"""PostgreSQL: an acknowledgement that completes many parents of one child rewrites the child
once (migration 20), not once per parent: each rewrite had fired the table's statement
triggers, and each walked the row versions the earlier ones left in the same transaction
(1,000 parents of one child: 0.17 s an acknowledgement, then 0.017 s)."""

from __future__ import annotations

import time

import psycopg

from conveyor.backends.postgres import PostgresBackend

from .conftest import AppFactory

PARENTS = 300


def test_completing_many_parents_rewrites_their_child_once(make_app: AppFactory, db_url: str) -> None:
    app = make_app(namespace="fan")

    @app.task(name="t.step")
    def step(n: int) -> int:
        return n

    parents = [job.id for job in app.enqueue_many([step.using(queue="q1").job(n) for n in range(PARENTS)])]
    child = step.using(queue="q2", after=parents).enqueue(-1)
    backend = app.backend
    assert isinstance(backend, PostgresBackend)
    ids = sorted(r.id for r in backend.fetch(["q1"], PARENTS, "w1", 30.0, time.time()))
    assert len(ids) == PARENTS
    now = time.time()
    params = {"ids": ids, "results": [None] * PARENTS, "worker": "w1", "now": now, "minute": int(now // 60)}
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.cursor(binary=True).execute(backend.sql.complete, params)
        row = conn.execute(
            "SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE schemaname = 'fan' AND relname = 'jobs'"
        ).fetchone()
        state = conn.execute("SELECT state, waiting_on FROM fan.jobs WHERE id = %s", (child.id,)).fetchone()
        conn.execute("COMMIT")
    assert state == ("pending", 0)
    assert row is not None
    assert row[0] == PARENTS + 1  # each parent once, the child once (not PARENTS times)
    found = app.get_job(child.id)
    assert found is not None and found.state == "pending"
