"""SQLite and PostgreSQL: a page of an admin listing costs the same beside a small and a large
backlog, on every state, the first page or one deep in the listing (from a cursor); and a
search reads at most its bound. Each state is read through an index from the cursor on: no
plan sorts a whole state or walks the table.

Cost is counted, not timed, as in the other size tests: SQLite's progress-handler calls (the
virtual machine's work), PostgreSQL's pages touched in ``EXPLAIN (ANALYZE, BUFFERS)`` of the
generic plan (the one a statement keeps once psycopg prepares it).
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor import Conveyor
from conveyor.backends.listing import EVERY_STATE
from conveyor.backends.postgres import PostgresBackend
from conveyor.backends.sqlite import SQLiteBackend
from tests.scale.backlog import fill_postgres, fill_sqlite
from tests.servers import PostgresServer

#: The large backlog; ``make bench-scale`` sets a million.
SMALL, LARGE = 500, int(os.environ.get("CONVEYOR_SCALE_SIZE", "50000"))
#: The backlog: mostly completed and scheduled jobs, as a long-lived store holds them.
SHARES = {"completed": 1.0, "scheduled": 0.5, "dead": 0.1, "cancelled": 0.05, "retry": 0.05, "pending": 0.2}
STEP = 10


def _calls(backend: Any, by_task: bool = True) -> dict[str, Callable[[], Any]]:
    calls: dict[str, Callable[[], Any]] = {}
    for state in EVERY_STATE:
        deep = backend.list_jobs(state, limit=500).next  # where page 11 of 50 starts
        calls[f"{state}, first page"] = functools.partial(backend.list_jobs, state, limit=50)
        calls[f"{state}, a page of one queue"] = functools.partial(
            backend.list_jobs, state, "default", limit=50
        )
        if deep is not None:
            calls[f"{state}, page 11"] = functools.partial(backend.list_jobs, state, limit=50, after=deep)
    calls["every state, first page"] = lambda: backend.list_jobs(None, limit=50)
    # A search by task reads the task's jobs of a state from the task index (one job in a
    # thousand is of scale.rare): what it reads grows with that task's jobs, never the store's.
    # (PostgreSQL's holds no completed jobs: a search of those is bounded, see "search".)
    for state in ("pending", "dead", "scheduled") if by_task else ():
        calls[f"{state}, by task"] = functools.partial(backend.list_jobs, state, limit=50, task="scale.rare")
        calls[f"{state}, by task, of one queue"] = functools.partial(
            backend.list_jobs, state, "default", limit=50, task="scale.rare"
        )
    return calls


# -- SQLite ---------------------------------------------------------------------------------
def _steps(backend: SQLiteBackend, call: Callable[[], Any]) -> int:
    conn = backend._conn()
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    conn.set_progress_handler(tick, STEP)
    try:
        call()
    finally:
        conn.set_progress_handler(None, STEP)
    return count * STEP


@pytest.fixture
def sqlite_sized(tmp_path: Path) -> Iterator[Callable[[int], tuple[SQLiteBackend, dict[str, int]]]]:
    apps: list[Conveyor] = []

    def measure(count: int) -> tuple[SQLiteBackend, dict[str, int]]:
        path = tmp_path / f"{count}.db"
        app = Conveyor(f"sqlite:///{path}", namespace="scale")
        apps.append(app)
        backend = app.backend
        assert isinstance(backend, SQLiteBackend)
        for state, share in SHARES.items():
            fill_sqlite(path, int(count * share), state, offset=-5_000 if state == "pending" else 3_600)
        return backend, {name: _steps(backend, call) for name, call in _calls(backend, False).items()}

    yield measure
    for app in apps:
        app.close()


def test_sqlite_listing_pages_cost_the_same_at_any_size(
    sqlite_sized: Callable[[int], tuple[SQLiteBackend, dict[str, int]]],
) -> None:
    _, small = sqlite_sized(SMALL)
    backend, large = sqlite_sized(LARGE)
    for name, cost in large.items():
        # 100x the jobs: a B-tree level or two more, never 100x the work.
        base = small.get(name, small[name.split(",")[0] + ", first page"])
        assert cost <= 2 * base + 5_000, (name, base, cost)
    # A search that matches nothing reads its bound, not the store: 2,000 of them all.
    page = backend.list_jobs("completed", limit=50, search="nobody")
    assert page.scanned == backend.search_scan == 2_000 and page.stopped
    # A search by task reads that task's jobs (of every state: SQLite's task index has no
    # state, so that no claim or acknowledgement writes it), one in a thousand here.
    rare = int(LARGE * sum(SHARES.values())) // 1000 + len(SHARES)
    for state in EVERY_STATE:
        found = backend.list_jobs(state, limit=1000, task="scale.rare")
        assert found.scanned is not None and found.scanned <= rare and found.next is None, (
            state,
            found.scanned,
        )
        assert {r.state for r in found.records} <= {state, "scheduled"}, state  # due: pending


def test_sqlite_listing_plans_use_an_index_and_sort_nothing_big(tmp_path: Path) -> None:
    path = tmp_path / "plans.db"
    app = Conveyor(f"sqlite:///{path}", namespace="scale")
    try:
        backend = app.backend
        assert isinstance(backend, SQLiteBackend)
        conn = backend._conn()
        seen: list[str] = []
        original = backend._conn

        class Recording:
            """The store's connection, writing down each listing statement it runs."""

            def __init__(self, inner: sqlite3.Connection) -> None:
                self.inner = inner

            def execute(self, sql: str, params: Any = ()) -> Any:
                if sql.lstrip().startswith("SELECT") and "_jobs" in sql:
                    seen.append(sql)
                return self.inner.execute(sql, params)

            def __getattr__(self, name: str) -> Any:
                return getattr(self.inner, name)

        backend._conn = lambda: Recording(conn)  # type: ignore[assignment,return-value,method-assign]
        try:
            for state in EVERY_STATE:
                for queue in (None, "default"):
                    first = backend.list_jobs(state, queue, limit=5)
                    backend.list_jobs(state, queue, limit=5, after=first.next or _a_cursor(state))
                    found = backend.list_jobs(state, queue, limit=5, task="t.x", search="x")
                    backend.list_jobs(state, queue, limit=5, task="t.x", after=found.next or _a_cursor(state))
        finally:
            backend._conn = original  # type: ignore[method-assign]
        assert seen
        for sql in set(seen):
            steps = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, _nulls(sql))]
            plan = " | ".join(steps)
            for step in steps:
                # A range of an index from the cursor on, or a walk of a partial index in
                # the listing's order (no sort: it stops at the LIMIT); only the few active
                # jobs are read whole.
                if "scale_jobs" in step and not step.startswith("SEARCH"):
                    assert "USING INDEX" in step or "USING COVERING INDEX" in step, (sql, plan)
                    assert "TEMP B-TREE" not in plan or step.endswith("scale_jobs_active"), (sql, plan)
            # Only the small sets may be sorted: the active jobs and the due ones not yet
            # made pending (each claim does that); everything else comes in index order.
            if "TEMP B-TREE" in plan:
                assert "state = 'active'" in sql or "run_at <= ?" in sql, (sql, plan)
    finally:
        app.close()


