"""Backlogs of jobs written straight into a store, as one statement: for the size tests in
this folder and ``bench/scale_probe.py``. No pytest here (the probe imports it)."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path


def fill_sqlite(
    path: Path | str, count: int, state: str = "scheduled", offset: float = 3600.0, payload: bytes = b"{}"
) -> None:
    """``count`` jobs of ``state`` in the namespace ``scale`` of the SQLite file ``path``, due
    ``offset`` seconds from now (spread over 1,000 s), priorities 0-2, each with ``payload``
    (the default runs nothing: a benchmark passes a task's); then ANALYZE, so the statistics
    say "every job is <state>" and a plan that follows them shows."""
    now = time.time()
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        (have,) = conn.execute("SELECT count(*) FROM scale_jobs").fetchone()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "WITH RECURSIVE c(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM c WHERE i < ?)"
            " INSERT INTO scale_jobs (id, queue, payload, priority, state, run_at, max_attempts,"
            " created_at) SELECT printf('%s%012d', ?, i), 'default', ?, i % 3, ?, ? + i % 1000, 1, ?"
            " FROM c",
            (have, have + count - 1, state[0], payload, state, now + offset, now),
        )
        conn.execute("INSERT OR IGNORE INTO scale_queues (name) VALUES ('default')")
        conn.execute("COMMIT")
        conn.execute("ANALYZE")


def fill_postgres(url: str, ns: str, count: int, payload: bytes = b"{}") -> None:
    """``count`` scheduled jobs (due in an hour, spread over 1,000 s) in the PostgreSQL
    namespace ``ns``, each with ``payload``; then ANALYZE, as ``fill_sqlite``."""
    import psycopg

    now = time.time()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {ns}.jobs (id, queue, payload, priority, state, run_at, max_attempts, created_at)"
            " SELECT 's' || lpad(i::text, 12, '0'), 'default', %(payload)s, i %% 3, 'scheduled',"
            " %(now)s + 3600 + i %% 1000, 1, %(now)s FROM generate_series(1, %(count)s) AS i",
            {"now": now, "count": count, "payload": payload},
        )
        conn.execute(f"INSERT INTO {ns}.queues (name) VALUES ('default') ON CONFLICT DO NOTHING")
        conn.execute(f"ANALYZE {ns}.jobs")
