"""Where a PostgreSQL claim and ack spend the server's time: conveyor's own statements
(``backend.fetch`` then ``backend.complete``) on its own schema, and on copies of it with one
index or trigger taken away each, in one run, interleaved.

    python bench/pg_claim_costs.py [--jobs 50000] [--rounds 3] [--batch 1000] [--only a,b]

Reported per job: wall time, the server's CPU (backend and autovacuum), WAL bytes, the share
of HOT updates. The difference from ``base`` is what that index or trigger costs.
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

import psycopg

from bench.pg_ready_split import TICKS, _server_cpu, _stats
from conveyor import Conveyor
from conveyor.backends.postgres import PostgresBackend

NOOP = b'{"t":"noop","a":[],"k":{}}'
TWEAKS: dict[str, list[str]] = {
    "base": [],
    # The layout of migrations 1-14: completed jobs in jobs_state and jobs_finished,
    # fillfactor 90. ("base" is the schema of the tree that runs this: the same, on main; the
    # unmerged branch s15-pg-split's migration 15 changed it, and this variant measured that.)
    "main_layout": [
        "ALTER TABLE {s}.jobs SET (fillfactor = 90)",
        "DROP INDEX {s}.jobs_finished",
        "CREATE INDEX jobs_finished ON {s}.jobs (finished_at) WHERE state = 'completed'",
        "DROP INDEX {s}.jobs_state",
        "CREATE INDEX jobs_state ON {s}.jobs (state, queue, id) WHERE state NOT IN ('pending', 'active')",
    ],
    "no_active": ["DROP INDEX {s}.jobs_active"],
    "no_finished": ["DROP INDEX {s}.jobs_finished"],
    "state_no_completed": [
        "DROP INDEX {s}.jobs_state",
        "CREATE INDEX jobs_state ON {s}.jobs (state, queue, id)"
        " WHERE state NOT IN ('pending', 'active', 'completed')",
    ],
    "no_task": ["DROP INDEX {s}.jobs_task"],
    "no_bucket_active": ["DROP INDEX {s}.jobs_bucket_active"],
    "no_stmt_triggers": [
        "ALTER TABLE {s}.jobs DISABLE TRIGGER jobs_counted_update",
        "ALTER TABLE {s}.jobs DISABLE TRIGGER jobs_batch_moved",
        "ALTER TABLE {s}.jobs DISABLE TRIGGER jobs_dependents_moved",
    ],
    "ff90": ["ALTER TABLE {s}.jobs SET (fillfactor = 90)"],
    "ff50": ["ALTER TABLE {s}.jobs SET (fillfactor = 50)"],
    "ff70": ["ALTER TABLE {s}.jobs SET (fillfactor = 70)"],
    "combo": [
        "ALTER TABLE {s}.jobs SET (fillfactor = 50)",
        "DROP INDEX {s}.jobs_state",
        "CREATE INDEX jobs_state ON {s}.jobs (state, queue, id)"
        " WHERE state NOT IN ('pending', 'active', 'completed')",
    ],
    "pkey_only": [
        "DROP INDEX {s}.jobs_active",
        "DROP INDEX {s}.jobs_finished",
        "DROP INDEX {s}.jobs_state",
        "DROP INDEX {s}.jobs_task",
        "DROP INDEX {s}.jobs_bucket_active",
        "DROP INDEX {s}.jobs_due",
        "DROP INDEX {s}.jobs_ended",
    ],
}


# A realistic split: every index of jobs that names state moved out (so that the claim's and
# the ack's updates of jobs may be HOT), the sets a claim and an ack move a job between kept
# in narrow tables: ready (the claim walks it), leases (heartbeat, recover), done (pruning
# by finished_at, listings by queue). Count triggers as conveyor's.
SPLIT_SCHEMA = """
CREATE TABLE {s}.jobs (LIKE conveyor_ref.jobs INCLUDING DEFAULTS);
ALTER TABLE {s}.jobs ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX ON {s}.jobs (queue, unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX ON {s}.jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX ON {s}.jobs (batch_id, id) WHERE batch_id IS NOT NULL;
ALTER TABLE {s}.jobs SET (fillfactor = {ff}, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000, autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 100000, autovacuum_vacuum_cost_delay = 0);
CREATE TABLE {s}.ready (queue text COLLATE "C" NOT NULL, priority int NOT NULL,
    run_at float8 NOT NULL, id text COLLATE "C" NOT NULL);
CREATE UNIQUE INDEX ON {s}.ready (queue, priority DESC, run_at, id);
CREATE TABLE {s}.leases (id text COLLATE "C" PRIMARY KEY, queue text COLLATE "C" NOT NULL,
    worker text NOT NULL, lease_until float8 NOT NULL);
CREATE TABLE {s}.done (queue text COLLATE "C" NOT NULL, id text COLLATE "C" NOT NULL,
    finished_at float8 NOT NULL, PRIMARY KEY (queue, id));
CREATE INDEX ON {s}.done (finished_at);
ALTER TABLE {s}.ready SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0);
ALTER TABLE {s}.leases SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0);
CREATE TABLE {s}.count_deltas (queue text, state text, n bigint);
CREATE TABLE {s}.counters (minute bigint PRIMARY KEY, processed bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0);
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
    " ORDER BY priority DESC, run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)) RETURNING id),"
    " claimed AS (UPDATE {s}.jobs AS t SET state = 'active', attempts = t.attempts + 1,"
    " progress = NULL, locked_by = %(worker)s, lease_until = %(until)s, started_at = %(now)s,"
    " finished_at = NULL WHERE t.id = ANY(ARRAY(SELECT id FROM taken))"
    " RETURNING t.id, t.queue, t.payload, t.priority, t.state, t.run_at, t.attempts, t.max_attempts,"
    " t.timeout, t.created_at, t.started_at, t.finished_at, t.result, t.last_error, t.traceback,"
    " t.locked_by, t.lease_until, t.progress, t.cancel),"
    " leased AS (INSERT INTO {s}.leases (id, queue, worker, lease_until)"
    " SELECT id, queue, %(worker)s, %(until)s FROM claimed)"
    " SELECT * FROM claimed"
)
SPLIT_ACK = (
    # No-op jobs: every result is NULL, so no join with the results (a join of jobs with
    # unnest() is planned as a hash join over a scan of jobs when no small index of the active
    # jobs is there to drive it).
    "WITH changed AS (UPDATE {s}.jobs AS t SET state = 'completed', result = NULL,"
    " finished_at = %(now)s, locked_by = NULL, lease_until = NULL, last_error = NULL, traceback = NULL"
    " WHERE t.id = ANY(%(ids)s::text[]) AND t.locked_by = %(worker)s AND t.state = 'active'"
    " RETURNING t.id, t.queue),"
    " gone AS (DELETE FROM {s}.leases WHERE id = ANY(ARRAY(SELECT id FROM changed))),"
    " finished AS (INSERT INTO {s}.done (queue, id, finished_at) SELECT queue, id, %(now)s FROM changed)"
    " INSERT INTO {s}.counters AS c (minute, processed, failed)"
    " SELECT %(minute)s, count(*), 0 FROM changed HAVING count(*) > 0"
    " ON CONFLICT (minute) DO UPDATE SET processed = c.processed + excluded.processed"
)