def _a_cursor(state: str) -> str:
    return {"pending": "pending~0~1.5~x", "completed": "completed~1.5~x"}.get(state, f"{state}~x")


def _nulls(sql: str) -> list[Any]:
    return [None] * sql.count("?")


# -- PostgreSQL -----------------------------------------------------------------------------
def _pages(plan: dict[str, Any]) -> int:
    own = int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))
    return max(own, sum(_pages(child) for child in plan.get("Plans", [])))


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


@pytest.fixture
def postgres_sized(postgres_server: PostgresServer) -> Iterator[Callable[[int], dict[str, Any]]]:
    apps: list[Conveyor] = []
    url = postgres_server.create_database("pglisting")

    def run(count: int) -> dict[str, Any]:
        ns = f"listing_{count}"
        app = Conveyor(url, namespace=ns)
        apps.append(app)
        backend = app.backend
        assert isinstance(backend, PostgresBackend)
        for state, share in SHARES.items():
            fill_postgres(url, ns, int(count * share), state)
        found: dict[str, Any] = {}
        recorded: list[tuple[str, dict[str, Any]]] = []
        original = backend._run

        def recording(work: Callable[[Any], Any], **kwargs: Any) -> Any:
            class Spy:
                def __init__(self, conn: Any) -> None:
                    self.conn = conn

                def execute(self, statement: Any, params: Any = None) -> Any:
                    if isinstance(statement, str) and "jobs" in statement:
                        recorded.append((statement, dict(params or {})))
                    return self.conn.execute(statement, params)

                def __getattr__(self, name: str) -> Any:
                    return getattr(self.conn, name)

            return original(lambda conn: work(Spy(conn)), **kwargs)

        backend._run = recording  # type: ignore[method-assign,assignment]
        try:
            calls = _calls(backend)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SET jit = off")
                # The plan a statement gets once psycopg prepares it (its fifth run): one that
                # cannot see the parameters' values.
                conn.execute("SET plan_cache_mode = force_generic_plan")
                for name, call in calls.items():
                    recorded.clear()
                    call()
                    pages, nodes = 0, []
                    for statement, params in recorded:
                        explain = f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}"
                        row = conn.execute(explain.encode(), params, prepare=True).fetchone()
                        assert row is not None
                        plan = row[0][0]["Plan"]
                        pages += _pages(plan)
                        nodes += _nodes(plan)
                    found[name] = (pages, nodes)
            page = backend.list_jobs("completed", limit=50, search="nobody")
            found["search"] = (page.scanned, page.stopped)
        finally:
            backend._run = original  # type: ignore[method-assign]
        return found

    yield run
    for app in apps:
        app.close()
    postgres_server.drop_database("pglisting")


def test_postgres_listing_pages_cost_the_same_at_any_size(
    postgres_sized: Callable[[int], dict[str, Any]],
) -> None:
    small, large = postgres_sized(SMALL), postgres_sized(LARGE)
    assert large.pop("search") == (2_000, True)
    # The small store has no page 11: a deep page must cost what a first page does there.
    small = {name: small.get(name, small[name.split(",")[0] + ", first page"]) for name in large}
    for name, (pages, nodes) in large.items():
        scans = [n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan" and "Relation Name" in n]
        assert "jobs" not in scans, (name, scans)
        # A sort is of one page per queue (an index gives each queue's order), never a state.
        for node in nodes:
            if node["Node Type"] == "Sort":
                assert node.get("Actual Rows", 0) <= 200, (name, node["Actual Rows"])
        # 100x the jobs: a B-tree level more, and a heap page per job read (51 a page, from
        # each of the two ranges of a pending page) where the small table's jobs share a few
        # pages; never 100x the pages (a walk of the state reads thousands).
        assert pages <= 2 * small[name][0] + 160, (name, small[name][0], pages)
