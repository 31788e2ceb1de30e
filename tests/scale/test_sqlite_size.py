"""SQLite: what an idle claim, recover, stats and the cold listings cost does not grow with
the number of jobs stored.

Cost is counted, not timed: SQLite's progress handler is called every few virtual-machine
instructions, so the number of calls is the work a statement did, the same on a busy machine
as on a quiet one. Each call is made beside a small and a large backlog of scheduled jobs
(written with one INSERT ... SELECT, the triggers counting them as any write would), and the
large one may cost only a little more (a deeper B-tree).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.backends.sqlite import SQLiteBackend
from tests.scale.backlog import fill_sqlite

SMALL, LARGE = 1_000, 100_000
STEP = 10  # VM instructions per progress-handler call


def _app(path: Path) -> Conveyor:
    app = Conveyor(f"sqlite:///{path}", namespace="scale")

    @app.task(name="noop")
    def noop() -> None: ...

    app.backend  # noqa: B018 - open it now: the file and its schema exist from here on
    return app


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


def _calls(backend: SQLiteBackend) -> dict[str, Callable[[], Any]]:
    now = time.time()
    return {
        "fetch, nothing due": lambda: backend.fetch(None, 10, "w1", 30.0, now),
        "fetch of one queue, nothing due": lambda: backend.fetch(["default"], 10, "w1", 30.0, now),
        "recover": lambda: backend.recover(now, now - 3600),
        "stats": lambda: backend.stats(now),
        "jobs(dead)": lambda: backend.jobs("dead", limit=50),
        "jobs(dead, queue)": lambda: backend.jobs("dead", "default", limit=50),
        "jobs(scheduled)": lambda: backend.jobs("scheduled", limit=50),
        "jobs(retry)": lambda: backend.jobs("retry", limit=50),
    }


@pytest.fixture
def sized(tmp_path: Path) -> Iterator[Callable[[int], dict[str, int]]]:
    apps: list[Conveyor] = []

    def measure(count: int) -> dict[str, int]:
        path = tmp_path / f"{count}.db"
        app = _app(path)
        apps.append(app)
        fill_sqlite(path, count)
        backend = app.backend
        assert isinstance(backend, SQLiteBackend)
        return {name: _steps(backend, call) for name, call in _calls(backend).items()}

    yield measure
    for app in apps:
        app.close()


def test_idle_costs_do_not_grow_with_the_backlog(sized: Callable[[int], dict[str, int]]) -> None:
    small, large = sized(SMALL), sized(LARGE)
    for name, cost in large.items():
        # 100x the jobs: a few more B-tree levels at most, never 100x the work.
        assert cost <= 2 * small[name] + 2_000, (name, small[name], cost)


def test_due_jobs_are_promoted_and_claimed_in_priority_order(tmp_path: Path) -> None:
    path = tmp_path / "due.db"
    app = _app(path)
    try:
        fill_sqlite(path, 3_000)  # not due for an hour
        fill_sqlite(path, 30, offset=-3_000)  # due: priorities 0, 1, 2
        backend = app.backend
        stats = backend.stats(time.time())
        assert stats.queues["default"] == {"scheduled": 3_000, "pending": 30}
        assert stats.oldest_pending["default"] >= 1_000
        claimed = backend.fetch(None, 12, "w1", 30.0, time.time())
        assert [r.priority for r in claimed] == [2] * 10 + [1] * 2
        after = backend.stats(time.time()).queues["default"]
        assert after == {"scheduled": 3_000, "pending": 18, "active": 12}
    finally:
        app.close()


def test_counts_follow_every_change_and_a_version_1_file_is_counted_once(tmp_path: Path) -> None:
    path = tmp_path / "counts.db"
    app = _app(path)
    try:
        noop = app.tasks["noop"]
        jobs = [noop.enqueue() for _ in range(5)] + [noop.using(delay=600).enqueue()]
        backend = app.backend
        claimed = backend.fetch(None, 3, "w1", 30.0, time.time())
        backend.complete([(claimed[0].id, None)], "w1", time.time())
        app.cancel(jobs[4].id)
        app.delete(jobs[3].id)
        expect = {"pending": 0, "active": 2, "completed": 1, "cancelled": 1, "scheduled": 1}
        expect = {k: v for k, v in expect.items() if v}
        assert backend.stats(time.time()).queues["default"] == expect
    finally:
        app.close()
    # An old file: schema version 1, the claim index of then, no counts, no progress or cancel
    # columns. Opening it migrates once (to version 7): the counts start from one full count.
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("UPDATE scale_meta SET value = '1' WHERE key = 'schema_version'")
        for kind in ("insert", "delete", "update"):
            conn.execute(f"DROP TRIGGER scale_jobs_counted_{kind}")
        conn.execute("DROP TABLE scale_counts")
        # Nor those of version 6 (dependencies): the triggers that read them first.
        for trigger in ("deps_ended", "deps_gone"):
            conn.execute(f"DROP TRIGGER scale_{trigger}")
        for column in ("dependents", "waiting_on"):
            conn.execute(f"ALTER TABLE scale_jobs DROP COLUMN {column}")
        conn.execute("ALTER TABLE scale_jobs DROP COLUMN progress")
        conn.execute("ALTER TABLE scale_jobs DROP COLUMN cancel")
        # Nor the columns of versions 3 (expiry, unique keys, snoozes), 4 (the batch) and 5
        # (the task's name), and their indexes and triggers.
        for index in ("unique", "expires", "ended", "task", "batch"):
            conn.execute(f"DROP INDEX scale_jobs_{index}")
        for (trigger,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%batch%'"
        ).fetchall():
            conn.execute(f"DROP TRIGGER {trigger}")
        for column in ("expires_at", "unique_key", "unique_until", "snoozes", "batch_id", "task"):
            conn.execute(f"ALTER TABLE scale_jobs DROP COLUMN {column}")
        conn.execute(
            "CREATE INDEX scale_jobs_fetch ON scale_jobs (queue, priority DESC, run_at, id)"
            " WHERE state IN ('scheduled','pending','retry')"
        )
    app = _app(path)
    try:
        assert app.stats().queues["default"] == expect
        with closing(sqlite3.connect(path)) as conn:
            names = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
            (version,) = conn.execute("SELECT value FROM scale_meta WHERE key = 'schema_version'").fetchone()
        assert "scale_jobs_fetch" not in names and "scale_jobs_ready" in names
        assert {"scale_jobs_unique", "scale_jobs_expires", "scale_jobs_ended", "scale_jobs_task"} <= names
        assert version == "7"
    finally:
        app.close()