def run_split(url: str, postmaster: int, kind: str, jobs: int, batch: int, n: int) -> dict[str, float]:
    schema = f"{kind}{n}"
    ff = int(kind.rsplit("ff", 1)[1])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}".encode())
        conn.execute(SPLIT_SCHEMA.format(s=schema, ff=ff).encode())
    fill(url, schema, jobs)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {schema}.ready SELECT queue, priority, run_at, id FROM {schema}.jobs")
        conn.execute(f"VACUUM ANALYZE {schema}.ready")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET jit = off")
        before = _stats(conn, schema)
        cpu = _server_cpu(postmaster)
        own = _backend_cpu(postmaster)
        began = time.perf_counter()
        done = 0
        while done < jobs:
            now = time.time()
            params = {"limit": batch, "worker": "w1", "until": now + 30, "now": now}
            ids = [row[0] for row in conn.execute(SPLIT_CLAIM.format(s=schema).encode(), params)]
            if not ids:
                break
            now = time.time()
            ack = {"ids": sorted(ids), "worker": "w1", "now": now, "minute": int(now // 60) * 60}
            conn.execute(SPLIT_ACK.format(s=schema).encode(), ack)
            done += len(ids)
        wall = time.perf_counter() - began
        server = _server_cpu(postmaster) - cpu
        backends = _backend_cpu(postmaster) - own
        after = _stats(conn, schema)
    upd, hot, wal = (a - b for a, b in zip(after, before, strict=True))
    return {
        "jobs": done,
        "wall_us": wall / done * 1e6,
        "server_cpu_us": server / done * 1e6,
        "backend_cpu_us": backends / done * 1e6,
        "wal_bytes": wal / done,
        "hot": hot / upd if upd else 0.0,
    }


def _backend_cpu(postmaster: int) -> float:
    """CPU seconds of the living backends connected to the bench's database (autovacuum
    left out: when it runs is the noisiest part of a short drain's server CPU)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == postmaster and b" costs " in (entry / "cmdline").read_bytes():
                    total += (int(stat[11]) + int(stat[12])) / TICKS
    return total


def fill(url: str, schema: str, jobs: int) -> None:
    now = time.time()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {schema}.jobs (id, queue, payload, priority, state, run_at, max_attempts,"
            " created_at, task) SELECT 'j' || lpad(i::text, 12, '0'), 'default', %(payload)s, 0,"
            " 'pending', %(now)s + i * 1e-6, 1, %(now)s, 'noop' FROM generate_series(1, %(n)s) AS i",
            {"payload": NOOP, "now": now, "n": jobs},
        )
        conn.execute(f"VACUUM ANALYZE {schema}.jobs")


def run(url: str, postmaster: int, kind: str, jobs: int, batch: int, n: int) -> dict[str, float]:
    if kind.startswith("split"):
        return run_split(url, postmaster, kind, jobs, batch, n)
    schema = f"{kind}{n}"
    app = Conveyor(url, namespace=schema)
    backend = app.backend
    assert isinstance(backend, PostgresBackend)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {schema}.queues (name) VALUES ('default') ON CONFLICT DO NOTHING")
        for statement in TWEAKS[kind]:
            conn.execute(statement.format(s=schema).encode())
    fill(url, schema, jobs)
    with psycopg.connect(url, autocommit=True) as conn:
        before = _stats(conn, schema)
        cpu = _server_cpu(postmaster)
        own = _backend_cpu(postmaster)
        began = time.perf_counter()
        done = 0
        while done < jobs:
            ids = [r.id for r in backend.fetch(None, batch, "w1", 30.0, time.time())]
            if not ids:
                break
            backend.complete([(i, None) for i in ids], "w1", time.time())
            done += len(ids)
        wall = time.perf_counter() - began
        server = _server_cpu(postmaster) - cpu
        backends = _backend_cpu(postmaster) - own
        after = _stats(conn, schema)
    app.close()
    upd, hot, wal = (a - b for a, b in zip(after, before, strict=True))
    return {
        "jobs": done,
        "wall_us": wall / done * 1e6,
        "server_cpu_us": server / done * 1e6,
        "backend_cpu_us": backends / done * 1e6,
        "wal_bytes": wal / done,
        "hot": hot / upd if upd else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--no-seqscan",
        action="store_true",
        help="enable_seqscan and enable_hashjoin off on every connection: the plans the schema's"
        " indexes would get, for the variants that take away the index a plan relied on",
    )
    parser.add_argument("--only", default=",".join([*TWEAKS, "split_ff90", "split_ff50"]))
    options = parser.parse_args()
    from tests.servers import PostgresServer

    kinds = options.only.split(",")
    with PostgresServer() as server:
        url = server.create_database("costs")
        if options.no_seqscan:
            sep = "&" if "?" in url else "?"
            url += f"{sep}options=-c%20enable_seqscan%3Doff%20-c%20enable_hashjoin%3Doff"
        assert server.proc is not None
        ref = Conveyor(url, namespace="conveyor_ref")  # the columns the split copies
        ref.backend  # noqa: B018 - opening makes the schema
        ref.close()
        found: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
        for n in range(options.rounds):
            for kind in kinds:
                result = run(url, server.proc.pid, kind, options.jobs, options.batch, n)
                found[kind].append(result)
                print(kind, json.dumps({k: round(v, 3) for k, v in result.items()}), flush=True)
        load = os.getloadavg()[0]
        print(
            f"\nmedians of {options.rounds} rounds, {options.jobs:,} jobs, batches of {options.batch},"
            f" load {load:.1f}:"
        )
        print("| schema | wall µs/job | server CPU µs/job | backends' CPU µs/job | WAL B/job | HOT |")
        print("|---|---:|---:|---:|---:|---:|")
        for kind in kinds:

            def med(key: str, kind: str = kind) -> float:
                return statistics.median(r[key] for r in found[kind])

            print(
                f"| {kind} | {med('wall_us'):.1f} | {med('server_cpu_us'):.1f} | {med('backend_cpu_us'):.1f}"
                f" | {med('wal_bytes'):.0f}"
                f" | {med('hot'):.0%} |"
            )


if __name__ == "__main__":
    main()
