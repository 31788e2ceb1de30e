"""Backlogs of jobs written straight into a store, as one statement: for the size tests in
this folder and ``bench/scale_probe.py``. No pytest here (the probe imports it)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any


def fill_sqlite(
    path: Path | str,
    count: int,
    state: str = "scheduled",
    offset: float = 3600.0,
    payload: bytes = b"{}",
    namespace: str = "scale",
) -> None:
    """``count`` jobs of ``state`` in the namespace ``scale`` of the SQLite file ``path``, due
    ``offset`` seconds from now (spread over 1,000 s), priorities 0-2, each with ``payload``
    (the default runs nothing: a benchmark passes a task's), finished now (spread over
    1,000 s) when the state is a final one; then ANALYZE, so the statistics say "every job
    is <state>" and a plan that follows them shows. Their task (the column a search by task
    reads, where the file has it) is ``scale.noop``, one in a thousand ``scale.rare``."""
    now = time.time()
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        (have,) = conn.execute(f"SELECT count(*) FROM {namespace}_jobs").fetchone()
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({namespace}_jobs)")}
        task = ", task" if "task" in columns else ""
        named = ", CASE WHEN i % 1000 = 7 THEN 'scale.rare' ELSE 'scale.noop' END" if task else ""
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "WITH RECURSIVE c(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM c WHERE i < ?)"
            f" INSERT INTO {namespace}_jobs (id, queue, payload, priority, state, run_at, max_attempts,"
            f" created_at, finished_at{task}) SELECT printf('%s%012d', ?, i), 'default', ?, i % 3, ?,"
            " ? + i % 1000, 1, ?, CASE WHEN ? IN ('completed', 'dead', 'cancelled') THEN ? - i % 1000 END"
            f"{named} FROM c",
            (have, have + count - 1, state[0], payload, state, now + offset, now, state, now),
        )
        conn.execute(f"INSERT OR IGNORE INTO {namespace}_queues (name) VALUES ('default')")
        conn.execute("COMMIT")
        conn.execute("ANALYZE")


def fill_postgres(url: str, ns: str, count: int, state: str = "scheduled", payload: bytes = b"{}") -> None:
    """``count`` jobs of ``state`` (due in an hour, spread over 1,000 s; finished now, spread
    over 1,000 s, when the state is a final one) in the PostgreSQL namespace ``ns``, each with
    ``payload``, their task as ``fill_sqlite``'s; then ANALYZE, as ``fill_sqlite``."""
    import psycopg

    now = time.time()
    with psycopg.connect(url, autocommit=True) as conn:
        has_task = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = 'jobs'"
            " AND column_name = 'task'",
            (ns,),
        ).fetchone()
        task = ", task" if has_task else ""
        named = ", CASE WHEN i %% 1000 = 7 THEN 'scale.rare' ELSE 'scale.noop' END" if has_task else ""
        conn.execute(
            f"INSERT INTO {ns}.jobs (id, queue, payload, priority, state, run_at, max_attempts, created_at,"
            f" finished_at{task}) SELECT %(prefix)s || lpad(i::text, 12, '0'), 'default', %(payload)s,"
            " i %% 3, %(state)s, %(now)s + 3600 + i %% 1000, 1, %(now)s, CASE WHEN %(state)s IN"
            f" ('completed', 'dead', 'cancelled') THEN %(now)s - i %% 1000 END{named}"
            " FROM generate_series(1, %(count)s) AS i",
            {"now": now, "count": count, "state": state, "prefix": state[:2], "payload": payload},
        )
        conn.execute(f"INSERT INTO {ns}.queues (name) VALUES ('default') ON CONFLICT DO NOTHING")
        conn.execute(f"ANALYZE {ns}.jobs")


def fill_redis(app: Any, count: int, state: str, queue: str = "default", same_time: bool = False) -> None:
    """``count`` jobs of ``state`` (pending, scheduled, completed or dead) in ``app``'s Redis
    store, through the store's own scripts: streamed in chunks (``enqueue_stream``), then
    claimed and finished a thousand at a time for the final states. Scheduled jobs are due in
    an hour (spread over 1,000 s); with ``same_time`` every job shares one run_at (and one
    finished_at), the worst case for a cursor among equal scores. Fill the final states of
    a queue before its pending jobs: they are made by claiming whatever the queue holds."""
    from conveyor.job import Failure, JobRecord, new_id

    backend = app.backend
    now = time.time()
    later = state == "scheduled"

    def chunks(first: int, last: int) -> Iterator[list[JobRecord]]:
        for start in range(first, last, 1000):
            chunk = []
            for i in range(start, min(last, start + 1000)):
                job_id = new_id()
                run_at = now + (3600 + (0 if same_time else i % 1000) if later else 0)
                name = "scale.rare" if i % 1000 == 7 else "scale.noop"
                payload = app.codec.encode_payload(job_id, queue, 1, name, [i], {})
                chunk.append(
                    JobRecord(
                        id=job_id,
                        queue=queue,
                        payload=payload,
                        priority=0 if same_time else i % 3,
                        state="scheduled" if later else "pending",
                        run_at=run_at,
                        created_at=now,
                        task=name,
                    )
                )
            yield chunk

    # A stream keeps what it sent until the replies are read (to send it again): 100,000
    # jobs a stream keeps the client's memory bounded, whatever the backlog's size.
    for first in range(0, count, 100_000):
        backend.enqueue_stream(chunks(first, min(count, first + 100_000)))
    if state in ("pending", "scheduled"):
        return
    done = 0
    while done < count:
        claimed = backend.fetch([queue], min(1000, count - done), "filler", 3600.0, time.time())
        if not claimed:
            raise RuntimeError(f"only {done} of {count} jobs could be claimed to make them {state}")
        at = now if same_time else time.time()
        if state == "completed":
            backend.complete([(r.id, None) for r in claimed], "filler", at)
        else:
            backend.fail([Failure(r.id, "boom") for r in claimed], "filler", at)
        done += len(claimed)
