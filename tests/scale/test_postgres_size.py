"""PostgreSQL: what an idle claim, housekeeping and stats cost does not grow with the jobs
stored, and their plans do not follow what ANALYZE last saw.

Cost is counted, not timed: ``EXPLAIN (ANALYZE, BUFFERS)`` reports the pages each statement
touched. Each statement runs beside a small and a large backlog of scheduled jobs, after an
ANALYZE that saw nothing but scheduled jobs (the statistics that once made the planner read
every job), and must touch about as many pages at either size and scan no table of jobs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conveyor import Conveyor
from conveyor.backends.postgres import PostgresBackend, recover_params
from tests.scale.backlog import fill_postgres
from tests.servers import PostgresServer

SMALL, LARGE = 1_000, 50_000


def _pages(plan: dict[str, Any]) -> int:
    own = int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))
    return max(own, sum(_pages(child) for child in plan.get("Plans", [])))


def _seq_scans(plan: dict[str, Any]) -> list[str]:
    found = [plan["Relation Name"]] if plan.get("Node Type") == "Seq Scan" and "Relation Name" in plan else []
    for child in plan.get("Plans", []):
        found += _seq_scans(child)
    return found


def _statements(backend: PostgresBackend) -> dict[str, tuple[str, dict[str, Any]]]:
    now = time.time()
    sql = backend.sql
    return {
        "claim, every queue": (
            sql.fetch_every,
            {"queues": None, "limit": 10, "worker": "w1", "until": now + 30, "now": now},
        ),
        "claim, given queues": (
            sql.fetch_given,
            {"queues": ["default", "mail"], "limit": 10, "worker": "w1", "until": now + 30, "now": now},
        ),
        "promote due jobs": (sql.promote, {"now": now}),
        # (the function's own reads are counted in its caller's buffers)
        "promote due jobs, if any": (sql.promote_due, {"now": now}),
        "recover": (
            sql.recover,
            recover_params(now, now - 3600),
        ),
        "stats: counts": (sql.counts, {}),
        "stats: due": (sql.due, {"now": now}),
        "stats: oldest": (sql.oldest, {}),
        "queue length": (sql.waiting_counts, {"queues": ["default"]}),
    }


@pytest.fixture
def measure(postgres_server: PostgresServer) -> Iterator[Any]:
    apps: list[Conveyor] = []
    url = postgres_server.create_database("pgscale")

    def run(count: int) -> dict[str, tuple[int, list[str]]]:
        ns = f"scale_{count}"
        app = Conveyor(url, namespace=ns)
        apps.append(app)
        backend = app.backend
        assert isinstance(backend, PostgresBackend)
        fill_postgres(url, ns, count)
        found: dict[str, tuple[int, list[str]]] = {}
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET jit = off")
            for name, (statement, params) in _statements(backend).items():
                explain = f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}"
                row = conn.execute(explain.encode(), params).fetchone()
                assert row is not None
                plan = row[0][0]["Plan"]
                found[name] = (_pages(plan), _seq_scans(plan))
        return found

    yield run
    for app in apps:
        app.close()
    postgres_server.drop_database("pgscale")


def test_idle_costs_and_plans_do_not_depend_on_the_backlog(measure: Any) -> None:
    small, large = measure(SMALL), measure(LARGE)
    for name, (pages, scans) in large.items():
        assert "jobs" not in scans, (name, scans)
        # 50x the jobs: a B-tree level more at most, never 50x the pages.
        assert pages <= 2 * small[name][0] + 20, (name, small[name][0], pages)


def test_counts_follow_changes_and_survive_folding(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("pgcounts")
    app = Conveyor(url, namespace="counted")
    try:

        @app.task(name="noop")
        def noop() -> None: ...

        jobs = [noop.enqueue() for _ in range(5)] + [noop.using(delay=600).enqueue()]
        backend = app.backend
        claimed = backend.fetch(None, 3, "w1", 30.0, time.time())
        backend.complete([(claimed[0].id, None)], "w1", time.time())
        assert app.cancel(jobs[4].id) == 1
        assert app.delete(jobs[3].id) == 1
        expect = {"active": 2, "completed": 1, "cancelled": 1, "scheduled": 1}
        assert app.stats().queues["default"] == expect
        backend.recover(time.time(), time.time() - 3600)  # folds the deltas into counts
        assert app.stats().queues["default"] == expect
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM counted.count_deltas").fetchone()
            assert row is not None and row[0] == 0
        # A scheduled job that came due counts as pending, and its age shows.
        due = noop.using(delay=0.2).enqueue()
        time.sleep(0.3)
        stats = app.stats()
        assert stats.queues["default"]["pending"] == 1 and "scheduled" in stats.queues["default"]
        assert stats.oldest_pending["default"] >= 0.05
        assert [r.id for r in backend.fetch(None, 5, "w2", 30.0, time.time())] == [due.id]
    finally:
        app.close()
        postgres_server.drop_database("pgcounts")


def test_pruning_a_batch_reads_the_batch_not_every_expired_job(postgres_server: PostgresServer) -> None:
    """A batch of the completed jobs past result_ttl is a range of jobs_finished read in its
    order up to the LIMIT: as many pages beside 50,000 expired jobs as beside 1,000, and no
    sort or scan of them all (prune.py deletes batch after batch)."""
    url = postgres_server.create_database("pgprune")
    found: dict[int, tuple[int, list[str], str]] = {}
    try:
        for count in (SMALL, LARGE):
            ns = f"prune_{count}"
            app = Conveyor(url, namespace=ns)
            try:
                backend = app.backend
                assert isinstance(backend, PostgresBackend)
                fill_postgres(url, ns, count, state="completed")
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("SET jit = off")
                    explain = f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {backend.sql.prune_completed}"
                    row = conn.execute(
                        explain.encode(), {"before": time.time() + 10, "limit": 100}
                    ).fetchone()
                    assert row is not None
                    plan = row[0][0]["Plan"]
                    left = conn.execute(f"SELECT count(*) FROM {ns}.jobs").fetchone()
                assert left == (count - 100,)
                found[count] = (_pages(plan), _seq_scans(plan), str(plan))
            finally:
                app.close()
    finally:
        postgres_server.drop_database("pgprune")
    pages, scans, plan = found[LARGE]
    assert "jobs" not in scans and "'Sort'" not in plan, plan
    assert pages <= 2 * found[SMALL][0] + 20, (found[SMALL][0], pages)
