"""Is docs/scaling.md's "separate ready table" worth it? Claim and ack straight on the server,
with conveyor's schema against a sketch of the split, in the same run, interleaved.

    python bench/pg_ready_split.py [--jobs 200000] [--rounds 2] [--batch 1000]

* ``conveyor``: the store's own statements (``backend.fetch`` then ``backend.complete``), the
  schema of its migrations: every claim and ack a non-HOT update (``state`` is in every
  partial index's predicate).
* ``split``: the sketch: ``ready (queue, priority, run_at, id)`` holds the claimable jobs
  and is the only thing a claim walks (``DELETE … RETURNING`` with ``SKIP LOCKED``); ``jobs``
  has its primary key and no other index, so the claim's and the ack's updates of it are HOT.
  It leaves out what a real split also needs (a table of leases for the heartbeat and
  recover, one of finished jobs for pruning and listings: two more index writes a job), so
  its figures are the most the split could gain.
* ``conveyor-counts``: conveyor without its count trigger on updates (what it costs).
* ``split+counts``: the split with conveyor's count triggers on ``jobs`` (the split would
  keep them: stats() reads them).

Each schema drains ``--jobs`` jobs in batches of ``--batch``, one connection. Reported per
job: wall time, the server's CPU (the backend's and the autovacuum workers'), WAL bytes, and
the share of updates that were HOT.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import contextlib
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import psycopg

from conveyor import Conveyor
from conveyor.backends.postgres import PostgresBackend

TICKS = os.sysconf("SC_CLK_TCK")
NOOP = b'{"t":"noop","a":[],"k":{}}'

SPLIT_SCHEMA = """
CREATE SCHEMA {s};
CREATE TABLE {s}.jobs (LIKE conveyor_ref.jobs INCLUDING DEFAULTS);
ALTER TABLE {s}.jobs ADD PRIMARY KEY (id);
ALTER TABLE {s}.jobs SET (fillfactor = {fillfactor}, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000, autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 100000, autovacuum_vacuum_cost_delay = 0);
CREATE TABLE {s}.ready (queue text COLLATE "C" NOT NULL, priority int NOT NULL,
    run_at float8 NOT NULL, id text COLLATE "C" NOT NULL);
CREATE UNIQUE INDEX ON {s}.ready (queue, priority DESC, run_at, id);
ALTER TABLE {s}.ready SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0);
"""
SPLIT_COUNTS = """
CREATE TABLE {s}.count_deltas (queue text, state text, n bigint);
CREATE FUNCTION {s}.count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {s}.count_deltas (queue, state, n)
    SELECT queue, state, sum(n) FROM (
        SELECT queue, state, -count(*) AS n FROM old_rows GROUP BY 1, 2
        UNION ALL
        SELECT queue, state, count(*) FROM new_rows GROUP BY 1, 2
    ) AS changed GROUP BY 1, 2 HAVING sum(n) <> 0;
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_counted_update AFTER UPDATE ON {s}.jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.count_updated();
"""
SPLIT_CLAIM = (
    "WITH taken AS (DELETE FROM {s}.ready WHERE ctid = ANY(ARRAY("
    " SELECT ctid FROM {s}.ready WHERE queue = 'default'"
    " ORDER BY priority DESC, run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)) RETURNING id)"
    " UPDATE {s}.jobs AS t SET state = 'active', attempts = t.attempts + 1, locked_by = %(worker)s,"
    " lease_until = %(until)s, started_at = %(now)s WHERE t.id = ANY(ARRAY(SELECT id FROM taken))"
    " RETURNING t.id, t.queue, t.payload, t.priority, t.state, t.run_at, t.attempts, t.max_attempts"
)
# No-op jobs: every result is NULL, so the sketch's ack needs no join with the results (a
# join planned from stale statistics, "no job is active", looped over the batch per row).
SPLIT_ACK = (
    "UPDATE {s}.jobs SET state = 'completed', result = NULL, finished_at = %(now)s,"
    " locked_by = NULL, lease_until = NULL"
    " WHERE id = ANY(%(ids)s::text[]) AND locked_by = %(worker)s AND state = 'active'"
)


def _server_cpu(postmaster: int) -> float:
    """The server's CPU seconds: the postmaster with its reaped and living children."""
    fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(x) for x in fields[11:15]) / TICKS
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == postmaster:
                    total += (int(stat[11]) + int(stat[12])) / TICKS
    return total


