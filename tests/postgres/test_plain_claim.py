"""PostgreSQL's plain claim (no limits): what it costs the server when nothing is due.

Each UPDATE of jobs fires the table's statement triggers (counts, batches, dependencies),
even one that changes no row. A claim promotes the scheduled and retry jobs that came due
before it claims; that promotion must run its UPDATE only when a job is due, and then
still in the same fetch, before the claim, so a due job is claimed at once."""

from __future__ import annotations

import time

import psycopg

from conveyor.backends.postgres import PostgresBackend

from .conftest import AppFactory

# A statement trigger of the test's own beside conveyor's: one row per UPDATE statement.
WATCH = """
CREATE TABLE {s}.updates (n serial);
CREATE FUNCTION {s}.updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {s}.updates DEFAULT VALUES;
    RETURN NULL;
END $$;
CREATE TRIGGER watch_updates AFTER UPDATE ON {s}.jobs FOR EACH STATEMENT EXECUTE FUNCTION {s}.updated();
"""


def _updates(conn: psycopg.Connection[tuple[int]], schema: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {schema}.updates".encode()).fetchone()
    assert row is not None
    return row[0]


def test_a_claim_promotes_only_when_a_job_is_due(make_app: AppFactory, db_url: str) -> None:
    app = make_app(namespace="plain")
    backend = app.backend
    assert isinstance(backend, PostgresBackend)

    @app.task(name="noop")
    def noop() -> None: ...

    later = noop.using(delay=3600).enqueue()
    now = noop.enqueue()
    schema = backend.schema
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(WATCH.format(s=schema).encode())
        # Nothing due: the claim is the fetch's only UPDATE (the promotion ran one too).
        claimed = backend.fetch(None, 10, "w1", 30.0, time.time())
        assert [r.id for r in claimed] == [now.id]
        assert _updates(conn, schema) == 1
        assert backend.fetch(None, 10, "w1", 30.0, time.time()) == []
        assert _updates(conn, schema) == 2
        # Due an hour from now: promoted and claimed by that one fetch.
        claimed = backend.fetch(None, 10, "w1", 30.0, time.time() + 3601)
        assert [r.id for r in claimed] == [later.id]
        assert _updates(conn, schema) == 4


def test_a_limited_claim_promotes_only_when_a_job_is_due(make_app: AppFactory, db_url: str) -> None:
    """The same for a worker whose app has limits: its claim goes through the limited path
    (every queue listed first, each claimed on its own), which promotes the same way."""
    app = make_app(namespace="limitedplain")
    backend = app.backend
    assert isinstance(backend, PostgresBackend)

    @app.task(name="noop")
    def noop() -> None: ...

    @app.task(name="capped", queue="capped", concurrency=2)
    def capped() -> None: ...

    app.define_limits()
    later = noop.using(delay=3600).enqueue()
    capped.using(delay=3600).enqueue()  # its queue, limited, has nothing due either
    schema = backend.schema
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(WATCH.format(s=schema).encode())
        before = _updates(conn, schema)
        # Nothing due: the plain queue's claim is the fetch's only UPDATE (the promotion ran
        # one too; the limited queue's claim runs none when it finds nothing).
        records, _ = backend.fetch_ahead(None, 10, "w1", 30.0, time.time(), [])
        assert records == []
        assert _updates(conn, schema) - before == 1
        # Due an hour from now: promoted and claimed by that one fetch.
        records, _ = backend.fetch_ahead(None, 10, "w1", 30.0, time.time() + 3601, [])
        assert later.id in {r.id for r in records}