def _fill(url: str, schema: str, table: str, jobs: int, ready: bool) -> None:
    now = time.time()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {schema}.{table} (id, queue, payload, priority, state, run_at, max_attempts,"
            " created_at) SELECT 'j' || lpad(i::text, 12, '0'), 'default', %(payload)s, 0, 'pending',"
            " %(now)s + i * 1e-6, 1, %(now)s FROM generate_series(1, %(n)s) AS i",
            {"payload": NOOP, "now": now, "n": jobs},
        )
        if ready:
            conn.execute(f"INSERT INTO {schema}.ready SELECT queue, priority, run_at, id FROM {schema}.jobs")
        conn.execute(f"VACUUM ANALYZE {schema}.{table}")
        if ready:
            conn.execute(f"VACUUM ANALYZE {schema}.ready")


def _stats(conn: psycopg.Connection[Any], schema: str) -> tuple[int, int, int]:
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT n_tup_upd, n_tup_hot_upd, pg_current_wal_lsn() - '0/0'::pg_lsn"
        " FROM pg_stat_user_tables WHERE schemaname = %s AND relname = 'jobs'",
        (schema,),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def run(
    url: str, postmaster: int, kind: str, jobs: int, batch: int, n: int, fillfactor: int
) -> dict[str, float]:
    schema = f"{kind.replace('+', '_').replace('-', '_')}{n}"
    backend: PostgresBackend | None = None
    if kind.startswith("conveyor"):
        app = Conveyor(url, namespace=schema)
        backend = app.backend  # type: ignore[assignment]
        assert isinstance(backend, PostgresBackend)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"INSERT INTO {schema}.queues (name) VALUES ('default') ON CONFLICT DO NOTHING")
        _fill(url, schema, "jobs", jobs, ready=False)
        if kind == "conveyor-counts":  # what the count triggers cost: off for this run
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"ALTER TABLE {schema}.jobs DISABLE TRIGGER jobs_counted_update")
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SPLIT_SCHEMA.format(s=schema, fillfactor=fillfactor).encode())
            if kind == "split+counts":
                conn.execute(SPLIT_COUNTS.format(s=schema).encode())
        _fill(url, schema, "jobs", jobs, ready=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET jit = off")
        before = _stats(conn, schema)
        cpu = _server_cpu(postmaster)
        began = time.perf_counter()
        done = 0
        while done < jobs:
            now = time.time()
            if backend is not None:
                ids = [r.id for r in backend.fetch(None, batch, "w1", 30.0, now)]
                if ids:
                    backend.complete([(i, None) for i in ids], "w1", time.time())
            else:
                params = {"limit": batch, "worker": "w1", "until": now + 30, "now": now}
                ids = [row[0] for row in conn.execute(SPLIT_CLAIM.format(s=schema).encode(), params)]
                if ids:
                    ack = {
                        "ids": sorted(ids),
                        "results": [None] * len(ids),
                        "worker": "w1",
                        "now": time.time(),
                    }
                    conn.execute(SPLIT_ACK.format(s=schema).encode(), ack)
            if not ids:
                break
            done += len(ids)
        wall = time.perf_counter() - began
        server = _server_cpu(postmaster) - cpu
        after = _stats(conn, schema)
    if backend is not None:
        app.close()
    upd, hot, wal = (a - b for a, b in zip(after, before, strict=True))
    return {
        "jobs": done,
        "wall_us": wall / done * 1e6,
        "server_cpu_us": server / done * 1e6,
        "wal_bytes": wal / done,
        "hot": hot / upd if upd else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--fillfactor", type=int, default=90, help="of the sketch's jobs table")
    options = parser.parse_args()
    from tests.servers import PostgresServer

    kinds = ("conveyor", "conveyor-counts", "split", "split+counts")
    with PostgresServer() as server:
        url = server.create_database("split")
        assert server.proc is not None
        # The reference table the sketch copies its columns from: conveyor's own.
        ref = Conveyor(url, namespace="conveyor_ref")
        ref.backend  # noqa: B018 - opening makes the schema
        ref.close()
        found: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
        for n in range(options.rounds):
            for kind in kinds:
                result = run(url, server.proc.pid, kind, options.jobs, options.batch, n, options.fillfactor)
                found[kind].append(result)
                print(kind, json.dumps({k: round(v, 3) for k, v in result.items()}), flush=True)
        print(f"\nmedians of {options.rounds} rounds, {options.jobs:,} jobs, batches of {options.batch}:")
        print("| schema | wall µs/job | server CPU µs/job | WAL bytes/job | HOT updates |")
        print("|---|---:|---:|---:|---:|")
        for kind in kinds:

            def med(key: str, kind: str = kind) -> float:
                return statistics.median(r[key] for r in found[kind])

            print(
                f"| {kind} | {med('wall_us'):.1f} | {med('server_cpu_us'):.1f} | {med('wal_bytes'):.0f}"
                f" | {med('hot'):.0%} |"
            )


if __name__ == "__main__":
    main()
